"""The results history of a pipeline: every run appends its leaderboard, so scheduled
re-evaluations show how each backbone's scores evolved.

One file per run under ``pipelines/<name>/history/`` (named by UTC time, so names sort by time):
appending never rewrites an earlier entry, which also holds on an s3:// store.
"""

from __future__ import annotations

import io
import logging
from datetime import datetime, timezone

import pandas as pd

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.errors import first_line
from muppet_core.leaderboard.kept import KeptIndex
from muppet_core.leaderboard.render import points
from muppet_core.leaderboard.schema import Leaderboard, Schema
from muppet_core.registry import safe_name

log = logging.getLogger(__name__)
ID_COLUMNS = ["time", "run", "leaderboard", "model", "backbone", "variant", "variant_key"]


class HistoryEntry(Schema):
    """One pipeline run's leaderboard."""

    time: str
    """When the run published it (UTC, ISO 8601)."""
    run: str | None = None
    """The Prefect flow run that published it."""
    board: Leaderboard
    """The leaderboard as published."""
    evaluated: list[str] | None = None
    """Labels of the backbones the run evaluated (the board also holds those kept from earlier
    runs); None in entries written before the table kept them: every row."""
    pruned: str | None = None
    """The backbone this entry dropped from the table (``muppet results --prune``)."""
    kept: KeptIndex | None = None
    """The pipeline's kept index as this entry left it, from which a damaged or deleted one is rebuilt
    (None in entries written before it was kept here)."""


def history_dir(pipeline: str) -> str:
    """Where a pipeline's history lives in the store.

    Raises:
        MuppetError: the pipeline name is not a safe name (``registry.safe_name``).
    """
    return f"pipelines/{safe_name('pipeline', pipeline)}/history"


def append_history(
    store: ArtifactStore, board: Leaderboard, run: str | None = None, now: datetime | None = None,
    evaluated: list[str] | None = None, pruned: str | None = None, kept: KeptIndex | None = None,
) -> str:
    """Append the leaderboard of one run to the pipeline's history; returns the entry's location.

    Args:
        store: the artifact store.
        board: the leaderboard as published.
        run: the Prefect flow run.
        now: the entry's time (default: now).
        evaluated: labels of the backbones the run evaluated (None: every row of the board).
        pruned: the backbone the entry dropped from the table.
        kept: the pipeline's kept index after this run.
    """
    now = now or datetime.now(timezone.utc)
    entry = HistoryEntry(time=now.isoformat(timespec="seconds"), run=run, board=board, evaluated=evaluated, pruned=pruned, kept=kept)
    name = f"{now:%Y%m%dT%H%M%S%fZ}-{board.key[:8] or 'nokey'}.json"
    return store.write_text(f"{history_dir(board.pipeline)}/{name}", entry.model_dump_json())


def read_history(store: ArtifactStore, pipeline: str) -> list[HistoryEntry]:
    """Every history entry of a pipeline, oldest first; one that cannot be read back is skipped, with a warning."""
    folder = history_dir(pipeline)
    entries = []
    for name in store.list(folder, ".json"):
        try:
            entries.append(HistoryEntry.model_validate_json(store.read_bytes(f"{folder}/{name}")))
        except ValueError as exc:
            log.warning("skipping the damaged history entry %s/%s/%s: %s", store.root, folder, name, first_line(exc))
    return entries


def history_frame(entries: list[HistoryEntry], backbone: str | None = None) -> pd.DataFrame:
    """One row per run and backbone variant it evaluated: each column's value (a fraction) and, for
    benchmarks, the number of finished runs behind it; a pruning is one row ``<backbone> (pruned)``
    without values. Columns are the union over runs, in order of appearance."""
    rows, names = [], {}
    for entry in entries:
        board = entry.board
        for column in board.columns:
            names.setdefault(column.name, column.kind == "benchmark")
        if entry.pruned is not None and backbone in (None, entry.pruned):
            rows.append({"time": entry.time, "run": entry.run, "leaderboard": board.key, "model": f"{entry.pruned} (pruned)",
                         "backbone": entry.pruned, "variant": "pruned", "variant_key": None})
        for row in board.rows:
            if backbone is not None and row.backbone != backbone:
                continue
            if entry.evaluated is not None and row.backbone not in entry.evaluated:
                continue
            out = {"time": entry.time, "run": entry.run, "leaderboard": board.key, "model": row.model,
                   "backbone": row.backbone, "variant": row.variant, "variant_key": row.variant_key}
            for name, cell in row.cells.items():
                out[name] = cell.value
                out[f"{name}.n"] = cell.n
            rows.append(out)
    columns = list(ID_COLUMNS)
    for name, is_benchmark in names.items():
        columns += [name, f"{name}.n"] if is_benchmark else [name]
    frame = pd.DataFrame(rows, columns=columns)
    for name in frame.columns:
        if name.endswith(".n"):
            frame[name] = frame[name].astype("Int64")
    return frame


def render_history(entries: list[HistoryEntry], fmt: str, backbone: str | None = None) -> str:
    """The history as CSV (values unformatted), JSON (records) or Markdown (×100, one decimal).

    Raises:
        KeyError: ``backbone`` names no row of the history.
    """
    frame = history_frame(entries, backbone)
    if backbone is not None and frame.empty:
        known = sorted({r.backbone for e in entries for r in e.board.rows} | {e.pruned for e in entries if e.pruned})
        raise KeyError(f"no backbone '{backbone}' in the history; known: {', '.join(known) or 'none'}")
    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt == "json":
        buffer = io.StringIO()
        frame.to_json(buffer, orient="records", indent=1)
        return buffer.getvalue() + "\n"
    values = [c for c in frame.columns if c not in ID_COLUMNS and not c.endswith(".n")]
    header = ["time", "model", "variant_key", *values]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for _, r in frame.iterrows():
        cells = [r["time"], r["model"], "" if pd.isna(r["variant_key"]) else str(r["variant_key"])[:8]]
        cells += [points(None if pd.isna(r[c]) else float(r[c])) for c in values]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join([f"## Results history: {entries[0].board.pipeline if entries else ''}", "", *lines, ""])
