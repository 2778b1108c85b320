"""Content-addressed artifact store over a store backend (a local directory, an s3:// prefix, or one registered).

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
from pathlib import Path
from typing import Any

from muppet_core.artifacts.backend import open_backend
from muppet_core.artifacts.fingerprints import code_version, digest, file_sha256, files_digest
from muppet_core.artifacts.local import CORRUPT, install
from muppet_core.artifacts.named import NamedFiles
from muppet_core.artifacts.manifest import MANIFEST, build_manifest, forget, parse_manifest, verify_folder
from muppet_core.artifacts.remote import cause, redact
from muppet_core.errors import MuppetError, StoreError

__all__ = ["CORRUPT", "MANIFEST", "ArtifactStore", "code_version", "digest", "file_sha256", "files_digest"]

log = logging.getLogger(__name__)


class ArtifactStore(NamedFiles):
    """Stage outputs keyed by content, on the backend that the root's scheme names
    (``muppet_core.artifacts.backend``: a local folder, ``s3://``, or one registered).

    Args:
        root: a directory or URI (``s3://bucket/prefix``).
        cache_dir: where artifacts of a store that is not on this machine are downloaded for local use.
        options: the backend's options (its ``Settings``; None: those of the nearest enclosing store
            opened with options in this process, else the defaults; see ``backend.open_backend``).
    """

    def __init__(self, root: str, cache_dir: str | None = None, options: dict[str, Any] | None = None):
        self.root = root.rstrip("/")
        self.backend = open_backend(self.root, options)
        self.options: dict[str, Any] = self.backend.settings.model_dump(exclude_defaults=True)
        """The backend's options that differ from their defaults (what a job carries to another process)."""
        default_cache = os.path.join(tempfile.gettempdir(), "muppet-cache", digest(self.root)[:12])
        self.cache_dir = Path(cache_dir or os.environ.get("MUPPET_CACHE", default_cache))

    @staticmethod
    def key(stage: str, **inputs: Any) -> str:
        """The content key of a stage's output: a digest of everything that determines it."""
        return digest({"stage": stage, **inputs})[:24]

    def uri(self, stage: str, key: str) -> str:
        """Where the artifact lives."""
        return f"{self.root}/{stage}/{key}"

    def has(self, stage: str, key: str) -> bool:
        """True when the artifact is complete (its manifest exists)."""
        return self.backend.exists(f"{stage}/{key}/{MANIFEST}")

    def manifest(self, stage: str, key: str) -> dict[str, Any]:
        """The manifest of a complete artifact, checked against its own digest.

        Raises:
            FileNotFoundError: the artifact is not in the store.
            CorruptArtifactError: the manifest is damaged.
        """
        return parse_manifest(self._manifest_bytes(stage, key), self.uri(stage, key))

    def _manifest_bytes(self, stage: str, key: str) -> bytes:
        try:
            return self.backend.read(f"{stage}/{key}/{MANIFEST}")
        except FileNotFoundError:
            raise FileNotFoundError(f"artifact {self.uri(stage, key)} is not in the store") from None

    def publish(self, stage: str, key: str, local_dir: str | Path, meta: dict[str, Any] | None = None) -> str:
        """Copy a finished local directory into the store; the manifest goes last (the backend's
        ``put_dir``). When a complete artifact is already there (a concurrent run finished first)
        it is kept and this copy discarded.

        Raises:
            StoreError: the folder holds no files, or the store refused or kept failing.
        """
        local_dir = Path(local_dir)
        manifest = build_manifest(stage, key, local_dir, meta)
        if not manifest["files"]:
            raise StoreError(f"refusing to publish {self.uri(stage, key)} with no files: the stage wrote nothing into {local_dir}")
        seal = (MANIFEST, json.dumps(manifest, indent=1).encode())
        if not self.backend.put_dir(f"{stage}/{key}", local_dir, list(manifest["files"]), seal):
            log.info("%s was published by another run first: keeping it, discarding this copy", self.uri(stage, key))
        return self.uri(stage, key)

    def fetch(self, stage: str, key: str) -> Path:
        """A local directory holding the artifact's files (in place on a store on this machine, else
        downloaded once into the cache folder), each checked against its sha256 in the manifest.

        Raises:
            FileNotFoundError: the artifact is not in the store.
            CorruptArtifactError: a file is missing or differs from the manifest.
            StoreError: the store refused or kept failing.
        """
        uri = self.uri(stage, key)
        blob = self._manifest_bytes(stage, key)
        manifest = parse_manifest(blob, uri)
        in_place = self.backend.local_path(f"{stage}/{key}")
        if in_place is not None:
            verify_folder(in_place, manifest, uri)
            return in_place
        local = self.cache_dir / stage / key
        if self._cached_copy_valid(local, manifest, uri):
            return local
        tmp = local.with_name(f"{key}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            for rel in manifest["files"]:
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                try:
                    self.backend.get_file(f"{stage}/{key}/{rel}", tmp / rel)
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
        """Take a (corrupt) artifact out of the store, its manifest first (the backend's ``discard``:
        set aside under ``_corrupt/`` locally, deleted on S3), and its local copy with it. Returns where it went."""
        where = self.backend.discard(f"{stage}/{key}", MANIFEST)
        local = self.cache_dir / stage / key
        forget(local)
        shutil.rmtree(local, ignore_errors=True)
        return where

    def write_json(self, stage: str, key: str, record: dict[str, Any], meta: dict[str, Any] | None = None) -> str:
        """Publish a small JSON record as ``record.json``."""
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "record.json").write_text(json.dumps(record, indent=1, sort_keys=True))
            return self.publish(stage, key, tmp, meta)

    def read_json(self, stage: str, key: str) -> dict[str, Any]:
        """Read back a record published with write_json (checked against the manifest)."""
        return json.loads((self.fetch(stage, key) / "record.json").read_text())

    def scratch(self, stage: str, key: str) -> Path:
        """A local working folder for a stage's unfinished work: under the store for a store on this
        machine, under the cache folder otherwise."""
        return self.backend.local_path(f"_scratch/{stage}/{key}") or self.cache_dir / "scratch" / stage / key

    def scratch_uri(self, stage: str, key: str) -> str:
        """A stage's unfinished work inside the store itself (checkpoints, a multi-node run's job and
        export), which every machine that reaches the store reaches."""
        return f"{self.root}/_scratch/{stage}/{key}"

    def require_shared(self, what: str, shared: bool = False) -> None:
        """Refuse a store that other machines cannot reach (a local path, unless ``shared`` says every
        machine mounts it there), before any work. Raises StoreError, one line naming ``what`` needs it."""
        if self.backend.local_path("") is not None and not shared:
            raise StoreError(f"{what} needs an artifact store that every machine reaches, and {self.root} is a path on this "
                             "machine: use an s3:// store (or, for a path every machine mounts, set shared_store: true)")

    def lock_path(self, stage: str, key: str) -> Path:
        """The local file that serializes builds of one key on this machine."""
        return self.scratch(stage, key).parent.parent / ".locks" / stage / f"{key}.lock"

    def lock(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Hold the store's lock ``name`` (a safe path, such as ``kept/<pipeline>``) for the block: every
        process that reaches the store takes its turn, on this machine or (S3) any other."""
        return self.backend.lock(name)

    def check_access(self) -> None:
        """Write, read back and delete a small probe object under the root, so refused credentials
        or an unreachable store stop a run before any work, leaving nothing behind.

        Raises:
            StoreError: one line: which store, what failed, what to check.
        """
        name, data = f"_probe-{uuid.uuid4().hex}", b"muppet access probe\n"
        try:
            self.backend.write(name, data)
            if self.backend.read(name) != data:
                raise StoreError(f"the artifact store {redact(self.root)} returned other bytes than were written to {redact(self.root)}/{name}")
            self.backend.delete(name)
        except StoreError:
            raise
        except PermissionError as exc:
            raise StoreError(f"cannot write to the artifact store {self.root}: {cause(exc)}") from exc
        except OSError as exc:
            raise StoreError(f"cannot use the artifact store {redact(self.root)}: {cause(exc)}") from exc
