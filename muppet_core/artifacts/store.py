"""Content-addressed artifact store over fsspec (a local directory or an s3:// prefix).

An artifact lives at ``<root>/<stage>/<key>/`` where the key hashes the stage's inputs, its
config and its code version. A ``MANIFEST.json`` listing every file with its sha256 is written
last: an artifact without one is incomplete and treated as absent.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

MANIFEST = "MANIFEST.json"


def digest(value: Any) -> str:
    """A stable hex digest of a JSON-able value (dict keys sorted)."""
    blob = json.dumps(value, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def file_sha256(path: str, fs: fsspec.AbstractFileSystem | None = None) -> str:
    """sha256 of one file, read in chunks."""
    h = hashlib.sha256()
    opener = fs.open if fs is not None else (lambda p, mode: fsspec.open(p, mode).open())
    with opener(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def files_digest(paths: Iterable[str]) -> str:
    """One digest over the contents of several files (order-independent)."""
    return digest(sorted(file_sha256(p) for p in paths))


def code_version(*packages: str) -> str:
    """A digest of the source files (.py, .yaml) of the given muppet_core subpackages or modules.

    A stage's artifact keys include the code version of the code it runs, so editing that code
    recomputes the stage and editing unrelated code does not.
    """
    entries = []
    for name in sorted(packages):
        module = importlib.import_module(name)
        base = Path(module.__file__)
        files = sorted(base.parent.rglob("*")) if base.name == "__init__.py" else [base]
        for f in files:
            if f.suffix in {".py", ".yaml"} and "__pycache__" not in f.parts:
                entries.append((name, f.name, hashlib.sha256(f.read_bytes()).hexdigest()))
    return digest(entries)[:16]


class ArtifactStore:
    """Stage outputs keyed by content, on any fsspec filesystem.

    Args:
        root: a directory or URI (``s3://bucket/prefix``).
        cache_dir: where remote artifacts are downloaded for local use.
    """

    def __init__(self, root: str, cache_dir: str | None = None):
        self.root = root.rstrip("/")
        self.fs, self._root_path = fsspec.core.url_to_fs(self.root)
        self.is_local = isinstance(self.fs, LocalFileSystem)
        default_cache = os.path.join(tempfile.gettempdir(), "muppet-cache", digest(self.root)[:12])
        self.cache_dir = Path(cache_dir or os.environ.get("MUPPET_CACHE", default_cache))

    @staticmethod
    def key(stage: str, **inputs: Any) -> str:
        """The content key of a stage's output: a digest of everything that determines it."""
        return digest({"stage": stage, **inputs})[:24]

    def _path(self, *parts: str) -> str:
        return "/".join([self._root_path.rstrip("/"), *parts])

    def uri(self, stage: str, key: str) -> str:
        """Where the artifact lives."""
        return f"{self.root}/{stage}/{key}"

    def has(self, stage: str, key: str) -> bool:
        """True when the artifact is complete (its manifest exists)."""
        return self.fs.exists(self._path(stage, key, MANIFEST))

    def manifest(self, stage: str, key: str) -> dict[str, Any]:
        """The manifest of a complete artifact."""
        with self.fs.open(self._path(stage, key, MANIFEST), "r") as fh:
            return json.load(fh)

    def publish(self, stage: str, key: str, local_dir: str | Path, meta: dict[str, Any] | None = None) -> str:
        """Copy a finished local directory into the store; the manifest goes last.

        On a local filesystem the files are staged beside the target and renamed into place,
        so a reader never sees a half-written artifact.
        """
        local_dir = Path(local_dir)
        files = sorted(p for p in local_dir.rglob("*") if p.is_file())
        manifest = {
            "stage": stage,
            "key": key,
            "meta": meta or {},
            "files": {p.relative_to(local_dir).as_posix(): file_sha256(str(p)) for p in files},
        }
        target = self._path(stage, key)
        if self.is_local:
            staging = f"{target}.tmp-{uuid.uuid4().hex[:8]}"
            shutil.copytree(local_dir, staging)
            Path(staging, MANIFEST).write_text(json.dumps(manifest, indent=1))
            if os.path.exists(target):
                shutil.rmtree(target)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.rename(staging, target)
        else:
            for rel in manifest["files"]:
                self.fs.put_file(str(local_dir / rel), f"{target}/{rel}")
            with self.fs.open(f"{target}/{MANIFEST}", "w") as fh:
                json.dump(manifest, fh, indent=1)
        return self.uri(stage, key)

    def fetch(self, stage: str, key: str) -> Path:
        """A local directory holding the artifact's files (downloaded once for remote stores)."""
        if not self.has(stage, key):
            raise FileNotFoundError(f"artifact {self.uri(stage, key)} is not in the store")
        if self.is_local:
            return Path(self._path(stage, key))
        local = self.cache_dir / stage / key
        if not (local / MANIFEST).exists():
            tmp = local.with_name(f"{key}.tmp-{uuid.uuid4().hex[:8]}")
            for rel in [*self.manifest(stage, key)["files"], MANIFEST]:
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                self.fs.get_file(self._path(stage, key, rel), str(tmp / rel))
            shutil.rmtree(local, ignore_errors=True)
            os.rename(tmp, local)
        return local

    def write_json(self, stage: str, key: str, record: dict[str, Any], meta: dict[str, Any] | None = None) -> str:
        """Publish a small JSON record as ``record.json``."""
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "record.json").write_text(json.dumps(record, indent=1, sort_keys=True))
            return self.publish(stage, key, tmp, meta)

    def read_json(self, stage: str, key: str) -> dict[str, Any]:
        """Read back a record published with write_json."""
        with self.fs.open(self._path(stage, key, "record.json"), "r") as fh:
            return json.load(fh)

    def write_text(self, relpath: str, text: str) -> str:
        """Write a named (not content-addressed) file, such as a pipeline's latest leaderboard."""
        path = self._path(relpath)
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with self.fs.open(path, "w") as fh:
            fh.write(text)
        return f"{self.root}/{relpath}"

    def read_text(self, relpath: str) -> str:
        """Read a named file written with write_text."""
        with self.fs.open(self._path(relpath), "r") as fh:
            return fh.read()

    def scratch(self, stage: str, key: str) -> Path:
        """A local working folder for a stage's unfinished work (checkpoints): under the store for
        a local store, under the cache folder for a remote one."""
        base = Path(self._root_path) / "_scratch" if self.is_local else self.cache_dir / "scratch"
        return base / stage / key

    def exists(self, relpath: str) -> bool:
        """Whether a named file exists."""
        return self.fs.exists(self._path(relpath))
