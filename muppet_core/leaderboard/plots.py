"""PNG charts of a leaderboard: base vs pre-finetuned per benchmark, and the curves of the
sample-efficiency and task-count experiments when their records are present.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot state), so drawing is safe inside
a Prefect worker thread.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure

from muppet_core.evaluation.results import ResultRecord
from muppet_core.leaderboard.aggregate import SELECTIONS
from muppet_core.leaderboard.schema import Leaderboard

# Experiment name -> (x axis label, how a record gives its x).
EXPERIMENTS = {
    "sample_efficiency": ("fine-tuning examples", lambda r: r.train_examples),
    "task_count": ("pre-finetuning tasks", lambda r: r.prefinetune_tasks),
}
PNG_METADATA = {"Software": None}


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata=PNG_METADATA, bbox_inches="tight")
    return buffer.getvalue()


def bar_chart(board: Leaderboard) -> bytes:
    """Grouped bars: one group per benchmark (and the average), one bar per backbone variant, ×100,
    with min–max whiskers over seeds; a missing cell has no bar, only the word ``missing``."""
    names = [*board.benchmarks, "average"]
    rows = board.rows
    width = 0.8 / max(1, len(rows))
    fig = Figure(figsize=(max(6.0, 1.6 * len(names) + 2), 4.6))
    ax = fig.add_subplot()
    x = np.arange(len(names))
    for i, row in enumerate(rows):
        offsets = x - 0.4 + width * (i + 0.5)
        cells = [row.cells[n] for n in names]
        values = [100 * c.value if c.value is not None else np.nan for c in cells]
        bars = ax.bar(offsets, np.nan_to_num(values), width * 0.92, label=row.model, color=f"C{i}")
        for bar, cell, value in zip(bars, cells, values):
            if cell.value is None:  # no bar at all: a missing cell must not read as a low score
                ax.annotate("missing", (bar.get_x() + bar.get_width() / 2, 0), ha="center", va="bottom", fontsize=8, rotation=90, color="dimgray", xytext=(0, 3), textcoords="offset points")
                continue
            if cell.n and cell.n > 1:
                ax.errorbar(bar.get_x() + bar.get_width() / 2, value, yerr=[[value - 100 * cell.min], [100 * cell.max - value]], fmt="none", ecolor="black", capsize=3, lw=1)
            ax.annotate(f"{value:.1f}", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(x, _tick_labels(board, names))
    ax.set_ylabel("main metric ×100")
    ax.set_ylim(0, 105)
    ax.set_title(f"{board.pipeline}: base vs pre-finetuned ({board.selection_text})", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=min(len(rows), 3), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def _tick_labels(board: Leaderboard, names: list[str]) -> list[str]:
    metric = {c.name: c.metric for c in board.columns}
    return [f"{n}\n({metric[n]})" if metric.get(n) else n for n in names]


def curve_charts(records: list[ResultRecord], selection: str = "median") -> dict[str, bytes]:
    """One PNG per experiment present in the records (``sample_efficiency``, ``task_count``): per
    benchmark, the selected score over seeds against the experiment's x, one line per variant (for
    the task-count experiment, whose variants differ only in their number of tasks, one line)."""
    pick = SELECTIONS[selection].pick
    charts = {}
    for experiment, (xlabel, x_of) in EXPERIMENTS.items():
        series = (lambda r: "pre-finetuned on k tasks") if experiment == "task_count" else (lambda r: r.variant)
        runs = [r for r in records if r.experiment == experiment and r.ok and x_of(r) is not None]
        if not runs:
            continue
        benchmarks = list(dict.fromkeys(r.benchmark for r in runs))
        fig = Figure(figsize=(4.2 * len(benchmarks), 3.8))
        for j, benchmark in enumerate(benchmarks):
            ax = fig.add_subplot(1, len(benchmarks), j + 1)
            lines = sorted({(r.backbone or "backbone", series(r)) for r in runs if r.benchmark == benchmark})
            for backbone, variant in lines:
                points: dict[float, list[float]] = {}
                for r in runs:
                    if (r.benchmark, r.backbone or "backbone", series(r)) == (benchmark, backbone, variant):
                        points.setdefault(x_of(r), []).append(r.score)
                xs = sorted(points)
                ax.plot(xs, [100 * pick(np.array(points[v])) for v in xs], marker="o", label=f"{backbone} / {variant}")
            ax.set_title(benchmark, fontsize=10)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("main metric ×100")
            if experiment == "sample_efficiency":
                ax.set_xscale("log")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle(f"{experiment.replace('_', ' ')} ({SELECTIONS[selection].describe})", fontsize=10)
        fig.tight_layout()
        charts[experiment] = _png(fig)
    return charts
