"""The leaderboard document: what the table measured, cell by cell. CSV, Markdown, JSON and the
Prefect artifacts are all renderings of one ``Leaderboard``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Schema(BaseModel):
    """Base of the document's models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class Column(Schema):
    """One column of the table: a benchmark, a family average or the overall average."""

    name: str
    """Column name in every rendering: the benchmark's catalog name, ``avg.<family>`` or ``average``."""
    kind: Literal["benchmark", "family_average", "average"]
    """What the column holds."""
    family: str | None = None
    """Task family of a benchmark or of a family average."""
    metric: str | None = None
    """The benchmark's main metric (None for averages)."""
    benchmarks: list[str]
    """The benchmarks behind the column (one for a benchmark column)."""


class Cell(Schema):
    """One score: the selection over runs, how many runs are behind it and their spread."""

    value: float | None = None
    """The selected score as a fraction (None when missing: never zero)."""
    n: int | None = None
    """Finished runs behind the value (None for averages and deltas)."""
    min: float | None = None
    """Lowest score over the runs."""
    max: float | None = None
    """Highest score over the runs."""
    std: float | None = None
    """Sample standard deviation over the runs (ddof 1; None with fewer than two)."""
    failed: int | None = None
    """Runs that failed (None for averages and deltas)."""
    note: str | None = None
    """Why the cell is missing, or which runs failed."""
    scored: str | None = None
    """What the runs scored: the official validation split, or how it was carved, and how many examples."""


class Reference(Schema):
    """A number the paper reports for the same backbone family, variant and benchmark."""

    value: float
    """The paper's score as a fraction."""
    metric: str
    """The metric the paper reports."""
    verified: bool
    """False for numbers recalled but not checked against the paper or a model card."""
    comparable: bool
    """Whether the paper's metric is our main metric (only then is a difference given)."""
    diff: float | None = None
    """Ours minus the paper's, when comparable and ours is present."""
    note: str | None = None
    """Caveats of the number."""


class Row(Schema):
    """One backbone variant (or, for a delta row, pre-finetuned minus base of one backbone)."""

    model: str
    """Row label: ``<backbone> / <variant>``."""
    backbone: str
    """Short backbone label."""
    variant: str
    """``base``, ``prefinetuned`` or ``delta``."""
    variant_key: str | None = None
    """Artifact key of the variant's weights."""
    cells: dict[str, Cell]
    """Column name -> cell."""
    paper: dict[str, Reference] = Field(default_factory=dict)
    """Benchmark -> the paper's number for this backbone family and variant, where it has one."""
    own: bool = False
    """Whether the backbone is the pipeline's own (``backbone`` in pipelines.yaml)."""
    computed_at: str | None = None
    """When the backbone's results behind the row were first published (UTC, ISO 8601)."""
    run: str | None = None
    """The Prefect flow run that published them."""
    code_version: str | None = None
    """The fine-tuning code version of those results."""
    older_code: bool = False
    """Whether they were computed by an older fine-tuning code version than the pipeline's latest run."""


class LeftOut(Schema):
    """A backbone kept for the pipeline whose results do not match its current settings."""

    backbone: str
    """Short backbone label."""
    rows: int
    """Rows it would have in the table."""
    computed_at: str | None = None
    """When its results were published."""
    run: str | None = None
    """The flow run that published them."""
    reason: str
    """Why its rows are left out."""


class PairedTest(Schema):
    """One variant against another over every (benchmark, seed) both finished: the paired differences
    of the benchmarks' main metrics, a Wilcoxon signed-rank test and a paired t-test (scipy, two-sided)."""

    backbone: str
    """Short backbone label."""
    variant: str
    """The variant tested (for example ``prefinetuned``)."""
    against: str
    """The variant it is compared with (for example ``base``)."""
    benchmarks: list[str]
    """The benchmarks that contributed pairs."""
    pairs: int
    """Pairs (benchmark, seed) with a finished run on both sides."""
    mean_difference: float
    """Mean of ``variant`` minus ``against`` over the pairs (fractions of each benchmark's main metric)."""
    wins: int
    """Pairs where ``variant`` scored higher."""
    losses: int
    """Pairs where it scored lower (the rest are ties)."""
    wilcoxon_statistic: float | None = None
    """scipy's Wilcoxon signed-rank statistic (zero differences dropped); None below two non-zero pairs."""
    wilcoxon_p: float | None = None
    """Its two-sided p-value."""
    t_statistic: float | None = None
    """The paired t statistic; None below two pairs or with no spread."""
    t_p: float | None = None
    """Its two-sided p-value."""


class TaskExposure(Schema):
    """What one pre-finetuning task offered and what it received."""

    available: int | None = None
    """Training examples the task offered after the cap (None where the summary does not say)."""
    received: int
    """Examples drawn from it during pre-finetuning (with repeats)."""


class Leaderboard(Schema):
    """A pipeline's leaderboard, built from result records only."""

    pipeline: str
    """Pipeline name."""
    key: str = ""
    """Content key of the leaderboard artifact in the store."""
    selection: str
    """Name of the rule that turns a cell's runs into one number (``median``, ``mean``, ``max``)."""
    selection_text: str
    """The rule in words, for captions."""
    backbones: dict[str, str]
    """Backbone label -> the backbone as the pipeline names it."""
    paper_families: dict[str, str] = Field(default_factory=dict)
    """Backbone label -> the paper's backbone family it was matched to."""
    columns: list[Column]
    """Columns in order: benchmarks, family averages, the average."""
    rows: list[Row]
    """One row per backbone variant."""
    deltas: list[Row] = Field(default_factory=list)
    """Pre-finetuned minus base, one row per backbone that has both."""
    own: str | None = None
    """Label of the pipeline's own backbone."""
    left_out: list[LeftOut] = Field(default_factory=list)
    """Backbones whose results no longer match the pipeline's settings, with why."""
    paired_tests: list[PairedTest] = Field(default_factory=list)
    """Paired tests over seeds x benchmarks: each pre-finetuned variant against base, and against the control."""
    examples_per_task: dict[str, dict[str, TaskExposure]] = Field(default_factory=dict)
    """Pre-finetuned variant key -> task -> what it offered and received (from the pre-finetune's train_summary.json)."""
    links: dict[str, str] = Field(default_factory=dict)
    """Rendering name (csv, md, json, chart, curves-...) -> its location in the store."""

    @property
    def benchmarks(self) -> list[str]:
        """The benchmark columns' names, in order."""
        return [c.name for c in self.columns if c.kind == "benchmark"]

    def missing(self) -> list[str]:
        """One line per missing benchmark cell: ``<model>, <benchmark>: <why>``."""
        return [
            f"{row.model}, {name}: {row.cells[name].note}"
            for row in self.rows for name in self.benchmarks if row.cells[name].value is None
        ]

    def only(self, backbone: str) -> "Leaderboard":
        """The same leaderboard restricted to one backbone's rows.

        Raises:
            KeyError: no row has that backbone.
        """
        if backbone not in {r.backbone for r in self.rows}:
            known = ", ".join(sorted({r.backbone for r in self.rows})) or "none"
            raise KeyError(f"no backbone '{backbone}' in the leaderboard of '{self.pipeline}'; known: {known}")
        keep = lambda rows: [r for r in rows if r.backbone == backbone]  # noqa: E731
        return self.model_copy(update={
            "rows": keep(self.rows), "deltas": keep(self.deltas),
            "backbones": {backbone: self.backbones[backbone]} if backbone in self.backbones else {},
            "paper_families": {k: v for k, v in self.paper_families.items() if k == backbone},
            "left_out": [x for x in self.left_out if x.backbone == backbone],
            "paired_tests": [t for t in self.paired_tests if t.backbone == backbone],
            "examples_per_task": {k: v for k, v in self.examples_per_task.items() if k in {r.variant_key for r in keep(self.rows)}},
        })
