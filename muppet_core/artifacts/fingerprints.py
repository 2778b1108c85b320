"""Digests of values, files and code: what content keys are made of."""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import fsspec


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


@functools.cache
def code_version(*packages: str) -> str:
    """A digest of the source files (.py, .yaml) of the given muppet_core subpackages or modules.

    A stage's artifact keys include the code version of the code it runs, so editing that code
    recomputes the stage and editing unrelated code does not. Computed once per process: the
    code a process runs is what it imported, whatever is edited on disk meanwhile.
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
