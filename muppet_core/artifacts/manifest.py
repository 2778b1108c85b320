"""Manifests: every file of an artifact with its sha256, and the check of a folder against one.

A manifest also carries a digest of its own content, so a damaged manifest (its metadata
included) is caught like a damaged file.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from muppet_core.artifacts.fingerprints import digest
from muppet_core.errors import CorruptArtifactError

MANIFEST = "MANIFEST.json"
CHUNK = 1 << 20

_verified: dict[str, tuple] = {}
"""Folders verified by this process, with the sizes and modification times they had then."""
_lock = threading.Lock()


def local_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a local file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def build_manifest(stage: str, key: str, folder: Path, meta: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest of a finished local folder."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    manifest = {
        "stage": stage,
        "key": key,
        "meta": meta or {},
        "files": {p.relative_to(folder).as_posix(): local_sha256(p) for p in files},
    }
    return {**manifest, "digest": digest(manifest)}


def parse_manifest(blob: bytes | str, uri: str) -> dict[str, Any]:
    """A manifest read back, checked against its own digest (manifests written before the digest
    was added are taken as they are).

    Raises:
        CorruptArtifactError: it is not a manifest or its digest does not match.
    """
    try:
        manifest = json.loads(blob)
    except ValueError as exc:
        raise CorruptArtifactError(uri, MANIFEST, f"is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise CorruptArtifactError(uri, MANIFEST, "lists no files")
    recorded = manifest.get("digest")
    if recorded is not None and recorded != digest({k: v for k, v in manifest.items() if k != "digest"}):
        raise CorruptArtifactError(uri, MANIFEST, "does not match its own digest")
    return manifest


def _fingerprint(folder: Path, manifest: dict[str, Any]) -> tuple | None:
    try:
        stats = [(rel, os.stat(folder / rel)) for rel in [*manifest["files"], MANIFEST]]
    except OSError:
        return None
    return (digest(manifest), *((rel, s.st_size, s.st_mtime_ns, s.st_ino) for rel, s in stats))


def verify_folder(folder: Path, manifest: dict[str, Any], uri: str) -> None:
    """Check every file the manifest lists against its sha256; a folder already verified by this
    process, and unchanged since (sizes, modification times), is not read again.

    Raises:
        CorruptArtifactError: a file is missing or its content differs.
    """
    before = _fingerprint(folder, manifest)
    cache_key = str(Path(folder).resolve())
    if before is not None and _verified.get(cache_key) == before:
        return
    for rel, expected in manifest["files"].items():
        path = folder / rel
        if not path.is_file():
            raise CorruptArtifactError(uri, rel, "is missing")
        if local_sha256(path) != expected:
            raise CorruptArtifactError(uri, rel, "does not match its sha256 in the manifest")
    if before is not None and _fingerprint(folder, manifest) == before:
        with _lock:
            _verified[cache_key] = before


def forget(folder: Path) -> None:
    """Drop a folder's verification (it is being moved or deleted)."""
    with _lock:
        _verified.pop(str(Path(folder).resolve()), None)
