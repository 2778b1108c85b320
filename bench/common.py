"""What every benchmark shares: its command line, its timer, the rates it derives, and its output.

A benchmark prints its figures as a human-readable table and, with ``--json``, as one JSON object
on the last line of stdout (the line the tests read). The scripts import this module as
``common``: Python puts a script's own folder first on ``sys.path``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from muppet_core.config import PipelineConfig

REPO = Path(__file__).resolve().parents[1]
PIPELINES_FILE = REPO / "pipelines.yaml"


def parser(doc: str) -> argparse.ArgumentParser:
    """A command line with the options every benchmark takes: ``--pipeline``, ``--backbone``,
    ``--mirror`` and ``--json``.

    Args:
        doc: the script's docstring; its first line describes the command.
    """
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--pipeline", default="demo", help="the pipelines.yaml entry whose backbone, data settings and training settings to measure")
    p.add_argument("--backbone", default=None, help="a backbone (package:NAME, a local directory, a hub id) instead of the pipeline's")
    p.add_argument("--mirror", default=None, help="the data mirror instead of the pipeline's ($MUPPET_DATA_MIRROR also overrides it)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the figures as the last line")
    return p


def names(value: str) -> list[str]:
    """A comma-separated list option (``--tasks a,b``) as a list of names."""
    out = [v.strip() for v in value.split(",") if v.strip()]
    if not out:
        raise argparse.ArgumentTypeError("expected at least one name")
    return out


def pipeline(args: argparse.Namespace) -> PipelineConfig:
    """The ``--pipeline`` entry of the repository's pipelines.yaml, with ``--backbone`` and
    ``--mirror`` applied."""
    from muppet_core.pipelines import load_pipeline

    config = load_pipeline(args.pipeline, PIPELINES_FILE)
    update: dict[str, Any] = {}
    if args.backbone:
        update["backbone"] = args.backbone
    if args.mirror:
        update["data"] = config.data.model_copy(update={"mirror": str(Path(args.mirror).resolve())})
    return config.model_copy(update=update)


def rate(count: float, seconds: float) -> float:
    """``count`` per second (the definition of every rate a benchmark prints)."""
    if seconds <= 0:
        raise ValueError(f"cannot take a rate over {seconds} s")
    return count / seconds


class Timer:
    """Wall-clock marks: ``start()``, then ``lap()`` after each unit of work (an update, a dataset)."""

    def __init__(self) -> None:
        self.marks: list[float] = []

    def start(self) -> Timer:
        """Forget earlier marks and mark now; returns the timer."""
        self.marks = [time.perf_counter()]
        return self

    def lap(self) -> float:
        """Mark now; returns the seconds since the previous mark."""
        if not self.marks:
            raise RuntimeError("lap() before start()")
        self.marks.append(time.perf_counter())
        return self.marks[-1] - self.marks[-2]

    @property
    def laps(self) -> list[float]:
        """Seconds of each lap, in order."""
        return [b - a for a, b in zip(self.marks, self.marks[1:])]

    @property
    def seconds(self) -> float:
        """Seconds from the start to the last mark."""
        return self.marks[-1] - self.marks[0]

    def steady_rate(self, counts: Sequence[float], warmup: int = 0) -> float:
        """Units of work per second over the laps after the first ``warmup`` ones.

        Args:
            counts: the work done in each lap (examples of each update, say), one per lap.
            warmup: laps left out (start-up costs: allocation, caches, lazy initialisation).
        """
        if len(counts) != len(self.marks) - 1:
            raise ValueError(f"{len(counts)} counts for {len(self.marks) - 1} laps")
        if not 0 <= warmup < len(counts):
            raise ValueError(f"warmup {warmup} leaves no laps of {len(counts)} to measure")
        return rate(sum(counts[warmup:]), self.marks[-1] - self.marks[warmup])


def table(rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None) -> str:
    """Rows as aligned columns: numbers right-aligned, everything else left-aligned."""
    cells = [[str(c) for c in r] for r in ([header] if header else []) + list(rows)]
    numeric = [all(isinstance(r[i], (int, float)) for r in rows) for i in range(len(cells[0]))] if cells else []
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))] if cells else []
    lines = [
        "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric)).rstrip()
        for r in cells
    ]
    if header:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def emit(summary: str, figures: dict[str, Any], as_json: bool) -> None:
    """Print the human-readable summary, then (``as_json``) the figures as one JSON object on the
    last line of stdout. A figure that is not finite fails here rather than print invalid JSON."""
    print(summary, flush=True)
    if as_json:
        print(json.dumps(figures, allow_nan=False), flush=True)


def spread(values: Sequence[float], digits: int = 2) -> dict[str, float]:
    """The mean, minimum and maximum of ``values`` (a figure over seeds), rounded to ``digits``."""
    if not values:
        raise ValueError("no values to summarise")
    return {"mean": round(sum(values) / len(values), digits), "min": round(min(values), digits), "max": round(max(values), digits)}
