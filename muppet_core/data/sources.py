"""Where a dataset's raw rows come from: the mirror directory first, else the Hugging Face hub."""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import fsspec

from muppet_core.artifacts.store import files_digest
from muppet_core.errors import DataSourceError, first_line, hub_failure
from muppet_core.tasks.catalog import MirrorFiles, TaskSpec
from muppet_core.tasks.readers import READERS

log = logging.getLogger(__name__)
SHA = re.compile(r"[0-9a-f]{40}")
"""A full git commit sha."""


def _resolve(files: MirrorFiles, mirror: str, fs, task: str) -> MirrorFiles:
    """Join the entry's paths to the mirror; a path with '*' becomes the sorted list of its matches.

    Raises:
        DataSourceError: a pattern matches a folder (a dataset's files are read one by one).
    """
    def join(rel: str):
        path = f"{mirror.rstrip('/')}/{rel}"
        if "*" not in rel:
            return path
        protocol = mirror.split("://", 1)[0] + "://" if "://" in mirror else ""
        matches = fs.glob(path, detail=True)
        if folders := sorted(p for p, info in matches.items() if info.get("type") == "directory"):
            raise DataSourceError(f"dataset '{task}': the mirror pattern '{rel}' matches the folder {protocol + folders[0].removeprefix(protocol)}; "
                                  "make it match files only (for example '*.jsonl')")
        return [protocol + p.removeprefix(protocol) for p in sorted(matches)]

    if isinstance(files, str):
        return join(files)
    if isinstance(files, dict):
        return {k: join(v) for k, v in files.items()}
    return [p for f in files for p in _flat(join(f))]


def _flat(files: MirrorFiles) -> list[str]:
    if isinstance(files, str):
        return [files]
    values = files.values() if isinstance(files, dict) else files
    return [p for v in values for p in ([v] if isinstance(v, str) else v)]


def mirror_paths(files: dict[str, MirrorFiles]) -> list[str]:
    """Every file of a task's resolved mirror entry (``mirror_files``), split after split."""
    return [p for f in files.values() for p in _flat(f)]


def _escapes(rel: str) -> bool:
    """Whether a catalog path would leave the mirror: absolute, a URI, or climbing with '..'."""
    parts = rel.replace("\\", "/").split("/")
    return rel.startswith(("/", "\\", "~")) or "://" in rel or ".." in parts


def mirror_files(spec: TaskSpec, mirror: str | None) -> dict[str, MirrorFiles] | None:
    """The task's mirror entry resolved under ``mirror``, or None when any file is missing.

    Raises:
        DataSourceError: the entry names a path outside the mirror (absolute or with '..'), or a
            pattern that matches a folder.
    """
    if not mirror or not spec.mirror:
        return None
    outside = [p for files in spec.mirror.values() for p in _flat(files) if _escapes(p)]
    if outside:
        raise DataSourceError(f"dataset '{spec.name}': mirror paths must stay inside the mirror, found {outside}")
    fs, _ = fsspec.core.url_to_fs(mirror)
    resolved = {split: _resolve(files, mirror, fs, spec.name) for split, files in spec.mirror.items()}
    if any(not _flat(files) for files in resolved.values()):
        return None  # a glob matched nothing
    if not all(fs.exists(p) for files in resolved.values() for p in _flat(files)):
        return None
    return resolved


def source_fingerprint(spec: TaskSpec, mirror: str | None) -> dict[str, Any]:
    """What identifies the raw data: the mirror files' contents, or the hub id, config and the commit
    sha the data is read at (``hub_revision``: asked of the hub, once per call).

    Raises:
        DataSourceError: the data is not in the mirror and the hub cannot name its revision.
    """
    files = mirror_files(spec, mirror)
    if files is not None:
        return {"kind": "mirror", "sha256": files_digest(mirror_paths(files))}
    return {"kind": "hub", "hub": spec.hub.model_dump(exclude={"revision"}), "revision": hub_revision(spec, mirror)}


def _offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` is set (read now, as a run's settings may change after import)."""
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def hub_revision(spec: TaskSpec, mirror: str | None = None) -> str:
    """The commit sha the hub's data is read at: that of the entry's pinned ``hub.revision`` (a sha
    or tag), else the current one of ``main``, from ``HfApi.dataset_info``. Offline (``HF_HUB_OFFLINE``),
    a pinned full sha as it is, else the one the Hugging Face cache last resolved the revision to
    (its ``refs/``), with a warning that says so.

    Raises:
        DataSourceError: the hub cannot name it (missing, gated, unreachable, or offline with nothing
            cached), in the one message of ``missing_message``.
    """
    wanted = spec.hub.revision
    if _offline():
        if wanted and SHA.fullmatch(wanted):
            return wanted
        cached = _cached_revision(spec.hub.path, wanted or "main")
        if cached is None:
            raise DataSourceError(missing_message(spec, mirror, f"offline (HF_HUB_OFFLINE) and no revision '{wanted or 'main'}' in the cache"))
        log.warning("dataset %s: offline (HF_HUB_OFFLINE), using the last resolved revision %s of %s", spec.name, cached, spec.hub.path)
        return cached
    try:
        from huggingface_hub import HfApi

        with _quiet_hub():
            sha = HfApi().dataset_info(spec.hub.path, revision=wanted).sha
    except Exception as exc:  # any failure of the hub ends in the same clear message
        raise DataSourceError(missing_message(spec, mirror, hub_failure(exc))) from None
    if not (wanted and SHA.fullmatch(wanted)):
        _ref_file(spec.hub.path, wanted or "main").parent.mkdir(parents=True, exist_ok=True)
        _ref_file(spec.hub.path, wanted or "main").write_text(sha)  # what an offline run takes (the rows are read by sha, which writes no ref)
    return sha


def _ref_file(repo: str, revision: str) -> Path:
    """Where the Hugging Face cache keeps the sha a revision of the dataset ``repo`` resolved to
    (its documented layout: ``datasets--ORG--NAME/refs/REVISION``)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / f"datasets--{repo.replace('/', '--')}" / "refs" / revision


def _cached_revision(repo: str, revision: str) -> str | None:
    """The sha the Hugging Face cache holds for ``revision`` of the dataset ``repo``, or None."""
    ref = _ref_file(repo, revision)
    return ref.read_text().strip() if ref.is_file() else None


def missing_message(spec: TaskSpec, mirror: str | None, reason: str) -> str:
    """The one message shown when a dataset can be found nowhere."""
    wanted = ", ".join(p for f in spec.mirror.values() for p in _flat(f)) or "(no mirror files listed)"
    hub = spec.hub.path + (f" ({spec.hub.name})" if spec.hub.name else "")
    return (
        f"dataset '{spec.name}' is not in the data mirror ({mirror or 'no mirror set'}; expected {wanted}) "
        f"and could not be loaded from the Hugging Face hub as {hub}: {reason}. "
        f"Either put the original files under the mirror (pipelines.yaml data.mirror or $MUPPET_DATA_MIRROR), "
        f"or make the hub reachable (network access, or a warm HF_HOME cache)."
    )


@contextlib.contextmanager
def _quiet_hub():
    """Silence the hub client's retry warnings; its failure is reported once, by us."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)



def raw_splits(spec: TaskSpec, mirror: str | None, revision: str | None = None) -> tuple[str, dict[str, Iterable[dict]]]:
    """The raw rows of every available split, and which source they came from ('mirror' or 'hub').
    From the hub they are read at ``revision`` (the sha the data is keyed by), else at the entry's own.

    Raises:
        DataSourceError: when the mirror lacks the files and the hub cannot be reached.
    """
    files = mirror_files(spec, mirror)
    if files is not None:  # a hub-only entry names no reader
        reader = READERS.get(spec.reader)
        return "mirror", {split: reader(f, **spec.reader_options) for split, f in files.items()}
    log.info("dataset %s: not in the mirror, loading %s from the hub", spec.name, spec.hub.path)
    try:
        import datasets

        with _quiet_hub():
            loaded = datasets.load_dataset(spec.hub.path, spec.hub.name, revision=revision or spec.hub.revision)
    except Exception as exc:  # any failure of the hub path ends in the same clear message
        raise DataSourceError(missing_message(spec, mirror, first_line(exc))) from None
    return "hub", {ours: loaded[theirs] for ours, theirs in spec.hub.splits.items() if theirs in loaded}


def hub_reachable_or_raise(spec: TaskSpec, mirror: str | None) -> None:
    """Cheap pre-flight for a dataset absent from the mirror: can the hub describe it?"""
    if mirror_files(spec, mirror) is not None:
        return
    try:
        import datasets

        with _quiet_hub():
            datasets.load_dataset_builder(spec.hub.path, spec.hub.name, revision=spec.hub.revision)
    except Exception as exc:
        raise DataSourceError(missing_message(spec, mirror, first_line(exc))) from None

