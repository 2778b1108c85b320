"""Renderings of a leaderboard: one flat table (CSV and the Prefect table artifact), Markdown, JSON.

The CSV has one header row, a stable column order and unformatted numbers (fractions at full
precision); a missing cell is empty, never zero. The Markdown rounds to one decimal of ×100.
"""

from __future__ import annotations

import io
import math

import pandas as pd

from muppet_core.leaderboard.paper import load_references
from muppet_core.leaderboard.schema import Cell, Leaderboard, Row

ID_COLUMNS = ["model", "backbone", "variant", "variant_key", "selection"]
"""The first columns of the CSV; ``model`` (``<backbone> / <variant>``) is its first column."""
PROVENANCE = ["own", "computed_at", "run", "code_version", "older_code"]
"""After the ids: whether the row is the pipeline's own backbone, and where its results come from."""
OWN = "◆"
"""Marks the pipeline's own backbone in the Markdown."""
BENCHMARK_STATS = ["n", "min", "max", "std", "failed", "note", "scored"]
AVERAGE_STATS = ["note"]
PAPER_STATS = ["paper", "paper_verified", "vs_paper", "paper_note"]
COUNTS = ("n", "failed")
UNVERIFIED = "*"


def flat_columns(board: Leaderboard) -> list[str]:
    """Column order of the flat table: ids, each column's value then its stats, then the paper's
    numbers per benchmark (only when the backbone matches a family of the paper)."""
    names = [*ID_COLUMNS, *PROVENANCE]
    for column in board.columns:
        stats = BENCHMARK_STATS if column.kind == "benchmark" else AVERAGE_STATS
        names += [column.name, *(f"{column.name}.{s}" for s in stats)]
    if board.paper_families:
        names += [f"{b}.{s}" for b in board.benchmarks for s in PAPER_STATS]
    return names


def _flat_row(board: Leaderboard, row: Row) -> dict:
    out = {"model": row.model, "backbone": row.backbone, "variant": row.variant, "variant_key": row.variant_key, "selection": board.selection}
    out.update({name: getattr(row, name) for name in PROVENANCE})
    for column in board.columns:
        cell = row.cells[column.name]
        out[column.name] = cell.value
        stats = BENCHMARK_STATS if column.kind == "benchmark" else AVERAGE_STATS
        out.update({f"{column.name}.{s}": getattr(cell, s) for s in stats})
    for name, ref in row.paper.items():
        note = "; ".join(x for x in (
            f"paper metric {ref.metric}" + ("" if ref.comparable else ", not ours: not compared"), ref.note) if x)
        out.update({f"{name}.paper": ref.value, f"{name}.paper_verified": ref.verified, f"{name}.vs_paper": ref.diff, f"{name}.paper_note": note})
    return out


def table_rows(board: Leaderboard) -> list[dict]:
    """The flat table: one dict per row (variants, then deltas), every column present, None where missing."""
    names = flat_columns(board)
    return [{k: _flat_row(board, row).get(k) for k in names} for row in [*board.rows, *board.deltas]]


def to_frame(board: Leaderboard) -> pd.DataFrame:
    """The flat table as a DataFrame (counts as nullable integers)."""
    frame = pd.DataFrame(table_rows(board), columns=flat_columns(board))
    for name in frame.columns:
        if name.rsplit(".", 1)[-1] in COUNTS:
            frame[name] = frame[name].astype("Int64")
    return frame


def to_csv(board: Leaderboard) -> str:
    """CSV: one header row, stable column order, numbers unformatted, missing cells empty."""
    return to_frame(board).to_csv(index=False)


def from_csv(text: str) -> pd.DataFrame:
    """Read a leaderboard CSV back, indexed by ``model``."""
    return pd.read_csv(io.StringIO(text), index_col="model")


def to_json(board: Leaderboard) -> str:
    """The whole leaderboard document (read back with ``Leaderboard.model_validate_json``)."""
    return board.model_dump_json(indent=1)


def points(value: float | None, signed: bool = False) -> str:
    """A fraction as ×100 with one decimal; ``—`` when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"


def cell_text(cell: Cell, signed: bool = False, std: bool = False) -> str:
    """``84.2 (n=3, 83.1–85.0)`` for a benchmark cell (``84.2 ± 0.9 (n=3, ...)`` with ``std``), ``84.2``
    for an average, ``—`` when missing."""
    text = points(cell.value, signed)
    if std and cell.std is not None:
        text += f" ± {100 * cell.std:.1f}"
    if cell.value is not None and cell.n:
        spread = f", {points(cell.min)}–{points(cell.max)}" if cell.n > 1 else ""
        text += f" (n={cell.n}{spread})"
    return text


def _table(header: list[str], lines: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return out + ["| " + " | ".join(cells) + " |" for cells in lines]


def _header(board: Leaderboard) -> list[str]:
    return ["model", *(f"{c.name} ({c.metric})" if c.metric else c.name for c in board.columns)]


def ranked(rows: list[Row]) -> list[Row]:
    """Rows by their average, best first; rows without one last, in their order."""
    return sorted(rows, key=lambda r: (r.cells["average"].value is None, -(r.cells["average"].value or 0.0)))


def provenance_text(computed_at: str | None, run: str | None, older_code: bool = False) -> str:
    """``2026-01-03 09:12 UTC, run 1a2b3c4d`` (and ``, older code``); ``—`` when unknown."""
    if computed_at is None:
        return "—"
    text = computed_at[:16].replace("T", " ") + " UTC" + (f", run {run[:8]}" if run else "")
    return text + (", older code" if older_code else "")


def _scored_table(board: Leaderboard, rows: list[Row], notes: list[str], signed: bool) -> list[str]:
    lines = []
    computed = not signed and any(row.computed_at for row in rows)
    for row in rows:
        cells = [f"{row.model} {OWN}" if row.own and not signed else row.model]
        for column in board.columns:
            cell = row.cells[column.name]
            text = cell_text(cell, signed, std=board.selection == "mean")
            if cell.note and column.kind == "benchmark" and not signed:
                notes.append(f"{row.model}, {column.name}: {cell.note}")
                text += f" [{len(notes)}]"
            cells.append(text)
        if computed:
            cells.append(provenance_text(row.computed_at, row.run, row.older_code))
        lines.append(cells)
    return _table(_header(board) + (["computed"] if computed else []), lines)


def _kept_lines(board: Leaderboard) -> list[str]:
    """The caption's sentences on the rows kept from earlier runs, older code and what was left out."""
    lines = []
    if any(row.computed_at for row in board.rows):
        lines.append("The table keeps the latest results of every backbone evaluated on this pipeline with its current "
                     "benchmarks and fine-tune settings; `computed` says when and in which flow run.")
    older = [row for row in board.rows if row.older_code]
    if older:
        lines.append(f"{len(older)} row(s) were computed by an older version of the fine-tuning code (`older code`): they stay "
                     f"until their backbone is evaluated again (`muppet run {board.pipeline} --backbone ...`).")
    if board.left_out:
        rows = sum(x.rows for x in board.left_out)
        unreadable = "" if all(x.reason.startswith("computed with other") for x in board.left_out) else " or can no longer be read"
        lines.append(f"**{rows} row(s) of {len(board.left_out)} backbone(s) left out**: their results do not match the "
                     f"pipeline's current settings{unreadable} (see *Left out*).")
    return [" ".join(lines), ""] if lines else []


def _left_out_section(board: Leaderboard) -> list[str]:
    if not board.left_out:
        return []
    rows = sum(x.rows for x in board.left_out)
    lines = ["### Left out", "", f"{rows} row(s) of {len(board.left_out)} backbone(s) are not in the table; evaluate a backbone "
             f"again with the current settings to bring it back (`muppet run {board.pipeline} --backbone ...`).", ""]
    for x in board.left_out:
        lines.append(f"- `{x.backbone}` ({x.rows} row(s), {provenance_text(x.computed_at, x.run)}): {x.reason}")
    return lines + [""]


def _paper_section(board: Leaderboard) -> list[str]:
    lines = ["### Against the paper", ""]
    if not board.paper_families:
        references = load_references()
        known = ", ".join(f.label for f in references.families.values())
        names = ", ".join(f"`{b}`" for b in board.backbones) or "none"
        return lines + [f"The paper reports no numbers for this backbone family ({names}); it reports {known}.", ""]
    matched = ", ".join(f"`{k}` as {v}" for k, v in board.paper_families.items())
    lines += [f"Backbone matched to the paper's family: {matched}. {UNVERIFIED} recalled, not verified (shared/PAPER.md).", ""]
    table = []
    for row in [*board.rows, *board.deltas]:
        signed = row.variant == "delta"
        for name, ref in row.paper.items():
            paper = points(ref.value, signed) + ("" if ref.verified else UNVERIFIED)
            if not ref.comparable:
                paper += f" ({ref.metric})"
            diff = points(ref.diff, True) if ref.comparable else "not compared"
            metric = next(c.metric for c in board.columns if c.name == name)
            table.append([row.model, name, metric, points(row.cells[name].value, signed), paper, diff])
    return lines + _table(["model", "benchmark", "metric", "ours", "paper", "ours − paper"], table) + [""]


def _scored_section(board: Leaderboard) -> list[str]:
    """What each benchmark's runs scored (the official validation split, or how it was carved)."""
    lines = []
    for name in board.benchmarks:
        texts = list(dict.fromkeys(t for row in board.rows if (t := row.cells[name].scored)))
        lines += [f"- {name}: {t}" for t in texts]
    return ["### Scored on", "", *lines, ""] if lines else []


def _number(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}" if digits else f"{value:.3g}" if value >= 1e-3 else f"{value:.1e}"


def _paired_section(board: Leaderboard) -> list[str]:
    if not board.paired_tests:
        return []
    lines = ["### Paired tests over seeds × benchmarks", "",
             "Each pair is one benchmark and one seed that both variants finished; the difference is in the benchmark's "
             "main metric (×100). Wilcoxon signed-rank test (zero differences dropped) and paired t-test, both two-sided (scipy).", ""]
    table = [[f"{t.backbone} / {t.variant} vs {t.against}", str(t.pairs), ", ".join(t.benchmarks), points(t.mean_difference, True),
              f"{t.wins} / {t.pairs - t.wins - t.losses} / {t.losses}", _number(t.wilcoxon_statistic, 1), _number(t.wilcoxon_p, 0),
              _number(t.t_statistic, 2), _number(t.t_p, 0)] for t in board.paired_tests]
    header = ["comparison", "pairs", "benchmarks", "mean difference", "wins / ties / losses", "Wilcoxon W", "p", "paired t", "p"]
    return lines + _table(header, table) + [""]


def _exposure_section(board: Leaderboard) -> list[str]:
    lines = []
    for key, tasks in board.examples_per_task.items():
        total = sum(t.received for t in tasks.values()) or 1
        rows = [[name, "—" if t.available is None else str(t.available), str(t.received), f"{100 * t.received / total:.1f}%"]
                for name, t in sorted(tasks.items(), key=lambda kv: -kv[1].received)]
        lines += [f"### Examples per pre-finetuning task (variant {key[:8]})", "",
                  "What each task offered (after the cap) and how many examples it received in pre-finetuning, with repeats.", ""]
        lines += _table(["task", "available", "received", "share"], rows) + [""]
    return lines


def to_markdown(board: Leaderboard) -> str:
    """The leaderboard as Markdown: the table, the deltas, the paper's numbers, notes and file links."""
    backbones = ", ".join(f"`{label}` ({spec})" if spec != label else f"`{label}`" for label, spec in board.backbones.items())
    lines = [
        f"## Leaderboard: {board.pipeline}", "",
        f"Backbone{'s' if len(board.backbones) > 1 else ''}: {backbones}. Each cell: the {board.selection_text} of the benchmark's main metric, ×100, "
        + ("± the sample standard deviation over seeds, " if board.selection == "mean" else "") + "with the number of finished runs (n) and their min–max. — marks a missing cell (never a zero): "
        "the notes say why; an average is missing when one of its benchmarks is.", "",
    ]
    own = f"; {OWN} marks the pipeline's own backbone (`{board.own}`)" if board.own in board.backbones else ""
    lines += [f"Rows are ranked by the average, best first{own}.", ""]
    lines += _kept_lines(board)
    notes: list[str] = []
    lines += _scored_table(board, ranked(board.rows), notes, signed=False) + [""]
    if board.deltas:
        lines += ["### Pre-finetuned minus base (points)", ""] + _scored_table(board, board.deltas, notes, signed=True) + [""]
    lines += _paired_section(board)
    lines += _scored_section(board)
    lines += _exposure_section(board)
    lines += _left_out_section(board)
    lines += _paper_section(board)
    if notes:
        lines += ["### Notes", ""] + [f"{i}. {note}" for i, note in enumerate(notes, 1)] + [""]
    if board.links:
        lines += ["### Files", ""] + [f"- {name}: [{uri.rsplit('/', 1)[-1] or uri}]({uri})" for name, uri in board.links.items()] + [""]
    return "\n".join(lines)


RENDERERS = {"csv": to_csv, "md": to_markdown, "json": to_json}
