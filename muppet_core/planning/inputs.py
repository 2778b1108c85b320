"""What a plan knows of a pipeline's datasets and store: rows and token lengths per dataset (the data stage's stats in
the store, else the mirror's raw rows, else the hub's dataset info where reachable, else unknown and why), and the
artifacts the store already holds for the pipeline."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from urllib.parse import urlparse

from muppet_core import stages
from muppet_core.artifacts.manifest import MANIFEST
from muppet_core.artifacts.store import ArtifactStore
from muppet_core.data.sources import mirror_files, mirror_paths, raw_splits
from muppet_core.errors import MuppetError, first_line
from muppet_core.tasks.catalog import TaskSpec

HUB_PROBE_S = 3.0
"""Seconds a plan waits for the hub before it calls it unreachable."""


@dataclass
class TaskRows:
    """One dataset as a plan sees it.

    Attributes:
        task: its catalog name.
        rows: rows per split (None: unknown).
        tokens: median tokens per example of its training split (None: unknown).
        source: where ``rows`` came from, or why they are unknown.
        data_bytes: bytes of its normalized artifact (stored) or raw files (mirror); None: unknown.
    """

    task: str
    rows: dict[str, int] | None
    tokens: float | None
    source: str
    data_bytes: int | None = None


@dataclass
class Holdings:
    """What the store holds that a run of the pipeline could take instead of computing it.

    Matched by what the artifacts' manifests say (dataset, pre-finetuning tasks and steps, fine-tune benchmark, variant and
    seed), not by key: a run computes its keys, and one setting changed since means a recompute.
    """

    data: dict[str, dict] = field(default_factory=dict)
    """Dataset -> the stats record of its normalized artifact in the store."""
    data_bytes: dict[str, int] = field(default_factory=dict)
    prefinetunes: list[str] = field(default_factory=list)
    """Keys of stored pre-finetunes on exactly the pipeline's tasks and steps."""
    finetunes: set[tuple[str, str, int]] = field(default_factory=set)
    """(benchmark, variant, seed) of stored fine-tunes."""
    bytes_by_stage: dict[str, int] = field(default_factory=dict)
    note: str = ""


def _keys(store: ArtifactStore, stage: str) -> list[str]:
    return sorted({rel.split("/")[0] for rel in store.backend.find(stage) if rel.endswith(f"/{MANIFEST}")})


def _size(store: ArtifactStore, stage: str, key: str, manifest: dict) -> int | None:
    local = store.backend.local_path(f"{stage}/{key}")
    if local is None:
        return None
    return sum((local / rel).stat().st_size for rel in manifest.get("files", {}) if (local / rel).is_file())


def store_holdings(store: ArtifactStore, tasks: list[str], steps: int) -> Holdings:
    """The data, pre-finetunes and fine-tunes the store holds (see ``Holdings``); an unreadable store is said so."""
    held = Holdings()
    try:
        for stage in (stages.DATA, stages.PREFINETUNE, stages.FINETUNE):
            for key in _keys(store, stage):
                try:
                    manifest = store.manifest(stage, key)
                except Exception:  # a damaged or half-written artifact: a run recomputes it
                    continue
                size = _size(store, stage, key, manifest)
                held.bytes_by_stage[stage] = held.bytes_by_stage.get(stage, 0) + (size or 0)
                meta = manifest.get("meta", {})
                if stage == stages.DATA and "stats.json" in manifest.get("files", {}):
                    stats = json.loads(store.backend.read(f"{stage}/{key}/stats.json"))
                    held.data[stats["task"]] = stats
                    held.data_bytes[stats["task"]] = size or 0
                elif stage == stages.PREFINETUNE and meta.get("tasks") == tasks and meta.get("steps") == steps:
                    held.prefinetunes.append(key)
                elif stage == stages.FINETUNE and "benchmark" in meta:
                    held.finetunes.add((meta["benchmark"], meta.get("variant", ""), meta.get("seed", 0)))
    except (OSError, MuppetError) as exc:  # an unreachable or refused store: the plan says so and goes on
        held.note = f"the store could not be read: {first_line(exc)}"
    return held


def hub_unreachable() -> str | None:
    """Why the Hugging Face hub cannot be reached from here (None: it answers)."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return "HF_HUB_OFFLINE is set"
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout=HUB_PROBE_S).close()
    except OSError as exc:
        return f"{url.hostname} did not answer ({exc.strerror or first_line(exc)})"
    return None


def _from_stats(spec: TaskSpec, stats: dict, size: int) -> TaskRows:
    median = stats.get("tokens", {}).get("train", {}).get("p50")
    return TaskRows(spec.name, dict(stats["rows"]), median, f"store (the data stage's stats, read from {stats.get('source', '?')})", size)


_MIRROR_ROWS: dict[tuple, dict[str, int]] = {}
"""Raw rows per split already counted in this process, by the reader, its options and each local file's
real path, inode, size and modification time: a run's plan counts the rows of its tasks' files, and a
process that plans many runs (a server, the test suite) reads each unchanged file once."""


def _from_mirror(spec: TaskSpec, mirror: str, files: dict) -> TaskRows:
    """The raw rows of ``files``, the task's resolved mirror entry (``mirror_files``)."""
    paths = mirror_paths(files)
    local = all(isinstance(p, str) and os.path.isfile(p) for p in paths)
    stats = [(os.path.realpath(p), os.stat(p)) for p in paths] if local else []
    key = (spec.reader, json.dumps(spec.reader_options, sort_keys=True, default=str), json.dumps(files, sort_keys=True, default=str),
           tuple((p, st.st_ino, st.st_size, st.st_mtime_ns) for p, st in stats)) if local else None
    rows = _MIRROR_ROWS.get(key) if key else None
    if rows is None:
        _, splits = raw_splits(spec, mirror)
        rows = {split: sum(1 for _ in it) for split, it in splits.items()}
        if key:
            _MIRROR_ROWS[key] = rows
    size = sum(st.st_size for _, st in stats)
    return TaskRows(spec.name, dict(rows), None, "mirror (raw rows, before normalization drops any)", size or None)


def _from_hub(spec: TaskSpec) -> TaskRows:
    import datasets

    info = datasets.load_dataset_builder(spec.hub.path, spec.hub.name).info
    splits = info.splits or {}
    rows = {ours: splits[theirs].num_examples for ours, theirs in spec.hub.splits.items() if theirs in splits}
    return TaskRows(spec.name, rows or None, None, f"hub dataset info ({spec.hub.path})", info.dataset_size)


def task_rows(specs: list[TaskSpec], mirror: str | None, held: Holdings) -> list[TaskRows]:
    """Rows of every dataset: the store's stats, else the mirror's raw rows, else the hub's info, else unknown and why."""
    out, hub_problem = [], "not probed"
    probed = False
    for spec in specs:
        if spec.name in held.data:
            out.append(_from_stats(spec, held.data[spec.name], held.data_bytes.get(spec.name, 0)))
            continue
        try:
            if (files := mirror_files(spec, mirror)) is not None:
                out.append(_from_mirror(spec, mirror, files))
                continue
        except MuppetError as exc:
            out.append(TaskRows(spec.name, None, None, f"unknown: the mirror's files could not be read ({first_line(exc)})"))
            continue
        if not probed:
            hub_problem, probed = hub_unreachable(), True
        if hub_problem:
            where = f"not in the mirror ({mirror})" if mirror else "no mirror set"
            out.append(TaskRows(spec.name, None, None, f"unknown: {where} and the hub is not reachable ({hub_problem})"))
            continue
        try:
            out.append(_from_hub(spec))
        except Exception as exc:  # any failure of the hub's client: its first line says why
            out.append(TaskRows(spec.name, None, None, f"unknown: the hub's dataset info failed ({first_line(exc)})"))
    return out
