"""The results a pipeline keeps: the latest result set of every backbone ever evaluated on it.

An index, ``pipelines/<name>/kept.json``, names for each backbone, as configured (two folders of one
name are two entries), its label in the table (unique among the entries), the fine-tune outputs of
its latest evaluation (content-addressed, never deleted from the store), the fine-tune settings
they were computed with, their code version, when and in which flow run. Each leaderboard run
merges its own backbones into it and builds the table from the kept results that match the
pipeline's current settings; the others are left out, with the reason. Every history entry keeps a
copy of the index as it left it, from which a damaged or deleted index is rebuilt.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import Any

from pydantic import Field, ValidationError, model_validator

from muppet_core.artifacts.stage import StageOutput
from muppet_core.artifacts.store import ArtifactStore, digest
from muppet_core.config import FinetuneConfig
from muppet_core.errors import MuppetError, first_line
from muppet_core.evaluation.results import ResultRecord, read_result
from muppet_core.leaderboard.schema import LeftOut, Schema
from muppet_core.models.labels import unique_label
from muppet_core.registry import safe_name
from muppet_core.schema import EXECUTION, key_role

UNSCORED = frozenset(
    {name for name in FinetuneConfig.model_fields if key_role(FinetuneConfig, name) == EXECUTION} | {"selection", "train_fractions"}
)
"""Fine-tune settings that change no table cell: those marked ``execution`` in the schema (how runs
execute), how cells are summarised (the table is rebuilt from the records with the current rule) and
the sample-efficiency curves. Every other field of ``FinetuneConfig`` is part of the settings a kept
result must match, so a field added later leaves old results out rather than comparing unlike with
unlike."""


class ResultRef(Schema):
    """Where a fine-tune's result record lives in the store."""

    stage: str
    """``finetune`` (a finished run) or ``finetune-failed``."""
    key: str
    """The fine-tune's content key."""


class KeptEntry(Schema):
    """The latest evaluation of one backbone on the pipeline."""

    backbone: str
    """The backbone as it was configured (package:NAME, a path, a URI or a hub id)."""
    label: str | None = None
    """Its label in the table: its folder's name, or more of its path where another kept backbone has
    that name (``models.labels.unique_label``); None in an index written before labels were kept."""
    settings: dict[str, Any]
    """The fine-tune settings its results were computed with (see ``scored_settings``)."""
    fingerprint: str
    """Digest of ``settings``."""
    code_version: str | None = None
    """Fine-tuning code version of its results."""
    computed_at: str
    """When its results were first published (UTC, ISO 8601)."""
    run: str | None = None
    """The flow run that published them."""
    rows: int
    """Table rows (backbone variants) its results make."""
    records_digest: str
    """Digest of its result records: an evaluation that changes none keeps ``computed_at`` and ``run``."""
    results: list[ResultRef]
    """Its fine-tune outputs, failed runs included."""


class KeptIndex(Schema):
    """A pipeline's kept results and the settings of its latest leaderboard run."""

    pipeline: str
    """Pipeline name."""
    own: str | None = None
    """The pipeline's own backbone, as configured."""
    benchmarks: list[str]
    """The table's benchmark columns, in order."""
    selection: str = "median"
    """The rule over seeds."""
    settings: dict[str, Any]
    """The current fine-tune settings."""
    fingerprint: str
    """Digest of ``settings``."""
    code_version: str | None = None
    """The fine-tuning code version of the latest run's results."""
    entries: dict[str, KeptEntry] = Field(default_factory=dict)
    """Backbone as configured -> its latest evaluation, in order of first evaluation."""

    @model_validator(mode="after")
    def _by_backbone(self) -> KeptIndex:
        """An index written before entries were keyed by backbone was keyed by label: key it by backbone,
        keeping the label."""
        if any(key != entry.backbone or entry.label is None for key, entry in self.entries.items()):
            entries = {}
            for key, entry in self.entries.items():
                label = entry.label or (key if key != entry.backbone else None)
                entries[entry.backbone] = entry.model_copy(update={"label": label or unique_label(entry.backbone, set())})
            self.entries = entries
        return self

    def labels(self) -> dict[str, str]:
        """Backbone as configured -> its label, for every entry."""
        return {spec: entry.label or spec for spec, entry in self.entries.items()}

    def label_for(self, spec: str) -> str:
        """The label of ``spec``: its entry's, else a new one that no other entry has (``unique_label``)."""
        if spec in self.entries and self.entries[spec].label:
            return self.entries[spec].label
        return unique_label(spec, set(self.labels().values()))

    def find(self, backbone: str) -> str | None:
        """The backbone (as configured) whose label or configured name is ``backbone``, or None."""
        return backbone if backbone in self.entries else next((s for s, label in self.labels().items() if label == backbone), None)


def scored_settings(config: FinetuneConfig | None, benchmarks: list[str]) -> dict[str, Any]:
    """The fine-tune settings a kept result must match: every field but ``UNSCORED``, the
    benchmarks as a set (their order only orders the columns)."""
    settings = config.model_dump(exclude=set(UNSCORED)) if config is not None else {}
    return {**settings, "benchmarks": sorted(benchmarks)}


def fingerprint(settings: dict[str, Any]) -> str:
    """A short digest of settings."""
    return digest(settings)[:16]


def index_path(pipeline: str) -> str:
    """Where a pipeline's index lives in the store.

    Raises:
        MuppetError: the pipeline name is not a safe name (``registry.safe_name``).
    """
    return f"pipelines/{safe_name('pipeline', pipeline)}/kept.json"


class DamagedIndex(MuppetError):
    """A pipeline's index cannot be read back (truncated, edited by hand, not JSON)."""


def read_index(store: ArtifactStore, pipeline: str) -> KeptIndex | None:
    """The pipeline's index, or None where there is none (before its first leaderboard run, or deleted).

    Raises:
        DamagedIndex: it is there but cannot be read (one line, why).
    """
    path = index_path(pipeline)
    if not store.exists(path):
        return None
    try:
        return KeptIndex.model_validate_json(store.read_bytes(path))
    except (ValidationError, ValueError) as exc:
        raise DamagedIndex(f"{store.root}/{path} is damaged: {first_line(exc)}") from None


def index_lock(store: ArtifactStore, pipeline: str) -> contextlib.AbstractContextManager[None]:
    """The pipeline's index lock (the store backend's ``lock``): leaderboard runs of one pipeline take
    turns, on one machine or on several sharing an S3 store, each merging into the index the one
    before it wrote (two runs that evaluated the same results then publish the same table)."""
    return store.lock(f"kept/{safe_name('pipeline', pipeline)}")


def write_index(store: ArtifactStore, index: KeptIndex) -> str:
    """Replace the pipeline's index (readers see the old one or the new, never part of it)."""
    return store.write_text(index_path(index.pipeline), index.model_dump_json(indent=1))


def most_common(values: list[str]) -> str | None:
    """The most frequent value (None for none): a result set's code version."""
    return Counter(values).most_common(1)[0][0] if values else None


def row_count(records: list[ResultRecord]) -> int:
    """The table rows the records make: their backbone variants outside the experiments."""
    return len({(r.variant, r.variant_key) for r in records if r.experiment is None})


def merge(index: KeptIndex, spec: str, refs: list[ResultRef], records: list[ResultRecord], now: str, run: str | None) -> None:
    """Make this evaluation of the backbone ``spec`` its kept one, computed with the index's current
    settings, under its label (``KeptIndex.label_for``).

    When its records are those already kept under the same settings, the entry keeps its time and run.
    """
    label = index.label_for(spec)
    records = [r.model_copy(update={"backbone": label}) for r in records]  # a record from the store may carry another run's label
    records_digest = digest(sorted(r.model_dump_json() for r in records))[:24]
    old = index.entries.get(spec)
    if old is not None and old.records_digest == records_digest and old.fingerprint == index.fingerprint:
        now, run = old.computed_at, old.run
    index.entries[spec] = KeptEntry(
        backbone=spec, label=label, settings=index.settings, fingerprint=index.fingerprint,
        code_version=most_common([r.code_version for r in records]),
        computed_at=now, run=run, rows=row_count(records), records_digest=records_digest, results=refs,
    )


def settings_change(then: dict[str, Any], now: dict[str, Any]) -> str:
    """The differences between two settings, in words: ``epochs 1.0, now 2.0; ...``."""
    names = sorted(set(then) | set(now), key=lambda n: (n != "benchmarks", n))
    shown = lambda v: ", ".join(map(str, v)) if isinstance(v, list) else str(v)  # noqa: E731
    return "; ".join(f"{n} {shown(then.get(n, 'unset'))}, now {shown(now.get(n, 'unset'))}" for n in names if then.get(n) != now.get(n))


def left_out(label: str, entry: KeptEntry, reason: str) -> LeftOut:
    """A kept backbone left out of the table, with why."""
    return LeftOut(backbone=label, rows=entry.rows, computed_at=entry.computed_at, run=entry.run, reason=reason)


def split(index: KeptIndex) -> tuple[list[str], list[LeftOut]]:
    """The backbones (as configured) whose results match the current settings (the pipeline's own
    first, then in order of first evaluation), and those left out with why."""
    kept, out = [], []
    labels = index.labels()
    for spec, entry in index.entries.items():
        if entry.fingerprint == index.fingerprint:
            kept.append(spec)
        else:
            what = "benchmarks" if entry.settings.get("benchmarks") != index.settings.get("benchmarks") else "fine-tune settings"
            out.append(left_out(labels[spec], entry, f"computed with other {what}: {settings_change(entry.settings, index.settings)}"))
    own = [spec for spec in kept if spec == index.own]
    return own + [spec for spec in kept if spec not in own], out


def read_records(store: ArtifactStore, entry: KeptEntry) -> list[ResultRecord]:
    """The kept result records of a backbone, read from the store.

    Raises:
        MuppetError: one of them can no longer be read (gone or corrupt), with the first line of why.
    """
    try:
        return [read_result(store, StageOutput(ref.stage, ref.key, ref.key, store.uri(ref.stage, ref.key), True)) for ref in entry.results]
    except (OSError, ValueError, MuppetError) as exc:
        raise MuppetError(f"its results can no longer be read from the store: {first_line(exc)}") from None
