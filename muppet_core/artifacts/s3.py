"""The ``s3`` store backend (``s3://bucket/prefix``, through s3fs): bounded retries, transfers in
parts, and a lock that every machine reaching the bucket honours.

The lock is an object created only if absent (a conditional PUT, ``If-None-Match: *``) holding an
owner token. Its holder rewrites it every ``lock_stale_s / 4`` seconds; a waiter that sees the same
object (the same ETag) for ``lock_stale_s`` seconds of its own clock takes the lock over, so a holder
that died frees the lock after that long and machines' clocks never have to agree. The holder
deletes it on release only while it is still the one it wrote (``If-Match``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import fsspec
from pydantic import Field

from muppet_core.artifacts.backend import BackendSettings, StoreBackend
from muppet_core.artifacts.remote import cause, redact, with_retries
from muppet_core.errors import StoreError
from muppet_core.stopping import pause

log = logging.getLogger(__name__)
T = TypeVar("T")
LOCKS = "_scratch/.locks"
"""The prefix of the store's lock objects."""
_REFUSED = ("PreconditionFailed", "ConditionalRequestConflict")


class S3Settings(BackendSettings):
    """Options of a store on S3. The credentials and region come from the environment as botocore
    reads them (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``AWS_DEFAULT_REGION``)."""

    endpoint_url: str | None = Field(None, min_length=1)
    """The S3 endpoint (None: ``AWS_ENDPOINT_URL``, else AWS's own)."""
    retries: int = Field(3, ge=1)
    """Attempts of each call that fails transiently."""
    backoff_s: float = Field(1.0, ge=0)
    """Wait before the second attempt; doubled before each next one."""
    chunk_bytes: int = Field(16 << 20, ge=5 << 20)
    """Transfer part size: larger files move in parts, never whole in memory (S3's parts are 5 MiB at least)."""
    max_concurrency: int = Field(4, ge=1)
    """Parts in flight per transfer (memory per transfer: about ``chunk_bytes * max_concurrency``)."""
    connect_timeout_s: float = Field(10, gt=0)
    """botocore's connect timeout."""
    read_timeout_s: float = Field(120, gt=0)
    """botocore's read timeout."""
    lock_stale_s: float = Field(60, gt=0)
    """A lock object not rewritten for this long is a dead holder's: a waiter takes it over."""
    lock_poll_s: float = Field(1.0, gt=0)
    """How often a waiter looks at a held lock."""


class S3Backend(StoreBackend):
    """A store under an ``s3://bucket/prefix`` (``s3a://`` alike)."""

    Settings = S3Settings

    def __init__(self, root: str, settings: S3Settings):
        super().__init__(root, settings)
        # One quick retry inside botocore and none inside s3fs: this backend's retries (with
        # backoff) are the bound a caller can count on.
        config = {"retries": {"max_attempts": 2, "mode": "standard"}, "connect_timeout": settings.connect_timeout_s,
                  "read_timeout": settings.read_timeout_s}
        endpoint = {"endpoint_url": settings.endpoint_url} if settings.endpoint_url else {}
        self.fs = fsspec.filesystem("s3", config_kwargs=config, **endpoint)
        self.fs.retries = 1  # this instance is the store's own (its options differ from a plain one's)
        self.base = root.partition("://")[2].rstrip("/")
        self._transfer = {"chunksize": settings.chunk_bytes, "max_concurrency": settings.max_concurrency}

    def _path(self, rel: str) -> str:
        return f"{self.base}/{rel}" if rel else self.base

    def _call(self, what: str, rel: str, call: Callable[[], T]) -> T:
        uri = f"{self.root}/{rel}" if rel else self.root
        return with_retries(call, what, uri, self.root, self.settings.retries, self.settings.backoff_s)

    def _fresh(self, path: str) -> str:
        """``path``, its listing (and its parents') dropped from s3fs's cache: another machine may have changed it."""
        self.fs.invalidate_cache(path)
        return path

    def read(self, rel: str) -> bytes:
        return self._call("read", rel, lambda: self.fs.cat_file(self._path(rel)))

    def write(self, rel: str, data: bytes) -> None:
        self._call("write", rel, lambda: self.fs.pipe_file(self._path(rel), data))  # one PUT: all or nothing

    def exists(self, rel: str) -> bool:
        path = self._fresh(self._path(rel))
        return self._call("look up", rel, lambda: self.fs.exists(path))

    def list(self, rel: str) -> list[str]:
        path = self._fresh(self._path(rel))

        def names() -> list[str]:
            try:
                entries = self.fs.ls(path, detail=True)
            except FileNotFoundError:
                return []
            return [e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries if e.get("type") == "file"]

        return self._call("list", rel, names)

    def find(self, rel: str) -> list[str]:
        base = self._fresh(self._path(rel)).rstrip("/")
        found = self._call("list", rel, lambda: self.fs.find(base))
        return sorted(p[len(base):].lstrip("/") if p.startswith(base) else p.rsplit("/", 1)[-1] for p in found)

    def delete(self, rel: str) -> None:
        path = self._fresh(self._path(rel))

        def rm() -> None:
            try:
                self.fs.rm(path, recursive=True)
            except FileNotFoundError:
                pass

        self._call("delete", rel, rm)

    def put_file(self, rel: str, local: Path) -> None:
        self._call("upload", rel, lambda: self.fs.put_file(str(local), self._path(rel), **self._transfer))

    def get_file(self, rel: str, local: Path) -> None:
        self._call("download", rel, lambda: self.fs.get_file(self._path(rel), str(local), **self._transfer))

    def put_dir(self, rel: str, local: Path, files: list[str], seal: tuple[str, bytes]) -> bool:
        """Uploaded file by file (each with retries), the seal last; what a failed upload left is
        deleted again. A seal that appears meanwhile (another machine finished first) is kept."""
        if self.exists(f"{rel}/{seal[0]}"):
            return False
        uploaded: list[str] = []
        try:
            for name in files:
                self.put_file(f"{rel}/{name}", local / name)
                uploaded.append(self._path(f"{rel}/{name}"))
            if self.exists(f"{rel}/{seal[0]}"):  # another machine finished first: keep its seal (should
                return False  # our uploads have changed its files, reads find the mismatch and rebuild)
            uploaded.append(self._path(f"{rel}/{seal[0]}"))
            self._call("write the manifest of", rel, lambda: self.fs.pipe_file(uploaded[-1], seal[1]))
        except BaseException as exc:
            self._remove_partial(rel, uploaded[::-1], exc)
            raise
        return True

    def _remove_partial(self, rel: str, paths: list[str], exc: BaseException) -> None:
        """Delete what a failed upload left (the seal first), once, without retrying."""
        try:
            self.fs.rm(paths)
        except FileNotFoundError:
            pass
        except Exception as err:  # noqa: BLE001  (best effort: the error that matters is the caller's)
            log.warning("publishing %s/%s failed (%s) and its partial files could not be deleted (%s); "
                        "it has no manifest, so every reader treats it as absent", redact(self.root), rel, cause(exc), cause(err))

    def discard(self, rel: str, seal: str) -> str:
        """Deleted, its seal first."""
        self.delete(f"{rel}/{seal}")
        self.delete(rel)
        return "deleted"

    def lock(self, name: str) -> contextlib.AbstractContextManager[None]:
        return self._lock(f"{LOCKS}/{name}.lock")

    def _s3(self, what: str, rel: str, method: str, **kwargs: Any) -> dict:
        bucket, key, _ = self.fs.split_path(self._path(rel))
        return self._call(what, rel, lambda: self.fs.call_s3(method, Bucket=bucket, Key=key, **kwargs))

    @contextlib.contextmanager
    def _lock(self, rel: str) -> Iterator[None]:
        token = uuid.uuid4().hex
        etag = self._acquire(rel, token)
        beat = _Heartbeat(self, rel, token, etag)
        beat.start()
        try:
            yield
        finally:
            etag = beat.stop()
            if etag is not None:
                try:
                    self._s3("release the lock", rel, "delete_object", IfMatch=etag)
                except OSError as exc:
                    if not refused(exc):
                        raise
                    log.warning("the lock %s/%s was taken over before it was released", redact(self.root), rel)

    def _acquire(self, rel: str, token: str) -> str:
        """Create the lock object, waiting while another holder refreshes it; returns its ETag."""
        seen, since, waited = None, time.monotonic(), False
        while True:
            try:
                return self._s3("take the lock", rel, "put_object", Body=lock_body(token, 0), IfNoneMatch="*")["ETag"]
            except OSError as exc:
                if not refused(exc):
                    raise StoreError(f"could not take the lock {redact(self.root)}/{rel}: {cause(exc)}; the store's lock needs an "
                                     "S3 server with conditional writes (PUT with If-None-Match), as AWS S3 and SeaweedFS have") from exc
            try:
                etag = self._s3("look at the lock", rel, "head_object")["ETag"]
            except FileNotFoundError:
                continue  # released since
            now = time.monotonic()
            if etag != seen:
                seen, since = etag, now
                if not waited:
                    log.info("the lock %s/%s is held: waiting for it", redact(self.root), rel)
                    waited = True
            elif now - since >= self.settings.lock_stale_s:
                log.warning("the lock %s/%s was not refreshed for %.0fs (its holder died): taking it over",
                            redact(self.root), rel, now - since)
                with contextlib.suppress(FileNotFoundError):
                    try:
                        self._s3("take over the lock", rel, "delete_object", IfMatch=etag)
                    except OSError as exc:
                        if not refused(exc):  # refused: another waiter took it over first
                            raise
                continue
            pause(self.settings.lock_poll_s)  # a run asked to stop leaves the wait at once


def lock_body(token: str, beat: int) -> bytes:
    """A lock object's content: its owner (a token, the host and process) and the count of its
    refreshes, so each refresh has another ETag."""
    return json.dumps({"owner": token, "host": socket.gethostname(), "pid": os.getpid(), "beat": beat}).encode()


def refused(exc: BaseException) -> bool:
    """Whether S3 refused a conditional request (its condition did not hold)."""
    error = getattr(exc.__cause__, "response", {}).get("Error", {})
    return error.get("Code") in _REFUSED


class _Heartbeat:
    """Rewrites a held lock object (``If-Match`` its last ETag) until stopped, so waiters see it alive."""

    def __init__(self, backend: S3Backend, rel: str, token: str, etag: str):
        self.backend, self.rel, self.token, self.etag = backend, rel, token, etag
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"muppet-lock-{rel}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> str | None:
        """Stop refreshing; the lock's last ETag, or None when it was taken over."""
        self.stopped.set()
        self.thread.join()
        return self.etag

    def _run(self) -> None:
        beat = 0
        while not self.stopped.wait(self.backend.settings.lock_stale_s / 4):
            beat += 1
            try:
                put = self.backend._s3("refresh the lock", self.rel, "put_object", Body=lock_body(self.token, beat), IfMatch=self.etag)
                self.etag = put["ETag"]
            except OSError as exc:
                if refused(exc) or isinstance(exc, FileNotFoundError):
                    log.error("the lock %s/%s was taken over while held (not refreshed for lock_stale_s)", redact(self.backend.root), self.rel)
                    self.etag = None
                    return
                log.warning("could not refresh the lock %s/%s: %s", redact(self.backend.root), self.rel, cause(exc))
            except Exception as exc:  # noqa: BLE001  (the next beat tries again; the holder's work goes on)
                log.warning("could not refresh the lock %s/%s: %s", redact(self.backend.root), self.rel, cause(exc))
