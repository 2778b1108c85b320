"""Aggregation of result records into the leaderboard, and its renderings (CSV, Markdown, JSON)."""

from __future__ import annotations

import io
import json

import pandas as pd

from muppet_core.evaluation.results import ResultRecord

VARIANT_ORDER = ["base", "prefinetuned"]


def leaderboard(records: list[ResultRecord], benchmarks: list[str]) -> pd.DataFrame:
    """Rows: backbone variants; columns: each benchmark's main metric (mean over seeds), then the average.

    A benchmark without a result for a variant is left empty (NaN), never zero, and the average
    is then empty too.
    """
    frame = pd.DataFrame(
        [{"variant": r.variant, "benchmark": r.benchmark, "score": r.score} for r in records],
        columns=["variant", "benchmark", "score"],
    )
    table = frame.pivot_table(index="variant", columns="benchmark", values="score", aggfunc="mean")
    table = table.reindex(columns=benchmarks)
    order = [v for v in VARIANT_ORDER if v in table.index] + sorted(set(table.index) - set(VARIANT_ORDER))
    table = table.reindex(order)
    table["average"] = table[benchmarks].mean(axis=1, skipna=False)
    table.index.name = "variant"
    table.columns.name = None
    return table


def to_csv(table: pd.DataFrame) -> str:
    """CSV with one header row and unformatted numbers."""
    return table.to_csv(float_format="%.6f")


def to_markdown(table: pd.DataFrame, title: str = "") -> str:
    """A Markdown table (scores x100, one decimal)."""
    header = ["variant", *table.columns]
    lines = [f"## {title}", ""] if title else []
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for variant, row in table.iterrows():
        cells = ["—" if pd.isna(v) else f"{100 * v:.1f}" for v in row]
        lines.append("| " + " | ".join([str(variant), *cells]) + " |")
    return "\n".join(lines) + "\n"


def to_json(table: pd.DataFrame) -> str:
    """JSON: one object per variant, missing cells as null."""
    rows = [{"variant": v, **{k: (None if pd.isna(x) else float(x)) for k, x in row.items()}} for v, row in table.iterrows()]
    return json.dumps(rows, indent=1)


def from_csv(text: str) -> pd.DataFrame:
    """Read a leaderboard CSV back."""
    return pd.read_csv(io.StringIO(text), index_col="variant")


RENDERERS = {"csv": to_csv, "md": to_markdown, "json": to_json}
