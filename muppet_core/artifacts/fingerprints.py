"""Digests of values, files and code: what content keys are made of."""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import re
import threading
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


PACKAGE = "muppet_core"
TRAINING_LIBRARIES = ("torch", "transformers", "deepspeed", "datasets")
METRIC_LIBRARIES = ("scikit-learn", "scipy", "rouge-score")
"""The libraries that compute the metrics: part of the fine-tune key with the training libraries."""
_PARSE_LOCK = threading.Lock()
"""ast.parse is not safe in several threads at once on CPython 3.11 (the data stage's tasks run in
threads): "AST constructor recursion depth mismatch"."""
_MODULE_NAME = re.compile(r"^(muppet_core(?:\.\w+)*)(?::\w+)?$")


def _module_file(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec is not None and spec.origin and spec.origin.endswith(".py") else None


def _imported_modules(name: str, file: Path) -> frozenset[str]:
    """The project's modules that ``file`` (the module ``name``) imports, anywhere in its body, or
    names as a registry target (``"muppet_core.x.y:attr"``). Each file is parsed once per process while
    it is unchanged: every stage's closure shares most of the project's modules."""
    stat = file.stat()
    return _parsed_imports(name, file, stat.st_mtime_ns, stat.st_size)


@functools.cache
def _parsed_imports(name: str, file: Path, mtime_ns: int, size: int) -> frozenset[str]:
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    with _PARSE_LOCK:
        tree = ast.parse(file.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and (match := _MODULE_NAME.match(node.value)):
            found.add(match.group(1))
    return frozenset(m for m in found if _own(m))


def _own(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


def imported_closure(*modules: str) -> dict[str, Path]:
    """``modules`` (of the project or not, such as a user's normalizers) and every module of the
    project they import, transitively (read statically), by name."""
    seen: dict[str, Path] = {}
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        file = _module_file(name)
        if file is None:  # an attribute imported from a module, not a module itself
            continue
        seen[name] = file
        parts = name.split(".")
        if _own(name):
            todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # the packages it sits in
        todo += sorted(_imported_modules(name, file))
    return seen


@functools.cache
def code_version(*modules: str) -> str:
    """A digest of the source of ``modules`` and of every project module they import, transitively,
    plus the YAML data files beside them (the paper's numbers, say).

    A stage's artifact keys include the code version of the code it runs, so editing that code
    recomputes the stage and editing unrelated code does not. Computed once per process: the code
    a process runs is what it imported, whatever is edited on disk meanwhile.
    """
    files = imported_closure(*modules)
    data = {f for path in files.values() for f in path.parent.glob("*.yaml")}
    entries = sorted((name, hashlib.sha256(path.read_bytes()).hexdigest()) for name, path in files.items())
    entries += sorted((f"{f.parent.name}/{f.name}", hashlib.sha256(f.read_bytes()).hexdigest()) for f in data)
    return digest(entries)[:16]


@functools.cache
def library_versions(names: tuple[str, ...] = TRAINING_LIBRARIES) -> dict[str, str | None]:
    """Versions of the libraries whose numerics a stage's result depends on (part of its key): by
    default the training libraries."""
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found
