"""Content-addressed artifact store over fsspec (a local directory or an s3:// prefix).

An artifact lives at ``<root>/<stage>/<key>/`` where the key hashes the stage's inputs, its
config and its code version. A ``MANIFEST.json`` listing every file with its sha256 is written
last: an artifact without one is incomplete and treated as absent. Reads check every file
against the manifest; a mismatch raises ``CorruptArtifactError``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import fsspec
from fsspec.implementations.local import LocalFileSystem

from muppet_core.artifacts.fingerprints import code_version, digest, file_sha256, files_digest
from muppet_core.artifacts.local import install
from muppet_core.artifacts.named import NamedFiles
from muppet_core.artifacts.manifest import MANIFEST, build_manifest, forget, parse_manifest, verify_folder
from muppet_core.artifacts.remote import cause, open_filesystem, redact, with_retries
from muppet_core.errors import MuppetError, StoreError

__all__ = ["MANIFEST", "ArtifactStore", "code_version", "digest", "file_sha256", "files_digest"]

log = logging.getLogger(__name__)
T = TypeVar("T")
CORRUPT = "_corrupt"
"""Where a local store moves corrupt artifacts aside (``<root>/_corrupt/<stage>/<key>-<id>``)."""


class ArtifactStore(NamedFiles):
    """Stage outputs keyed by content, on any fsspec filesystem.

    Args:
        root: a directory or URI (``s3://bucket/prefix``).
        cache_dir: where remote artifacts are downloaded for local use.
    """

    retries = 3
    """Attempts of each remote call that fails transiently."""
    backoff_s = 1.0
    """Wait before the second attempt; doubled before each next one."""
    chunk_bytes = 16 << 20
    """Transfer part size on s3: larger files move in parts, never whole in memory."""
    max_concurrency = 4
    """Parts in flight per transfer (memory per transfer: about ``chunk_bytes * max_concurrency``)."""

    def __init__(self, root: str, cache_dir: str | None = None):
        self.root = root.rstrip("/")
        self.fs, self._root_path = open_filesystem(self.root)
        self.is_local = isinstance(self.fs, LocalFileSystem)
        self._chunked = fsspec.core.split_protocol(self.root)[0] in ("s3", "s3a")
        default_cache = os.path.join(tempfile.gettempdir(), "muppet-cache", digest(self.root)[:12])
        self.cache_dir = Path(cache_dir or os.environ.get("MUPPET_CACHE", default_cache))

    @staticmethod
    def key(stage: str, **inputs: Any) -> str:
        """The content key of a stage's output: a digest of everything that determines it."""
        return digest({"stage": stage, **inputs})[:24]

    def _path(self, *parts: str) -> str:
        return "/".join([self._root_path.rstrip("/"), *parts])

    def _call(self, what: str, uri: str, call: Callable[[], T]) -> T:
        """``call()`` on the local filesystem as is; on a remote one with bounded retries."""
        if self.is_local:
            return call()
        return with_retries(call, what, uri, self.root, self.retries, self.backoff_s)

    def _transfer(self) -> dict[str, int]:
        return {"chunksize": self.chunk_bytes, "max_concurrency": self.max_concurrency} if self._chunked else {}

    def uri(self, stage: str, key: str) -> str:
        """Where the artifact lives."""
        return f"{self.root}/{stage}/{key}"

    def has(self, stage: str, key: str) -> bool:
        """True when the artifact is complete (its manifest exists)."""
        path = self._path(stage, key, MANIFEST)
        if not self.is_local:
            self.fs.invalidate_cache(self._path(stage, key))
        return self._call("look up", self.uri(stage, key), lambda: self.fs.exists(path))

    def manifest(self, stage: str, key: str) -> dict[str, Any]:
        """The manifest of a complete artifact, checked against its own digest.

        Raises:
            FileNotFoundError: the artifact is not in the store.
            CorruptArtifactError: the manifest is damaged.
        """
        return parse_manifest(self._manifest_bytes(stage, key), self.uri(stage, key))

    def _manifest_bytes(self, stage: str, key: str) -> bytes:
        uri = self.uri(stage, key)
        try:
            return self._call("read the manifest of", uri, lambda: self.fs.cat_file(self._path(stage, key, MANIFEST)))
        except FileNotFoundError:
            raise FileNotFoundError(f"artifact {uri} is not in the store") from None

    def publish(self, stage: str, key: str, local_dir: str | Path, meta: dict[str, Any] | None = None) -> str:
        """Copy a finished local directory into the store; the manifest goes last.

        On a local filesystem the files are staged beside the target and renamed into place; when
        a complete artifact is already there (a concurrent run finished first) it is kept and
        this copy discarded. On a remote store the files are uploaded (with bounded retries) and
        the manifest written last; if that fails, what was uploaded is deleted again.

        Raises:
            StoreError: the folder holds no files, or the remote store refused or kept failing.
        """
        local_dir = Path(local_dir)
        manifest = build_manifest(stage, key, local_dir, meta)
        if not manifest["files"]:
            raise StoreError(f"refusing to publish {self.uri(stage, key)} with no files: the stage wrote nothing into {local_dir}")
        if self.is_local:
            staging = Path(f"{self._path(stage, key)}.tmp-{uuid.uuid4().hex[:8]}")
            try:
                shutil.copytree(local_dir, staging)
                (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            if not install(staging, Path(self._path(stage, key)), lambda t: (t / MANIFEST).is_file()):
                log.info("%s was published by another run first: keeping it, discarding this copy", self.uri(stage, key))
        else:
            self._upload(stage, key, local_dir, manifest)
        return self.uri(stage, key)

    def _upload(self, stage: str, key: str, local_dir: Path, manifest: dict[str, Any]) -> None:
        uri, target = self.uri(stage, key), self._path(stage, key)
        if self.has(stage, key):
            log.info("%s was published by another run first: keeping it, discarding this copy", uri)
            return
        uploaded: list[str] = []
        try:
            for rel in manifest["files"]:
                dest = f"{target}/{rel}"
                self._call("upload", f"{uri}/{rel}", lambda r=rel, d=dest: self.fs.put_file(str(local_dir / r), d, **self._transfer()))
                uploaded.append(dest)
            if self.has(stage, key):  # another machine finished first: keep its manifest (should
                return  # our uploads have changed its files, reads find the mismatch and rebuild)
            uploaded.append(f"{target}/{MANIFEST}")
            blob = json.dumps(manifest, indent=1).encode()
            self._call("write the manifest of", uri, lambda: self.fs.pipe_file(f"{target}/{MANIFEST}", blob))
        except BaseException as exc:
            self._remove_partial(uri, uploaded[::-1], exc)
            raise

    def _remove_partial(self, uri: str, paths: list[str], exc: BaseException) -> None:
        """Delete what a failed publish uploaded (manifest first), once, without retrying."""
        try:
            self.fs.rm(paths)
        except FileNotFoundError:
            pass
        except Exception as err:  # noqa: BLE001  (best effort: the error that matters is the caller's)
            log.warning("publishing %s failed (%s) and its partial files could not be deleted (%s); "
                        "it has no manifest, so every reader treats it as absent", uri, cause(exc), cause(err))

    def fetch(self, stage: str, key: str) -> Path:
        """A local directory holding the artifact's files (downloaded once for remote stores), each
        checked against its sha256 in the manifest.

        Raises:
            FileNotFoundError: the artifact is not in the store.
            CorruptArtifactError: a file is missing or differs from the manifest.
            StoreError: the remote store refused or kept failing.
        """
        uri = self.uri(stage, key)
        blob = self._manifest_bytes(stage, key)
        manifest = parse_manifest(blob, uri)
        if self.is_local:
            verify_folder(Path(self._path(stage, key)), manifest, uri)
            return Path(self._path(stage, key))
        local = self.cache_dir / stage / key
        if self._cached_copy_valid(local, manifest, uri):
            return local
        tmp = local.with_name(f"{key}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            for rel in manifest["files"]:
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                src = self._path(stage, key, rel)
                try:
                    self._call("download", f"{uri}/{rel}", lambda s=src, r=rel: self.fs.get_file(s, str(tmp / r), **self._transfer()))
                except FileNotFoundError:
                    pass  # reported as missing by the check below
            (tmp / MANIFEST).write_bytes(blob)
            verify_folder(tmp, manifest, uri)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        install(tmp, local, lambda t: self._cached_copy_valid(t, manifest, uri))
        return local

    def _cached_copy_valid(self, local: Path, manifest: dict[str, Any], uri: str) -> bool:
        """Whether the local copy of a remote artifact is this manifest's, intact."""
        if not (local / MANIFEST).is_file():
            return False
        try:
            if parse_manifest((local / MANIFEST).read_bytes(), str(local))["files"] != manifest["files"]:
                return False
            verify_folder(local, manifest, str(local))
            return True
        except MuppetError as exc:
            log.warning("the local copy of %s is damaged (%s): downloading it again", uri, exc)
            return False

    def discard(self, stage: str, key: str) -> str:
        """Take a (corrupt) artifact out of the store: a local one is moved under ``_corrupt/``, a
        remote one deleted (its manifest first) along with its local copy. Returns where it went."""
        uri = self.uri(stage, key)
        if self.is_local:
            src = Path(self._path(stage, key))
            aside = Path(self._path(CORRUPT, stage, f"{key}-{uuid.uuid4().hex[:8]}"))
            aside.parent.mkdir(parents=True, exist_ok=True)
            forget(src)
            try:
                os.rename(src, aside)
            except FileNotFoundError:
                return "nowhere (already gone)"
            return str(aside)
        with contextlib.suppress(FileNotFoundError):  # absent first, then gone
            self._call("delete the manifest of", uri, lambda: self.fs.rm_file(self._path(stage, key, MANIFEST)))
            self._call("delete", uri, lambda: self.fs.rm(self._path(stage, key), recursive=True))
        local = self.cache_dir / stage / key
        forget(local)
        shutil.rmtree(local, ignore_errors=True)
        return "deleted"

    def write_json(self, stage: str, key: str, record: dict[str, Any], meta: dict[str, Any] | None = None) -> str:
        """Publish a small JSON record as ``record.json``."""
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "record.json").write_text(json.dumps(record, indent=1, sort_keys=True))
            return self.publish(stage, key, tmp, meta)

    def read_json(self, stage: str, key: str) -> dict[str, Any]:
        """Read back a record published with write_json (checked against the manifest)."""
        return json.loads((self.fetch(stage, key) / "record.json").read_text())

    def scratch(self, stage: str, key: str) -> Path:
        """A local working folder for a stage's unfinished work (checkpoints): under the store for
        a local store, under the cache folder for a remote one."""
        base = Path(self._root_path) / "_scratch" if self.is_local else self.cache_dir / "scratch"
        return base / stage / key

    def scratch_uri(self, stage: str, key: str) -> str:
        """A stage's unfinished work inside the store itself (checkpoints, a multi-node run's job and
        export), which every machine that reaches the store reaches."""
        return f"{self.root}/_scratch/{stage}/{key}"

    def require_shared(self, what: str, shared: bool = False) -> None:
        """Refuse a store that other machines cannot reach (a local path, unless ``shared`` says every
        machine mounts it there), before any work. Raises StoreError, one line naming ``what`` needs it."""
        if self.is_local and not shared:
            raise StoreError(f"{what} needs an artifact store that every machine reaches, and {self.root} is a path on this "
                             "machine: use an s3:// store (or, for a path every machine mounts, set shared_store: true)")

    def lock_path(self, stage: str, key: str) -> Path:
        """The local file that serializes builds of one key on this machine."""
        return self.scratch(stage, key).parent.parent / ".locks" / stage / f"{key}.lock"

    def check_access(self) -> None:
        """Write, read back and delete a small probe object under the root, so refused credentials
        or an unreachable store stop a run before any work, leaving nothing behind.

        Raises:
            StoreError: one line: which store, what failed, what to check.
        """
        name = f"_probe/{uuid.uuid4().hex}"
        path, uri, data = self._path(name), f"{self.root}/{name}", b"muppet access probe\n"
        try:
            if self.is_local:
                self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            self._call("write", uri, lambda: self.fs.pipe_file(path, data))
            if self._call("read", uri, lambda: self.fs.cat_file(path)) != data:
                raise StoreError(f"the artifact store {redact(self.root)} returned other bytes than were written to {redact(uri)}")
            self._call("delete", uri, lambda: self.fs.rm_file(path))
            if self.is_local:
                with contextlib.suppress(OSError):
                    Path(path).parent.rmdir()  # only when empty
        except StoreError:
            raise
        except PermissionError as exc:
            raise StoreError(f"cannot write to the artifact store {self.root}: {cause(exc)}") from exc
        except OSError as exc:
            raise StoreError(f"cannot use the artifact store {redact(self.root)}: {cause(exc)}") from exc
