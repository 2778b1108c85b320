"""The task catalog: one YAML entry per dataset, validated when loaded.

Entries live in ``entries/<family>.yaml``. Adding a dataset means adding an entry there (and,
where its raw rows need it, a normalizer of a few lines); no library code changes.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from muppet_core.config import PipelinesFile, Strict, _describe
from muppet_core.errors import ConfigError
from muppet_core.families import FAMILIES, get_family
from muppet_core.registry import did_you_mean

ENTRIES_DIR = Path(__file__).with_name("entries")
MirrorFiles = str | list[str] | dict[str, str]


class HubSpec(Strict):
    """Where the dataset lives on the Hugging Face hub, for `datasets.load_dataset`."""

    path: str
    """Hub dataset id."""
    name: str | None = None
    """Dataset configuration."""
    splits: dict[str, str] = Field(default_factory=lambda: {"train": "train", "validation": "validation"})
    """Our split name -> the hub's split name."""
    fields: dict[str, str] = Field(default_factory=dict)
    """Canonical record field -> hub column, read by the family's generic hub normalizer."""
    normalizer: str | None = None
    """``module:function`` for hub rows; default: the family's ``from_hub_fields``."""


class TaskSpec(Strict):
    """One dataset: its family, sources, labels, metric and normalizer."""

    name: str
    """Catalog name (filled from the YAML key)."""
    family: str
    """Task family (see muppet_core.families), which decides the record type, encoding, head, loss and evaluation."""
    hub: HubSpec
    """Hub location, used when the mirror lacks the files."""
    mirror: dict[str, MirrorFiles] = Field(default_factory=dict)
    """Split -> file(s) relative to the mirror root."""
    reader: str | None = None
    """Reader name (see muppet_core.tasks.readers); required with mirror files."""
    reader_options: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of the reader."""
    normalizer: str | None = None
    """``module:function`` turning one raw mirror row into a record, a list of records, or None
    (to drop it); required with mirror files."""
    labels: list[str] | None = None
    """Class names, index = label id (classification)."""
    num_choices: int | None = Field(None, gt=1)
    """Choices per question (multiple choice); the most a question has when it varies."""
    metric: str
    """Main metric (see muppet_core.evaluation.metrics)."""
    secondary_metrics: list[str] = Field(default_factory=list)
    """Further metrics reported beside the main one."""
    loss_n: int | None = Field(None, gt=1)
    """Override of n(i) for loss scaling."""
    max_bad_fraction: float = Field(0.001, ge=0, le=1)
    """Share of a split's rows that may be malformed (dropped and reported) before the data stage fails."""

    @field_validator("family")
    @classmethod
    def _known_family(cls, value: str) -> str:
        if value not in FAMILIES:
            raise ValueError(f"unknown task family{did_you_mean(value, FAMILIES.names())}; the families are {', '.join(FAMILIES.names())}")
        return value

    @model_validator(mode="after")
    def _family_fields(self) -> "TaskSpec":
        problem = get_family(self.family).spec_problem(self)
        if problem:
            raise ValueError(problem)
        if self.mirror and not (self.reader and self.normalizer):
            raise ValueError("entries with mirror files need a 'reader' and a 'normalizer'")
        return self

    def hub_normalizer(self) -> str:
        """The normalizer applied to rows loaded from the hub: the entry's, else its family's."""
        return self.hub.normalizer or get_family(self.family).hub_normalizer

    def loss_n_value(self, max_length: int, vocab_size: int | None = None) -> int | None:
        """n(i) of the paper's loss scaling, or None where the loss is not scaled (regression).

        The family's (classes for classification, choices for multiple choice, candidate positions
        (the sequence length) for spans, the vocabulary for summarization); ``loss_n`` overrides.
        """
        if self.loss_n:
            return self.loss_n
        return get_family(self.family).loss_n(self, max_length, vocab_size)

    def loss_n_rule(self) -> int | str | None:
        """n(i) as listed in the catalog: a number, or the rule that gives it at run time."""
        return self.loss_n or get_family(self.family).loss_n_rule(self)

    def loss_scale(self, max_length: int, vocab_size: int | None = None) -> float:
        """1 / log n(i); 1.0 where n(i) is undefined."""
        n = self.loss_n_value(max_length, vocab_size)
        return 1.0 / math.log(n) if n and n > 1 else 1.0


def parse_catalog(raw: Any, source: str = "catalog.yaml") -> dict[str, TaskSpec]:
    """Validate the catalog document; problems carry the YAML path of the field."""
    if not isinstance(raw, dict) or not isinstance(raw.get("tasks"), dict):
        raise ConfigError(["tasks: expected a mapping of task name -> entry"], source)
    specs, problems = {}, []
    for name, entry in raw["tasks"].items():
        try:
            specs[name] = TaskSpec.model_validate({"name": name, **(entry or {})})
        except ValidationError as exc:
            for err in exc.errors():
                problems.append(_describe({**err, "loc": ("tasks", name, *err["loc"])}))
    if problems:
        raise ConfigError(problems, source)
    return specs


@functools.cache
def load_catalog(directory: str | None = None) -> dict[str, TaskSpec]:
    """The task catalog: every ``*.yaml`` of the entries folder (the package's by default).

    Raises:
        ConfigError: an entry is invalid, or a task name is defined twice.
    """
    specs: dict[str, TaskSpec] = {}
    for file in sorted(Path(directory or ENTRIES_DIR).glob("*.yaml")):
        parsed = parse_catalog(yaml.safe_load(file.read_text(encoding="utf-8")), file.name)
        twice = sorted(set(parsed) & set(specs))
        if twice:
            raise ConfigError([f"tasks.{name}: defined in more than one catalog file" for name in twice], file.name)
        specs.update(parsed)
    return specs


def get_task(name: str) -> TaskSpec:
    """One catalog entry, with a "did you mean" error for unknown names."""
    catalog = load_catalog()
    if name not in catalog:
        raise KeyError(f"unknown task '{name}'{did_you_mean(name, list(catalog))}")
    return catalog[name]


def check_pipeline_tasks(pipelines: PipelinesFile, source: str = "pipelines.yaml") -> None:
    """Every dataset a pipeline names must be in the catalog."""
    catalog = load_catalog()
    problems = []
    for pname, pipe in pipelines.pipelines.items():
        sections = (
            ("prefinetune", "tasks", pipe.prefinetune.tasks),
            ("finetune", "benchmarks", pipe.finetune.benchmarks),
            ("data", "extra_tasks", pipe.data.extra_tasks),
        )
        for section, key, names in sections:
            for i, task in enumerate(names):
                if task not in catalog:
                    problems.append(f"pipelines.{pname}.{section}.{key}[{i}]: unknown task '{task}'{did_you_mean(task, list(catalog))}")
    if problems:
        raise ConfigError(problems, source)
