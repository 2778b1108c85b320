"""Pydantic models for pipelines.yaml, loaded with yaml.safe_load and validated field by field.

Every problem is reported with the YAML path of the offending field, for example
``pipelines.demo.finetune.seeds[1]: Input should be a valid integer``.
"""

from __future__ import annotations

import difflib
import os
import re
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from muppet_core.errors import ConfigError
from muppet_core.registry import did_you_mean

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
MIRROR_ENV = "MUPPET_DATA_MIRROR"
STORE_ENV = "MUPPET_STORE"


def _numeric(annotation: Any) -> bool:
    """Whether a field holds numbers (int, float, constrained or Literal numbers, lists of them) and never a bool."""
    if annotation in (int, float):
        return True
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is Literal:
        return all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)
    return bool not in args and any(_numeric(a) for a in args)


class Strict(BaseModel):
    """Base for every config model: unknown keys are errors, values are immutable, numbers are
    finite, and YAML's true/false (also yes/no/on/off) are never read as the numbers 1 and 0."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_as_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, bool) for v in values) and _numeric(cls.model_fields[info.field_name].annotation):
            raise ValueError("Input should be a number, not true/false")
        return value


class DataConfig(Strict):
    """Where the original dataset files come from and how missing splits are carved."""

    mirror: str | None = Field(None, min_length=1)
    """Directory (or s3:// URI) of original files; relative paths are relative to pipelines.yaml."""
    validation_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    """Share of a split carved off for validation when the mirror has no validation split."""
    split_seed: int = Field(0, ge=0)
    """Seed of the deterministic carving; part of every data artifact's key."""
    extra_tasks: list[str] = Field(default_factory=list)
    """Datasets to normalize beyond those the pipeline trains on (to inspect them, or for later stages)."""


class PrefinetuneConfig(Strict):
    """Multi-task pre-finetuning: tasks, budget and the paper's switches."""

    enabled: bool = True
    """Set to false to fine-tune the base backbone only."""
    tasks: list[str] = Field(min_length=1)
    """Catalog names of the pre-finetuning datasets."""
    steps: int = Field(gt=0)
    """Optimizer updates."""
    micro_batch_size: int = Field(16, gt=0)
    """Examples per micro-batch; every micro-batch holds one task."""
    tasks_per_step: int = Field(4, gt=0)
    """Micro-batches accumulated per update, each from an independently sampled task."""
    learning_rate: float = Field(5e-5, gt=0)
    """Peak learning rate of the linear warmup/decay schedule."""
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    """Share of the updates spent warming up."""
    weight_decay: float = Field(0.01, ge=0)
    """AdamW weight decay."""
    max_length: int = Field(128, gt=8, le=4096)
    """Tokens per sequence (per question-choice pair for multiple choice)."""
    max_target_length: int = Field(64, gt=1, le=4096)
    """Summary tokens the decoder learns to produce (summarization)."""
    max_train_examples: int | None = Field(None, gt=0)
    """Cap on training examples per task (None: all)."""
    loss_scaling: bool = True
    """Divide each task's loss by log n(i) (the paper's default)."""
    sampling: Literal["proportional", "uniform", "temperature"] = "proportional"
    """How tasks are drawn: by dataset size, uniformly, or by size ** (1 / temperature)."""
    temperature: float = Field(2.0, gt=0)
    """Temperature of ``temperature`` sampling."""
    schedule: Literal["heterogeneous", "batch_homogeneous", "dataset_homogeneous"] = "heterogeneous"
    """Heterogeneous updates (the paper's), or the homogeneous ablations."""
    group_by_length: bool = True
    """Sort examples by length inside pools before batching (less padding)."""
    max_tokens_per_batch: int | None = Field(None, gt=0)
    """Token budget per micro-batch (examples x longest); None: micro_batch_size only."""
    max_grad_norm: float = Field(1.0, gt=0)
    """Gradient clipping."""
    task_counts: list[PositiveInt] = Field(default_factory=list)
    """Task-count experiment: also pre-finetune on nested subsets of this many tasks (a seeded
    order of ``tasks``; each subset contains the smaller ones) and fine-tune each."""
    checkpoint_every: int = Field(200, gt=0)
    """Updates between checkpoints (a killed run resumes from the last one)."""
    r3f_eps: float = Field(0.0, ge=0)
    """R3F regularizer: noise scale on input embeddings (0 disables it; the paper used 1e-5)."""
    r3f_lambda: float = Field(1.0, ge=0)
    """R3F: weight of the symmetric KL term."""
    seed: int = Field(0, ge=0)
    """Seed of task sampling, data order, dropout and head initialisation."""
    engine: Literal["deepspeed", "torch"] = "deepspeed"
    """deepspeed (every device, CPU included) or plain torch (no DeepSpeed at all)."""
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """Training precision under DeepSpeed."""
    zero_stage: Literal[0, 1, 2] = 0
    """DeepSpeed ZeRO stage."""
    deepspeed_config: str | None = None
    """A DeepSpeed JSON of your own, merged over the settings above (relative to pipelines.yaml)."""
    launcher: Literal["local", "torchrun", "deepspeed"] = "local"
    """local: one process; torchrun or deepspeed: that launcher, with nproc_per_node/hostfile."""
    nproc_per_node: int = Field(1, gt=0)
    """Processes per node under torchrun/deepspeed (one per GPU)."""
    hostfile: str | None = None
    """DeepSpeed hostfile for multi-node runs."""

    @field_validator("task_counts")
    @classmethod
    def _counts_within_tasks(cls, value: list[int], info: ValidationInfo) -> list[int]:
        tasks = info.data.get("tasks") or []
        if tasks and any(k > len(tasks) for k in value):
            raise ValueError(f"each count must be at most the number of tasks ({len(tasks)})")
        return value


class FinetuneConfig(Strict):
    """Fan-out fine-tuning of every backbone variant on every benchmark."""

    benchmarks: list[str] = Field(min_length=1)
    """Catalog names of the downstream benchmarks."""
    seeds: list[NonNegativeInt] = Field(default_factory=lambda: [0], min_length=1)
    """One fine-tune per seed for each benchmark, variant and learning rate."""
    learning_rates: list[PositiveFloat] = Field(default_factory=lambda: [3e-5], min_length=1)
    """The learning-rate grid; the leaderboard takes the best on the validation split."""
    selection: Literal["median", "mean"] = "median"
    """Over seeds, at the best learning rate: the median, or the mean (the spread is always shown)."""
    head_reuse: bool = True
    """Start from the pre-finetuned head when the benchmark was part of pre-finetuning."""
    eval_every: int | None = Field(None, gt=0)
    """Updates between validation passes for early stopping (None: evaluate once, at the end)."""
    patience: int = Field(3, gt=0)
    """Validation passes without improvement before stopping; the best weights are kept."""
    train_fractions: list[float] = Field(default_factory=list)
    """Sample-efficiency experiment: also fine-tune on these fractions of the training split (0 < f <= 1)."""
    epochs: float = Field(1.0, gt=0)
    """Passes over the (capped) training split."""
    batch_size: int = Field(16, gt=0)
    """Examples per update."""
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    """Share of the updates spent warming up."""
    weight_decay: float = Field(0.01, ge=0)
    """AdamW weight decay."""
    max_length: int = Field(128, gt=8, le=4096)
    """Tokens per sequence."""
    max_train_examples: int | None = Field(None, gt=0)
    """Cap on training examples (None: the whole training split)."""
    max_eval_examples: int | None = Field(None, gt=0)
    """Cap on validation examples (None: the whole validation split)."""
    concurrency: int = Field(1, gt=0)
    """Fine-tunes running at once (keep 1 on a laptop CPU; one per GPU on a cluster)."""
    checkpoint_every: int | None = Field(200, gt=0)
    """Updates between a fine-tune's checkpoints (a killed run resumes from the last one; None: none)."""

    @field_validator("train_fractions")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        if any(not 0 < f <= 1 for f in value):
            raise ValueError("fractions must be in (0, 1]")
        return sorted(set(value))


class WatchConfig(Strict):
    """Backbones a pipeline re-evaluates besides its own: each run evaluates every one of them, and
    the store makes those evaluated before cost nothing."""

    backbones: list[str] = Field(default_factory=list)
    """Backbones (package:NAME, a directory, an s3:// URI or a hub id) listed here."""
    list_file: str | None = None
    """A text file (a path relative to pipelines.yaml, or a URI such as s3://bucket/backbones.txt)
    with one backbone per line; blank lines and lines starting with # are ignored. Read at the
    start of every run, so adding a line schedules the backbone's evaluation."""


class PipelineConfig(Strict):
    """One named pipeline: backbone, data, pre-finetuning and fine-tuning."""

    def data_tasks(self) -> list[str]:
        """Every dataset the data stage prepares for this pipeline, sorted."""
        return sorted({*self.prefinetune.tasks, *self.finetune.benchmarks, *self.data.extra_tasks})

    description: str = ""
    """Free text shown by `muppet list`."""
    backbone: str = Field(min_length=1)
    """package:NAME, a local directory, an s3:// URI or a Hugging Face hub id."""
    store: str = Field("muppet-store", min_length=1)
    """Artifact store root (directory or s3:// URI); relative to pipelines.yaml; env MUPPET_STORE wins."""
    data: DataConfig = DataConfig()
    """Data sources."""
    prefinetune: PrefinetuneConfig
    """Pre-finetuning stage."""
    finetune: FinetuneConfig
    """Fine-tuning stage."""
    watch: WatchConfig = WatchConfig()
    """More backbones to evaluate on every run (scheduled re-evaluation)."""
    schedule: str | None = None
    """A cron expression: `muppet serve` / `muppet deploy` give the pipeline's deployment this schedule."""
    timezone: str = "UTC"
    """Time zone of the schedule (an IANA name such as Europe/Paris)."""

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            from prefect.schedules import Cron

            try:
                Cron(value)
            except Exception as exc:
                raise ValueError(f"not a valid cron expression: {str(exc).splitlines()[0] if str(exc) else exc}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not a known IANA time zone (for example UTC or Europe/Paris)") from None
        return value


class PipelinesFile(Strict):
    """The whole pipelines.yaml."""

    pipelines: dict[str, PipelineConfig] = Field(min_length=1)
    """Pipelines by name."""

    @field_validator("pipelines")
    @classmethod
    def _names_are_safe(cls, value: dict[str, PipelineConfig]) -> dict[str, PipelineConfig]:
        for name in value:
            if not re.fullmatch(NAME_PATTERN, name):
                raise ValueError(
                    f"pipeline name {repr(name)[:80]} must be 1-64 lowercase letters, digits, '-' or '_', "
                    "starting with a letter or digit (it names folders in the store)"
                )
        return value


def yaml_path(loc: tuple[Any, ...]) -> str:
    """Render a pydantic error location as a YAML path: ``pipelines.demo.finetune.seeds[1]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config model that owns the field at ``loc`` (used to suggest known keys)."""
    model: Any = PipelinesFile
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        if model is PipelinesFile and part == "pipelines":
            model = "pipelines"
            continue
        if model == "pipelines":
            model = PipelineConfig
            continue
        field = model.model_fields.get(part)
        model = field.annotation if field is not None else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _describe(error: dict[str, Any]) -> str:
    loc = tuple(error["loc"])
    path = yaml_path(loc)
    if error["type"] == "extra_forbidden":
        model = _model_at(loc)
        hint = did_you_mean(str(loc[-1]), list(model.model_fields)) if model else ""
        return f"{path}: unknown key{hint}"
    if error["type"] == "missing":
        return f"{path}: required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    return f"{path}: {message}" if isinstance(value, (dict, list)) else f"{path}: {message} (got {value!r})"


def describe_errors(errors: list[dict[str, Any]]) -> list[str]:
    """One line per problem; a missing key explained by a misspelling beside it is not repeated."""
    misspelled = set()
    for e in errors:
        if e["type"] == "extra_forbidden":
            model = _model_at(tuple(e["loc"]))
            close = difflib.get_close_matches(str(e["loc"][-1]), list(model.model_fields) if model else [], n=1, cutoff=0.6)
            misspelled.update((tuple(e["loc"][:-1]), c) for c in close)
    return [
        _describe(e)
        for e in errors
        if not (e["type"] == "missing" and (tuple(e["loc"][:-1]), e["loc"][-1]) in misspelled)
    ]


def parse_pipelines(raw: Any, source: str = "pipelines.yaml") -> PipelinesFile:
    """Validate an already-parsed YAML document."""
    try:
        return PipelinesFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc.errors()), source) from None


class PlainLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` for plain data: every tag beyond plain values, lists and mappings
    (``!!python/...``, ``!!set``, ``!!binary``, local ``!tags``) is refused before anything is
    constructed, and so is a key repeated in one mapping (YAML would let the last one win silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key '{key_node.value}'", key_node.start_mark
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)


def _refuse_tag(loader: PlainLoader, node: yaml.Node) -> None:
    tag = node.tag.replace("tag:yaml.org,2002:", "!!")
    raise yaml.constructor.ConstructorError(
        None, None, f"tag '{tag}' is not allowed: plain values, lists and mappings only", node.start_mark
    )


for _tag in (None, "tag:yaml.org,2002:set", "tag:yaml.org,2002:binary", "tag:yaml.org,2002:omap", "tag:yaml.org,2002:pairs"):
    PlainLoader.add_constructor(_tag, _refuse_tag)


def load_pipelines(path: str | os.PathLike[str]) -> PipelinesFile:
    """Load and validate a pipelines file; relative paths inside it are made absolute.

    Raises:
        ConfigError: with one line per problem, each naming the YAML path of the field.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"file not found: {path}"], str(path))
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=PlainLoader)
    except UnicodeDecodeError as exc:
        raise ConfigError([f"not UTF-8 text (byte {exc.start}: {exc.reason})"], str(path)) from None
    except OSError as exc:
        raise ConfigError([f"cannot read the file ({exc.strerror or exc})"], str(path)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise ConfigError([f"{where}not valid YAML ({getattr(exc, 'problem', exc)})"], str(path)) from None
    parsed = parse_pipelines(raw, path.name)
    base = path.resolve().parent
    return PipelinesFile(
        pipelines={name: _anchor(p, base) for name, p in parsed.pipelines.items()}
    )


def _absolute(location: str | None, base: Path) -> str | None:
    if location is None or "://" in location or os.path.isabs(location):
        return location
    return str((base / location).resolve())


def _anchor(pipeline: PipelineConfig, base: Path) -> PipelineConfig:
    """Resolve relative paths against pipelines.yaml's folder and apply environment overrides."""
    mirror = os.environ.get(MIRROR_ENV) or _absolute(pipeline.data.mirror, base)
    store = os.environ.get(STORE_ENV) or _absolute(pipeline.store, base)
    backbone = pipeline.backbone
    if backbone.startswith((".", "/")):
        backbone = _absolute(backbone, base) or backbone
    pft = pipeline.prefinetune
    watch = pipeline.watch.model_copy(
        update={
            "list_file": _absolute(pipeline.watch.list_file, base),
            "backbones": [_absolute(b, base) if b.startswith((".", "/")) else b for b in pipeline.watch.backbones],
        }
    )
    files = {"deepspeed_config": _absolute(pft.deepspeed_config, base), "hostfile": _absolute(pft.hostfile, base)}
    return pipeline.model_copy(
        update={
            "store": store,
            "backbone": backbone,
            "data": pipeline.data.model_copy(update={"mirror": mirror}),
            "watch": watch,
            "prefinetune": pft.model_copy(update=files),
        }
    )


def get_pipeline(pipelines: PipelinesFile, name: str) -> PipelineConfig:
    """The pipeline called ``name``, or a ConfigError that lists the known names."""
    if name not in pipelines.pipelines:
        known = ", ".join(sorted(pipelines.pipelines))
        raise ConfigError(
            [f"no pipeline named '{name}'{did_you_mean(name, list(pipelines.pipelines))}; known: {known}"]
        )
    return pipelines.pipelines[name]
