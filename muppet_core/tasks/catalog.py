"""The task catalog: one YAML entry per dataset, validated when loaded.

Entries live in ``entries/<family>.yaml``. Adding a dataset means adding an entry there (and,
where its raw rows need it, a normalizer of a few lines); no library code changes.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import os
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from muppet_core.config import PipelinesFile
from muppet_core.errors import ConfigError, first_line
from muppet_core.families import FAMILIES, get_family
from muppet_core.plugins import load_plugins, plugin_modules
from muppet_core.registry import did_you_mean
from muppet_core.schema import Strict, describe_error
from muppet_core.yamlfile import load_yaml

ENTRIES_DIR = Path(__file__).with_name("entries")
CATALOG_ENV = "MUPPET_CATALOG"
"""Folders of extra catalog files (separated by ``os.pathsep``), read beside the package's; set by
``use_catalog_dirs`` from a pipelines file's ``catalog:``, inherited by the processes it starts."""
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
    revision: str | None = None
    """A commit sha or tag the hub's data is pinned to; unset: the current commit of ``main``,
    resolved once per run. The resolved sha keys the data either way (see ``data.sources.hub_revision``)."""


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
    label_range: tuple[float, float] | None = None
    """The lowest and highest score (regression): training rescales scores to [0, 1]."""
    doc_stride: int | None = Field(None, gt=0)
    """Tokens shared by consecutive windows of a long context (span; the family's default otherwise)."""
    metric: str
    """Main metric (see muppet_core.evaluation.metrics)."""
    secondary_metrics: list[str] = Field(default_factory=list)
    """Further metrics reported beside the main one."""
    loss_n: int | None = Field(None, gt=1)
    """Override of n(i) for loss scaling."""
    max_bad_fraction: float = Field(0.001, ge=0, le=1)
    """Share of a split's rows that may be malformed (dropped and reported) before the data stage fails."""
    max_rejected_fraction: float | None = Field(None, ge=0, le=1)
    """Share of a split's rows its normalizer may reject by design (a question whose answer is no span of
    its passage, say) before the data stage fails, apart from ``max_bad_fraction``, which then bounds the
    malformed rows alone: a schema change that breaks a share of the rows is not hidden in the rejected
    share. None: rejected rows count as malformed."""
    official_validation: bool = False
    """Whether the mirror's validation files are the benchmark's whole official dev set (results say so)."""
    validation_note: str | None = None
    """What results should say about the scored split where it is not the official dev set (a subset, dev ids missing)."""

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


def normalizer_problem(target: str) -> str | None:
    """Why a ``module:function`` normalizer cannot be used (with a did-you-mean), or None."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        return f"'{target}' is not of the form 'module:function'"
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # a missing module, its SyntaxError, or anything its import raises or exits with
        return f"module '{module_name}' cannot be imported ({type(exc).__name__}: {first_line(exc)})"
    if not callable(getattr(module, attr, None)):
        functions = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        return f"module '{module_name}' has no function '{attr}'{did_you_mean(attr, functions)}"
    return None


def metric_problem(spec: TaskSpec, name: str) -> str | None:
    """Why the metric ``name`` cannot score ``spec``'s predictions (it takes another kind than the
    family predicts, or another number of classes than the entry's labels), or None."""
    from muppet_core.evaluation.metrics import METRICS, PREDICTIONS

    if name not in METRICS:
        return f"unknown metric '{name}'{did_you_mean(name, METRICS.names())}"
    metric, predicts = METRICS.get(name), get_family(spec.family).predicts
    takes, classes = getattr(metric, "takes", None), getattr(metric, "classes", None)
    if takes is not None and takes != predicts:
        fitting = [m for m in METRICS.names() if getattr(METRICS.get(m), "takes", None) in (None, predicts)]
        return (f"metric '{name}' scores {PREDICTIONS.get(takes, takes)}, but a {spec.family} task predicts "
                f"{PREDICTIONS.get(predicts, predicts)}: use one of {', '.join(fitting)}")
    if classes is not None and spec.labels and len(spec.labels) != classes:
        return f"metric '{name}' needs {classes} labels and the entry has {len(spec.labels)}: use another (f1_macro, accuracy)"
    return None


def reader_options_problem(reader: str, options: dict[str, Any]) -> str | None:
    """Why the reader ``reader`` does not take ``options`` (an option it does not know, or one it needs missing), or None."""
    from muppet_core.tasks.readers import READERS

    function = READERS.get(reader)
    try:
        inspect.signature(function).bind(None, **options)
    except TypeError as exc:
        takes = [p for p in list(inspect.signature(function).parameters)[1:]]
        return f"reader '{reader}' does not take these options ({exc}); it takes {', '.join(takes) or 'none'}"
    return None


def name_problems(spec: TaskSpec) -> list[tuple[str, str]]:
    """(field, problem) for every metric, reader and normalizer name of an entry that resolves to
    nothing, a metric that does not fit the entry (``metric_problem``) and reader options the
    reader does not take."""
    from muppet_core.tasks.readers import READERS

    problems = []
    for field, name in [("metric", spec.metric), *(("secondary_metrics", m) for m in spec.secondary_metrics)]:
        if problem := metric_problem(spec, name):
            problems.append((field, problem))
    if spec.reader and spec.reader not in READERS:
        problems.append(("reader", f"unknown reader '{spec.reader}'{did_you_mean(spec.reader, READERS.names())}"))
    elif spec.reader and (problem := reader_options_problem(spec.reader, spec.reader_options)):
        problems.append(("reader_options", problem))
    for field, target in (("normalizer", spec.normalizer), ("hub.normalizer", spec.hub.normalizer)):
        if target and (problem := normalizer_problem(target)):
            problems.append((field, problem))
    return problems


def parse_catalog(raw: Any, source: str = "catalog.yaml") -> dict[str, TaskSpec]:
    """Validate the catalog document; problems carry the YAML path of the field."""
    if not isinstance(raw, dict) or not isinstance(raw.get("tasks"), dict):
        raise ConfigError(["tasks: expected a mapping of task name -> entry"], source)
    specs, problems = {}, []
    for name, entry in raw["tasks"].items():
        if not isinstance(entry, dict):
            problems.append(f"tasks.{name}: expected a mapping of the entry's settings (family, hub, metric, ...), found {type(entry).__name__}")
            continue
        try:
            specs[name] = TaskSpec.model_validate({"name": name, **entry})
        except ValidationError as exc:
            for err in exc.errors():
                problems.append(describe_error(TaskSpec, {**err, "loc": ("tasks", name, *err["loc"])}))
            continue
        problems += [f"tasks.{name}.{field}: {problem}" for field, problem in name_problems(specs[name])]
    if problems:
        raise ConfigError(problems, source)
    return specs


def catalog_dirs() -> tuple[str, ...]:
    """The package's entries folder, then the folders added by ``use_catalog_dirs`` (``CATALOG_ENV``)."""
    extra = [d for d in os.environ.get(CATALOG_ENV, "").split(os.pathsep) if d]
    return (str(ENTRIES_DIR), *dict.fromkeys(extra))


def use_catalog_dirs(dirs: list[str], source: str = "pipelines.yaml") -> None:
    """Read the catalog files of ``dirs`` beside the package's, in this process and the processes
    it starts (through ``CATALOG_ENV``); their entries are checked at once.

    Raises:
        ConfigError: a folder is missing, or an entry there is invalid or redefines a task.
    """
    missing = [d for d in dirs if not Path(d).is_dir()]
    if missing:
        raise ConfigError([f"catalog: no such folder: {d}" for d in missing], source)
    current = [d for d in os.environ.get(CATALOG_ENV, "").split(os.pathsep) if d]
    added = [d for d in dirs if d not in current]
    if added:
        os.environ[CATALOG_ENV] = os.pathsep.join([*current, *added])
    load_catalog()


def load_catalog(directory: str | None = None) -> dict[str, TaskSpec]:
    """The task catalog: every ``*.yaml`` of the package's entries folder and of the folders added
    with ``use_catalog_dirs`` (or of ``directory`` alone).

    Raises:
        ConfigError: an entry is invalid (its metric, reader or normalizer names nothing known, with
            a did-you-mean), or a task name is defined twice.
    """
    load_plugins()  # a plugin may register the family, reader, metric or normalizer an entry names
    return _load_dirs((directory,) if directory else catalog_dirs(), plugin_modules())


@functools.cache
def _load_dirs(dirs: tuple[str, ...], plugins: tuple[str, ...]) -> dict[str, TaskSpec]:
    """The entries of ``dirs``, read once per set of folders and plugins (a plugin may make an entry valid)."""
    specs: dict[str, TaskSpec] = {}
    for directory in dirs:
        for file in sorted(Path(directory).glob("*.yaml")):
            source = file.name if directory == str(ENTRIES_DIR) else str(file)
            parsed = parse_catalog(load_yaml(file, source), source)
            twice = sorted(set(parsed) & set(specs))
            if twice:
                raise ConfigError([f"tasks.{name}: defined in more than one catalog file" for name in twice], source)
            specs.update(parsed)
    return specs


def entry_modules(spec: TaskSpec, *kinds: str) -> list[str]:
    """The modules outside the package that define what ``spec`` names, of the ``kinds`` asked
    (``family``, ``reader``, ``metric``): a plugin's source is part of the keys of the stages that use it."""
    from muppet_core.evaluation.metrics import METRICS
    from muppet_core.tasks.readers import READERS

    owners = []
    if "family" in kinds:
        owners.append(FAMILIES.module_of(spec.family))
    if "reader" in kinds and spec.reader:
        owners.append(READERS.module_of(spec.reader))
    if "metric" in kinds:
        owners += [METRICS.module_of(m) for m in (spec.metric, *spec.secondary_metrics)]
    return sorted({m for m in owners if m != "muppet_core" and not m.startswith("muppet_core.")})


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
