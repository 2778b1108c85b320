"""PNG charts of a leaderboard: every backbone per benchmark, one panel per variant, and the curves of the
sample-efficiency and task-count experiments when their records are present.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot state), so drawing is safe inside
a Prefect worker thread.
"""

from __future__ import annotations

import io
import math

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from muppet_core.evaluation.results import ResultRecord
from muppet_core.leaderboard.aggregate import SELECTIONS, VARIANT_ORDER
from muppet_core.leaderboard.schema import Leaderboard, Row

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


def _series(row: Row) -> str:
    """The bar's legend entry: the backbone, with the variant key when one backbone has two of a variant."""
    return row.model.replace(f" / {row.variant}", "", 1)


def _legend_label(row: Row) -> str:
    marks = [m for m, on in (("pipeline's own", row.own), ("older code", row.older_code)) if on]
    return _series(row) + (f" ({', '.join(marks)})" if marks else "")


def bar_chart(board: Leaderboard) -> bytes:
    """The PNG of ``bar_figure``."""
    return _png(bar_figure(board))


def bar_figure(board: Leaderboard) -> Figure:
    """One panel per variant (base, pre-finetuned, ...), stacked; in each, one bar group per
    benchmark and the average, one bar per backbone, ×100, with min–max whiskers over seeds. A
    backbone keeps its colour in every panel, and the figure widens with the number of backbones,
    so labels never overlap. A missing cell has no bar, only the word ``missing``."""
    names = [*board.benchmarks, "average"]
    variants = sorted({r.variant for r in board.rows}, key=lambda v: (VARIANT_ORDER.index(v) if v in VARIANT_ORDER else len(VARIANT_ORDER), v)) or ["base"]
    series = list(dict.fromkeys(_series(r) for r in board.rows))
    colors = {name: (f"C{i}" if len(series) <= 10 else colormaps["tab20"](i % 20)) for i, name in enumerate(series)}
    most = max([sum(r.variant == v for r in board.rows) for v in variants] + [1])
    width = 0.8 / most
    fig = Figure(figsize=(max(6.0, len(names) * (0.38 * most + 0.5) + 1.2), 2.9 * len(variants) + 0.4 + 0.22 * math.ceil(len(series) / 4)), layout="constrained")
    x = np.arange(len(names))
    legend: dict[str, object] = {}
    for ax, variant in zip(fig.subplots(len(variants), 1, squeeze=False)[:, 0], variants):
        for i, row in enumerate(r for r in board.rows if r.variant == variant):
            cells = [row.cells[n] for n in names]
            values = [100 * c.value if c.value is not None else np.nan for c in cells]
            bars = ax.bar(x - 0.4 + width * (i + 0.5), np.nan_to_num(values), width * 0.92, color=colors[_series(row)])
            legend.setdefault(_legend_label(row), bars)
            for bar, cell, value in zip(bars, cells, values):
                middle = bar.get_x() + bar.get_width() / 2
                if cell.value is None:  # no bar at all: a missing cell must not read as a low score
                    ax.annotate("missing", (middle, 0), ha="center", va="bottom", fontsize=7, rotation=90, color="dimgray", xytext=(0, 3), textcoords="offset points")
                    continue
                if cell.n and cell.n > 1:
                    ax.errorbar(middle, value, yerr=[[value - 100 * cell.min], [100 * cell.max - value]], fmt="none", ecolor="black", capsize=2, lw=1)
                top = 100 * cell.max if cell.n and cell.n > 1 else value
                ax.annotate(f"{value:.1f}", (middle, top), ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
        ax.set_xticks(x, _tick_labels(board, names))
        ax.set_ylabel("main metric ×100")
        ax.set_ylim(0, 112)
        ax.set_title(variant, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{board.pipeline}: every kept backbone, by variant ({board.selection_text})", fontsize=10)
    fig.legend(list(legend.values()), list(legend), fontsize=8, loc="outside lower center", ncol=min(len(legend), 4) or 1, frameon=False)
    return fig


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
