"""Aggregation of result records into a leaderboard: the selection over seeds, the number of runs
and their spread per cell, family averages, the pre-finetuned minus base deltas and the paper's
numbers. The leaderboard reads result records only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from muppet_core.evaluation.results import CONTROL_VARIANT, ResultRecord
from muppet_core.leaderboard.paper import PaperReferences
from muppet_core.leaderboard.schema import Cell, Column, Leaderboard, Reference, Row
from muppet_core.tasks.catalog import get_task

VARIANT_ORDER = ["base", "prefinetuned", CONTROL_VARIANT]
DELTA = "delta"


@dataclass(frozen=True)
class Selection:
    """How a cell's runs (one per seed) become one number."""

    name: str
    describe: str
    pick: Callable[[np.ndarray], float]


SELECTIONS = {
    s.name: s
    for s in (
        Selection("median", "median over seeds", np.median),
        Selection("mean", "mean over seeds", np.mean),
        Selection("max", "best seed", np.max),
    )
}


def at_best_learning_rate(runs: list[ResultRecord], selection: Selection) -> tuple[list[ResultRecord], list[str]]:
    """The finished runs at the best learning rate, by the selection over seeds of their scores on the
    selection slice carved from train (never on the reported validation split), and notes on the
    choice. With several learning rates and runs that lack a selection score (older code), none."""
    by_lr: dict[float, list[ResultRecord]] = {}
    for r in runs:
        if r.ok:
            by_lr.setdefault(r.learning_rate, []).append(r)
    if len(by_lr) <= 1:
        return next(iter(by_lr.values()), []), []
    if any(r.selection_score is None for rs in by_lr.values() for r in rs):
        return [], ["no selection score to choose the learning rate on (runs of older code)"]
    best_lr = max(by_lr, key=lambda lr: selection.pick(np.array([r.selection_score for r in by_lr[lr]], dtype=float)))
    return by_lr[best_lr], [f"learning rate {best_lr:g}, the best of {len(by_lr)} on the selection slice of train"]


def benchmark_cell(runs: list[ResultRecord], selection: Selection) -> Cell:
    """One benchmark's cell: the selection over the finished runs' validation scores at the best
    learning rate (see ``at_best_learning_rate``), their count, min-max and standard deviation, and
    what they scored; failed runs are counted and their reasons kept. With no finished run the value
    is missing, never zero, and the note says why."""
    failed = [r for r in runs if not r.ok]
    reasons = "; ".join(sorted({r.error or "no main metric" for r in failed}))
    chosen, choice = at_best_learning_rate(runs, selection)
    notes = ([f"{len(failed)} of {len(runs)} runs failed: {reasons}"] if failed else []) + choice
    note = "; ".join(notes) or None
    scores = np.array([r.score for r in chosen], dtype=float)
    if not len(scores):
        return Cell(n=0, failed=len(failed), note=note or "no run")
    scored = "; ".join(sorted({r.eval_split for r in chosen if r.eval_split})) or None
    selected = sorted({r.selection_examples for r in runs if r.ok and r.selection_examples is not None})
    if selected:
        size = f"{selected[0]}" if len(selected) == 1 else f"{selected[0]}-{selected[-1]}"
        scored = (scored + "; " if scored else "") + f"selected on {size} examples carved from train"
    return Cell(
        value=float(selection.pick(scores)), n=len(scores), min=float(scores.min()), max=float(scores.max()),
        std=float(scores.std(ddof=1)) if len(scores) > 1 else None, failed=len(failed), note=note, scored=scored,
    )


def average_cell(cells: dict[str, Cell], members: list[str]) -> Cell:
    """The mean of the members' values; missing (with the names) when any member is missing."""
    missing = [b for b in members if cells[b].value is None]
    if missing:
        return Cell(note=f"incomplete: {', '.join(missing)} missing")
    return Cell(value=float(np.mean([cells[b].value for b in members])))


def columns_for(benchmarks: list[str]) -> list[Column]:
    """Benchmark columns (family and main metric from the catalog), family averages, the average."""
    specs = [get_task(b) for b in benchmarks]
    columns = [Column(name=s.name, kind="benchmark", family=s.family, metric=s.metric, benchmarks=[s.name]) for s in specs]
    by_family: dict[str, list[str]] = {}
    for s in specs:
        by_family.setdefault(s.family, []).append(s.name)
    for family, members in by_family.items():
        columns.append(Column(name=f"avg.{family}", kind="family_average", family=family, benchmarks=members))
    columns.append(Column(name="average", kind="average", benchmarks=list(benchmarks)))
    return columns


def _fill_averages(cells: dict[str, Cell], columns: list[Column]) -> dict[str, Cell]:
    for column in columns:
        if column.kind != "benchmark":
            cells[column.name] = average_cell(cells, column.benchmarks)
    return cells


def _row_order(key: tuple[str, str, str], backbones: list[str]) -> tuple:
    backbone, variant, _ = key
    rank = VARIANT_ORDER.index(variant) if variant in VARIANT_ORDER else len(VARIANT_ORDER)
    return (backbones.index(backbone), rank, variant)


def _paper_refs(row: Row, columns: list[Column], family: str | None, references: PaperReferences | None) -> dict[str, Reference]:
    if family is None or references is None:
        return {}
    refs = {}
    for column in columns:
        if column.kind == "benchmark" and (ref := references.lookup(family, row.variant, column.name, column.metric)):
            ours = row.cells[column.name].value
            refs[column.name] = ref.model_copy(update={"diff": ours - ref.value if ref.comparable and ours is not None else None})
    return refs


def delta_row(base: Row, tuned: Row, columns: list[Column]) -> Row:
    """A pre-finetuned variant (or the control) minus base, column by column; missing where either side is."""
    cells = {}
    for column in columns:
        a, b = base.cells[column.name].value, tuned.cells[column.name].value
        missing = [v for v, x in (("base", a), (tuned.variant, b)) if x is None]
        cells[column.name] = Cell(value=b - a) if not missing else Cell(note=f"{' and '.join(missing)} missing")
    paper = {}
    for name, ref_b in tuned.paper.items():
        ref_a = base.paper.get(name)
        if ref_a and ref_a.metric == ref_b.metric:
            gap = ref_b.value - ref_a.value
            ours = cells[name].value
            comparable = ref_a.comparable and ref_b.comparable
            paper[name] = Reference(
                value=gap, metric=ref_b.metric, verified=ref_a.verified and ref_b.verified, comparable=comparable,
                diff=ours - gap if comparable and ours is not None else None, note=ref_b.note or ref_a.note,
            )
    return Row(model=f"{base.backbone} / {tuned.variant} - base", backbone=base.backbone, variant=DELTA, cells=cells, paper=paper)


def aggregate(
    records: list[ResultRecord],
    benchmarks: list[str],
    pipeline: str,
    selection: str = "median",
    backbones: dict[str, str] | None = None,
    references: PaperReferences | None = None,
) -> Leaderboard:
    """Build the leaderboard of a pipeline from its result records.

    Args:
        records: result records, finished and failed; those of a named experiment are left out.
        benchmarks: the benchmark columns, in order.
        pipeline: pipeline name.
        selection: name of the rule over seeds (a key of ``SELECTIONS``).
        backbones: backbone label -> backbone as the pipeline names it (matched to the paper).
        references: the paper's numbers; None leaves the paper columns out.

    Rows are backbone variants (``<backbone> / <variant>``), base before pre-finetuned.
    """
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection '{selection}'; known: {', '.join(SELECTIONS)}")
    rule = SELECTIONS[selection]
    backbones = dict(backbones or {})
    columns = columns_for(benchmarks)
    groups: dict[tuple[str, str, str], list[ResultRecord]] = {}
    for r in records:
        if r.experiment is None:
            label = r.backbone or "backbone"
            backbones.setdefault(label, label)
            groups.setdefault((label, r.variant, r.variant_key), []).append(r)
    order = list(backbones)
    keys = sorted(groups, key=lambda k: _row_order(k, order))
    ambiguous = {(b, v) for b, v, _ in keys if sum((b, v) == k[:2] for k in keys) > 1}
    families = {label: references.family_of(spec) for label, spec in backbones.items()} if references else {}
    rows = []
    for backbone, variant, variant_key in keys:
        runs = groups[(backbone, variant, variant_key)]
        cells = {b: benchmark_cell([r for r in runs if r.benchmark == b], rule) for b in benchmarks}
        model = f"{backbone} / {variant}" + (f" @{variant_key[:8]}" if (backbone, variant) in ambiguous else "")
        row = Row(model=model, backbone=backbone, variant=variant, variant_key=variant_key, cells=_fill_averages(cells, columns))
        row.paper = _paper_refs(row, columns, families.get(backbone), references)
        rows.append(row)
    deltas = []
    for backbone in order:
        mine = {r.variant: r for r in reversed(rows) if r.backbone == backbone}
        deltas += [delta_row(mine["base"], mine[v], columns) for v in VARIANT_ORDER[1:] if "base" in mine and v in mine]
    return Leaderboard(
        pipeline=pipeline, selection=rule.name, selection_text=rule.describe, backbones=backbones,
        paper_families={k: v for k, v in families.items() if v}, columns=columns, rows=rows, deltas=deltas,
    )
