"""The leaderboard stage: result records -> a content-addressed leaderboard (CSV, Markdown, JSON,
PNG charts), published as the pipeline's latest under ``pipelines/<name>/`` and appended to its
results history. The table holds every backbone the pipeline keeps (``kept.py``), not only those
of the latest run."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from muppet_core.artifacts.stage import StageOutput, run_cached
from muppet_core.artifacts.store import ArtifactStore, code_version
from muppet_core.config import FinetuneConfig
from muppet_core.errors import MuppetError
from muppet_core.evaluation.results import ResultRecord
from muppet_core.leaderboard.aggregate import SELECTIONS, aggregate
from muppet_core.leaderboard.history import append_history, read_history
from muppet_core.leaderboard.kept import (
    DamagedIndex, KeptEntry, KeptIndex, ResultRef, fingerprint, index_lock, index_path, left_out, most_common, merge, read_index, read_records,
    scored_settings, split, write_index,
)
from muppet_core import stages
from muppet_core.leaderboard.paired import paired_tests
from muppet_core.leaderboard.paper import load_references
from muppet_core.leaderboard.plots import bar_chart, curve_charts
from muppet_core.leaderboard.read import missing_tables, published_path
from muppet_core.leaderboard.render import table_rows, to_csv, to_json, to_markdown
from muppet_core.leaderboard.schema import Leaderboard, LeftOut, Row, TaskExposure
from muppet_core.models.labels import backbone_label
from muppet_core.registry import safe_name

CHART = "leaderboard.png"
log = logging.getLogger(__name__)


def artifact_keys(pipeline: str) -> tuple[str, str]:
    """Stable Prefect artifact keys of a pipeline's leaderboard: (markdown, table).

    Prefect keeps every version of a key, so the UI shows each table's history. Keys allow
    lowercase letters, digits and dashes only.
    """
    base = f"leaderboard-{pipeline.replace('_', '-')}"
    return base, f"{base}-table"


def _pinned(own: str | None, backbones: list[str]) -> str | None:
    """The pipeline's own backbone as this run evaluated it: a hub id ``org/name`` as the
    ``org/name@<sha>`` among ``backbones`` (the commit its source resolved), anything else as it is."""
    return next((b for b in backbones if own and b.startswith(f"{own}@")), own)


def row_origins(board: Leaderboard, run: str) -> list[str]:
    """One line per row of the table: ``computed`` when the run ``run`` computed its results, else
    ``cached`` with the run that did (a backbone evaluated before, such as a watched hub id's older
    commit, is kept from the store and costs this run nothing)."""
    return [f"{row.model}: computed" if row.run == run else f"{row.model}: cached (computed in run {(row.run or 'unknown')[:8]})"
            for row in board.rows]


@dataclass(frozen=True)
class Published:
    """What one run of the stage published."""

    output: StageOutput
    board: Leaderboard
    markdown: str
    table: list[dict]
    csv_uri: str
    history_uri: str


def leaderboard_stage(
    pipeline: str,
    backbones: list[str],
    benchmarks: list[str],
    results: list[StageOutput],
    records: list[ResultRecord],
    store: ArtifactStore,
    selection: str = "median",
    run: str | None = None,
    finetune: FinetuneConfig | None = None,
    own: str | None = None,
    owners: dict[str, str] | None = None,
) -> Published:
    """Keep this run's results as the latest of their backbones, then build the leaderboard from
    every kept backbone whose results match the current settings, publish it and append it to
    the history.

    Args:
        pipeline: pipeline name.
        backbones: the backbones evaluated, as configured (they label the rows and are matched to the
            paper; a record without a backbone label belongs to the first).
        benchmarks: the benchmark columns, in order.
        results: the fine-tune outputs the records come from, one per record (kept in the index).
        records: their result records, in the same order, failed runs included.
        store: the artifact store.
        selection: the rule over seeds (see ``aggregate.SELECTIONS``).
        run: the Prefect flow run, kept in the index and the history entry.
        finetune: the pipeline's fine-tune settings, which kept results must match (None: only
            the benchmarks are compared).
        own: the pipeline's own backbone, marked in the table (default: the first of ``backbones``).
        owners: the backbone (as configured) of each variant key, which says whose a record is; None:
            its ``backbone`` label says (matched to the labels of ``backbones``).

    Raises:
        MuppetError: the pipeline name is not a safe name (checked before anything is written).
        ValueError: ``results`` and ``records`` differ in length.
    """
    safe_name("pipeline", pipeline)
    if len(results) != len(records):
        raise ValueError(f"{len(results)} fine-tune outputs for {len(records)} result records: give one output per record")
    by_label = {backbone_label(b): b for b in backbones}
    settings = scored_settings(finetune, benchmarks)
    fresh: dict[str, list[tuple[StageOutput, ResultRecord]]] = {}
    for output, record in zip(results, records):
        spec = (owners or {}).get(record.variant_key) or by_label.get(record.backbone or "", record.backbone or backbones[0])
        fresh.setdefault(spec, []).append((output, record))
    with index_lock(store, pipeline):
        now = datetime.now(timezone.utc)
        previous = load_index(store, pipeline)
        index = KeptIndex(
            pipeline=pipeline, own=_pinned(own, backbones) or (backbones[0] if backbones else None), benchmarks=benchmarks, selection=selection,
            settings=settings, fingerprint=fingerprint(settings), entries=previous.entries if previous else {},
            code_version=most_common([r.code_version for r in records]) or (previous.code_version if previous else None),
        )
        for spec, pairs in fresh.items():
            refs = [ResultRef(stage=o.stage, key=o.key) for o, _ in pairs]
            merge(index, spec, refs, [r for _, r in pairs], now.isoformat(timespec="seconds"), run)
        write_index(store, index)
        return publish(store, index, {spec: [r for _, r in pairs] for spec, pairs in fresh.items()}, run, now)


def prune_backbone(store: ArtifactStore, pipeline: str, backbone: str) -> tuple[Published, KeptEntry]:
    """Drop a backbone from the pipeline's table and publish the table again; the history records
    it, and its results stay in the store (a run that evaluates it again brings it back).

    Returns:
        What was published, and the entry that was dropped.

    Raises:
        MuppetError: the pipeline has no kept results or no backbone of that label, or its name
            is not a safe name.
    """
    with index_lock(store, pipeline):
        index = load_index(store, pipeline)
        if index is None:
            raise MuppetError(f"no leaderboard for '{pipeline}' in {store.root} to prune; run `muppet run {pipeline}` first")
        if (spec := index.find(backbone)) is None:
            known = ", ".join(index.labels().values()) or "none"
            raise MuppetError(f"no backbone '{backbone}' on the leaderboard of '{pipeline}'; known: {known}")
        label = index.labels()[spec]
        entry = index.entries.pop(spec)
        write_index(store, index)
        return publish(store, index, {}, None, datetime.now(timezone.utc), pruned=label), entry


def load_index(store: ArtifactStore, pipeline: str) -> KeptIndex | None:
    """The pipeline's index (``read_index``); one that is damaged, or missing although the pipeline
    has a history, is rebuilt from the history's latest copy of it, with a warning (a damaged file is
    set aside beside it first). Its entries name results in the store, which are read when the table
    is built; those gone are left out with why. None before the pipeline's first leaderboard run.
    """
    try:
        index = read_index(store, pipeline)
    except DamagedIndex as exc:
        aside = f"{index_path(pipeline)}.damaged-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"
        store.write_bytes(aside, store.read_bytes(index_path(pipeline)))
        why = f"{exc}; set it aside as {store.root}/{aside}"
    else:
        if index is not None:
            return index
        why = f"{store.root}/{index_path(pipeline)} is missing"
    entries = read_history(store, pipeline)
    kept = next((e.kept for e in reversed(entries) if e.kept is not None), None)
    if kept is not None:
        log.warning("%s: rebuilt it from the results history (%d backbone(s), as of %s)", why, len(kept.entries),
                    next(e.time for e in reversed(entries) if e.kept is not None))
    elif entries:
        log.warning("%s, and its results history predates the copies it is rebuilt from: starting a new one "
                    "(evaluate the backbones again to bring their rows back)", why)
    return kept


def _kept_records(store: ArtifactStore, index: KeptIndex, fresh: dict[str, list[ResultRecord]]) -> tuple[dict[str, list[ResultRecord]], list[LeftOut]]:
    """The records of every kept backbone that matches the current settings (this run's as given,
    the others read from the store), each labelled with its backbone's label, by backbone as
    configured; and the backbones left out."""
    specs, out = split(index)
    labels = index.labels()
    kept = {}
    for spec in specs:
        try:
            mine = fresh[spec] if spec in fresh else read_records(store, index.entries[spec])
        except MuppetError as exc:
            out.append(left_out(labels[spec], index.entries[spec], str(exc)))
            continue
        kept[spec] = [r.model_copy(update={"backbone": labels[spec]}) for r in mine]
    return kept, out


def _annotate(board: Leaderboard, index: KeptIndex, out: list[LeftOut]) -> None:
    """Mark each row with its backbone's provenance, and the board with what was left out."""
    labels = index.labels()
    by_label = {label: spec for spec, label in labels.items()}
    board.own = labels.get(index.own, backbone_label(index.own)) if index.own else None
    board.left_out = out
    for row in [*board.rows, *board.deltas]:
        row.own = row.backbone == board.own
        if (entry := index.entries.get(by_label.get(row.backbone, ""))) is None:
            continue
        row.computed_at, row.run, row.code_version = entry.computed_at, entry.run, entry.code_version
        row.older_code = None not in (entry.code_version, index.code_version) and entry.code_version != index.code_version


def examples_per_task(store: ArtifactStore, rows: list[Row]) -> dict[str, dict[str, TaskExposure]]:
    """Per pre-finetuned variant key, what each pre-finetuning task offered and how many examples it
    received, from the pre-finetune's ``train_summary.json`` (variants whose summary is not in the store are left out)."""
    out: dict[str, dict[str, TaskExposure]] = {}
    for key in dict.fromkeys(r.variant_key for r in rows if r.variant != "base" and r.variant_key):
        path = f"{stages.PREFINETUNE}/{key}/train_summary.json"
        if not store.exists(path):
            continue
        summary = json.loads(store.read_text(path))
        received, offered = summary.get("summary", {}).get("examples_per_task", {}), summary.get("tasks", {})
        out[key] = {t: TaskExposure(available=offered.get(t, {}).get("examples"), received=received.get(t, 0)) for t in sorted({*offered, *received})}
    return out


def publish(
    store: ArtifactStore, index: KeptIndex, fresh: dict[str, list[ResultRecord]], run: str | None, now: datetime, pruned: str | None = None,
) -> Published:
    """Build the table of the kept results, publish every rendering under ``pipelines/<name>/`` and
    append it, with the index, to the history.

    Args:
        store: the artifact store.
        index: the pipeline's kept results, this run's merged in.
        fresh: this run's records by backbone as configured (read from the store for the other backbones).
        run: the Prefect flow run, for the history entry.
        now: the time of the history entry.
        pruned: the label of the backbone this publication dropped, for the history entry.
    """
    output, board, texts = _publish_table(store, index, fresh)
    history_uri = append_history(store, board, run, now, evaluated=[index.labels()[spec] for spec in fresh], pruned=pruned, kept=index)
    return Published(output, board, texts["leaderboard.md"], table_rows(board), f"{store.root}/{published_path(index.pipeline, 'csv')}", history_uri)


def restore_published(store: ArtifactStore, pipeline: str) -> list[str]:
    """Where a file of the pipeline's latest table is missing from the store (deleted by hand), build
    the table again from its kept results and publish it, with a warning; no history entry is added.
    Returns the names of the files that were missing (none: nothing done, or no table to rebuild)."""
    missing = missing_tables(store, pipeline)
    if not missing:
        return []
    with index_lock(store, pipeline):
        if (index := load_index(store, pipeline)) is None:
            return []
        _publish_table(store, index, {})
    log.warning("%s of '%s' missing from %s: built again from the kept results", ", ".join(missing), pipeline, store.root)
    return missing


def _publish_table(store: ArtifactStore, index: KeptIndex, fresh: dict[str, list[ResultRecord]]) -> tuple[StageOutput, Leaderboard, dict[str, str]]:
    """The table of the kept results, published as a content-addressed artifact and as the pipeline's
    latest files: its output, board and texts."""
    pipeline = index.pipeline
    kept, out = _kept_records(store, index, fresh)
    records = [r for mine in kept.values() for r in mine]
    labels = {index.labels()[spec]: spec for spec in kept}
    provenance = {index.labels()[s]: [index.entries[s].computed_at, index.entries[s].run, index.entries[s].code_version] for s in kept}
    key = store.key(
        stages.LEADERBOARD, pipeline=pipeline, backbones=labels, benchmarks=index.benchmarks, selection=index.selection,
        records=sorted(r.model_dump_json() for r in records), code=code_version(__name__), own=index.own,
        provenance=provenance, current_code=index.code_version, left_out=[x.model_dump() for x in out],
    )
    board = aggregate(records, index.benchmarks, pipeline, index.selection, labels, load_references())
    _annotate(board, index, out)
    board.paired_tests = paired_tests(records, index.benchmarks, SELECTIONS[index.selection])
    board.examples_per_task = examples_per_task(store, board.rows)
    charts = {CHART: bar_chart(board), **{f"curves-{name}.png": png for name, png in curve_charts(records, index.selection).items()}}
    board.key = key
    board.links = {
        "csv": f"{store.uri(stages.LEADERBOARD, key)}/leaderboard.csv",
        "json": f"{store.uri(stages.LEADERBOARD, key)}/leaderboard.json",
        **{"chart" if name == CHART else name.removesuffix(".png"): f"{store.uri(stages.LEADERBOARD, key)}/{name}" for name in charts},
        "latest": f"{store.root}/pipelines/{pipeline}/",
    }
    texts = {"leaderboard.csv": to_csv(board), "leaderboard.md": to_markdown(board), "leaderboard.json": to_json(board)}
    refs = [ref.model_dump() for spec in kept for ref in index.entries[spec].results]

    def build(out_dir: Path) -> dict:
        for name, text in texts.items():
            (out_dir / name).write_text(text)
        for name, png in charts.items():
            (out_dir / name).write_bytes(png)
        return {"pipeline": pipeline, "results": refs}

    output = run_cached(store, stages.LEADERBOARD, pipeline, key, build)
    for name, text in texts.items():
        store.write_text(f"pipelines/{pipeline}/{name}", text)
    for name, png in charts.items():
        store.write_bytes(f"pipelines/{pipeline}/{name}", png)
    return output, board, texts
