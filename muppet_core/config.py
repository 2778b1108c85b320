"""Pydantic models for pipelines.yaml, loaded with the project's strict YAML loader and validated field by field.

Every problem is reported with the YAML path of the offending field, for example
``pipelines.demo.finetune.seeds[1]: Input should be a valid integer``. Fields marked ``execution``
or ``plan`` (``muppet_core.schema``) stay out of content keys; every other setting is in them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel, Field, PositiveFloat, PositiveInt, SerializeAsAny, ValidationError, ValidationInfo, ValidatorFunctionWrapHandler,
    field_validator, model_validator,
)

from muppet_core.artifacts.backend import backend_settings
from muppet_core.errors import ConfigError, MuppetError, StoreError
from muppet_core.launching import Launching
from muppet_core.plugins import load_plugins
from muppet_core.registry import Registry, did_you_mean
from muppet_core.schema import (
    MAX_BATCH, MAX_SEED, MAX_STEPS, MAX_WORKERS, MemberSettings, Strict, describe_errors, execution, plan, reference_rows,
    reference_table,
)

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
MIN_TEMPERATURE = 0.1
"""The lowest sampling temperature: below it, size ** (1 / temperature) overflows for large datasets."""


class DataConfig(Strict):
    """Where the original dataset files come from and how missing splits are carved."""

    mirror: str | None = execution(None, min_length=1)
    """Directory (or s3:// URI) of original files; relative paths are relative to pipelines.yaml. Where
    the files are is not part of a key; what they hold is (the data stage fingerprints the files it reads)."""
    validation_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    """Share of a split carved off for validation when the mirror has no validation split."""
    split_seed: int = Field(0, ge=0, le=MAX_SEED)
    """Seed of the deterministic carving; part of every data artifact's key."""
    extra_tasks: list[str] = plan(default_factory=list)
    """Datasets to normalize beyond those the pipeline trains on (to inspect them, or for later stages)."""


class Optimization(Strict):
    """Optimisation settings shared by pre-finetuning and fine-tuning (both configs inherit them);
    ``muppet_core.training.settings`` turns a config into the loop's settings."""

    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    """Share of the updates spent warming up (linear warmup, then linear decay)."""
    weight_decay: float = Field(0.01, ge=0)
    """AdamW weight decay."""
    optimizer: Literal["adamw_torch_fused", "adamw_torch"] = "adamw_torch_fused"
    """AdamW as torch's fused kernel, or per operation (slower; rounds as older results did). Trainer's ``optim`` names."""
    max_grad_norm: float = Field(1.0, gt=0)
    """Gradient clipping."""
    max_length: int = Field(128, gt=8, le=4096)
    """Tokens per sequence (per question-choice pair for multiple choice)."""
    pooling: Literal["cls", "mean", "eos"] | None = None
    """How classification and ranking heads read a sequence: its first token (``cls``; refused for a seq2seq backbone), the
    mean of its tokens, or its last end-of-sequence token (``eos``, a seq2seq decoder's). None: the backbone's own
    (``models.backbone.default_pooling``)."""
    max_train_examples: int | None = Field(None, gt=0)
    """Cap on training examples per task (None: all)."""
    group_by_length: bool = True
    """Sort examples by length inside pools before batching (less padding)."""
    max_tokens_per_batch: int | None = Field(None, gt=0, le=MAX_BATCH * 4096)
    """Token budget per micro-batch (examples x longest); None: the batch size only."""
    r3f_eps: float = Field(0.0, ge=0)
    """R3F regularizer: noise scale on input embeddings (0 disables it; the paper used 1e-5)."""
    r3f_lambda: float = Field(1.0, ge=0)
    """R3F: weight of the symmetric KL term, KL(p || q) + KL(q || p) averaged over examples (over target tokens for summarization)."""
    r3f_noise: Literal["uniform", "normal"] = "uniform"
    """R3F: the noise distribution, uniform in [-r3f_eps, r3f_eps] (fairseq's default) or normal N(0, r3f_eps^2)."""
    engine: Literal["deepspeed", "torch"] = "torch"
    """deepspeed (every device, CPU included) or plain torch (no DeepSpeed at all)."""
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """Training precision: autocast (with a gradient scaler for fp16) on the torch engine, DeepSpeed's own bf16/fp16 on DeepSpeed."""
    zero_stage: Literal[0, 1, 2] = 0
    """DeepSpeed ZeRO stage."""
    deepspeed_config: str | None = None
    """A DeepSpeed JSON of your own, merged over the settings above (relative to pipelines.yaml)."""
    @model_validator(mode="after")
    def _r3f_noise_survives_the_weights(self) -> Optimization:
        if self.r3f_eps > 0 and self.engine == "deepspeed" and self.precision != "fp32":
            raise ValueError(
                f"r3f_eps: R3F's noise rounds away on DeepSpeed's {self.precision} weights (their embeddings are {self.precision}): "
                f"use engine torch (autocast keeps fp32 weights) or precision fp32"
            )
        return self

    device: str | None = execution(None, pattern=r"^(cpu|cuda(:[0-9]+)?)$")
    """Where each rank trains and evaluates: cpu, cuda or cuda:N (None: cuda:LOCAL_RANK when CUDA is present, else the CPU)."""
    checkpoint_every: int | None = execution(200, gt=0, le=MAX_STEPS)
    """Updates between checkpoints (a killed run resumes from the last one; None: no checkpoints)."""
    prefetch: bool | None = execution(None)
    """Collate the next micro-batch on a helper thread while this one computes, and on a CUDA device copy
    it from page-locked memory without blocking (None: on a CUDA device only). The batches are the same
    either way."""


class Mixing(Strict):
    """How a multi-task run draws the task of each micro-batch and scales its loss (pre-finetuning)."""

    loss_scaling: bool = True
    """Divide each task's loss by log n(i) (the paper's default)."""
    sampling: Literal["proportional", "uniform", "temperature"] = "proportional"
    """How tasks are drawn: by dataset size, uniformly, or by size ** (1 / temperature)."""
    temperature: float = Field(2.0, ge=MIN_TEMPERATURE)
    """Temperature of ``temperature`` sampling (at least 0.1: lower ones overflow and sample only the largest task)."""
    schedule: Literal["heterogeneous", "batch_homogeneous", "dataset_homogeneous"] = "heterogeneous"
    """Heterogeneous updates (the paper's), or the homogeneous ablations."""


class PrefinetuneConfig(Optimization, Mixing, Launching):
    """Multi-task pre-finetuning: tasks, budget, the paper's switches and how its ranks start (``Launching``)."""

    enabled: bool = plan(True)
    """Set to false to fine-tune the base backbone only."""
    tasks: list[str] = Field(min_length=1)
    """Catalog names of the pre-finetuning datasets."""
    steps: int = Field(gt=0, le=MAX_STEPS)
    """Optimizer updates."""
    micro_batch_size: int = Field(16, gt=0, le=MAX_BATCH)
    """Examples per micro-batch; every micro-batch holds one task."""
    tasks_per_step: int = Field(4, gt=0, le=MAX_WORKERS)
    """Micro-batches accumulated per update, each from an independently sampled task."""
    learning_rate: float = Field(5e-5, gt=0)
    """Peak learning rate of the linear warmup/decay schedule."""
    max_target_length: int = Field(64, gt=1, le=4096)
    """Summary tokens the decoder learns to produce (summarization)."""
    task_counts: list[PositiveInt] = plan(default_factory=list)
    """Task-count experiment: also pre-finetune on nested subsets of this many tasks (a seeded
    order of ``tasks``; each subset contains the smaller ones) and fine-tune each."""
    seed: int = Field(0, ge=0, le=MAX_SEED)
    """Seed of task sampling, data order, dropout and head initialisation."""
    engine: Literal["deepspeed", "torch"] = "deepspeed"
    """deepspeed (every device, CPU included) or plain torch (no DeepSpeed at all)."""

    @field_validator("task_counts")
    @classmethod
    def _counts_within_tasks(cls, value: list[int], info: ValidationInfo) -> list[int]:
        tasks = info.data.get("tasks") or []
        if tasks and any(k > len(tasks) for k in value):
            raise ValueError(f"each count must be at most the number of tasks ({len(tasks)})")
        return value


class ExecutorSettings(MemberSettings):
    """An executor's settings: ``kind`` names the executor, the other fields are its own. Each
    executor's settings model is registered in ``MEMBERS`` under its kind (the built-in ones here, so
    any process validates them; an executor of your own registers its settings with itself, see
    ``muppet_core.training.executor.register_executor``)."""

    MEMBERS: ClassVar[Registry] = Registry("executor", on_miss=load_plugins)
    remote: ClassVar[bool] = False
    """Whether the executor runs its fine-tunes on other machines (the run's preflight then leaves
    ``finetune.device`` to them)."""
    kind: str
    """Where each fine-tune runs: ``thread`` (a thread of the flow's process), ``process`` (a process of its own,
    pinned to a device), ``auto`` (``process`` where several GPUs or fine-tunes at once would share one process, else
    ``thread``) or ``deployment`` (flow runs on a Prefect work pool's workers), or one of your own (registered with
    ``register_executor``); see ``muppet_core.training.executor``. The kind alone (``executor: process``) stands for ``{kind: process}``."""


class ThreadCount(Strict):
    """The thread count of the executors that set one."""

    threads: int | None = Field(None, gt=0, le=MAX_WORKERS)
    """CPU threads of each fine-tune (None: cores // concurrency, at least 1). On a CPU some kernels round
    differently with another count: set it to get bit-identical results at any concurrency."""


class Retries(Strict):
    """How often the executors whose fine-tunes run elsewhere start one again."""

    retries: int = Field(0, ge=0, le=100)
    """Times a fine-tune whose process or worker dies is started again, resuming from its last checkpoint, before it
    is a failure record."""


class Warm(Strict):
    """Whether the ``process`` executor keeps its fine-tune processes between fine-tunes."""

    warm: bool = False
    """Run the fine-tunes in warm workers: a process per device of the pool stays up for the fan-out and runs its fine-tunes
    one after another, each from the random state, model and optimizer a fresh process would have (results bit-identical
    to one process per fine-tune), so Python, torch and the libraries start once per device, not once per fine-tune. A
    worker that dies is replaced, its fine-tune retried as ``retries`` says; a worker whose fine-tune failed retires; the
    workers end with the fan-out. False (the default, until the whole suite has run with it on): a fresh process per
    fine-tune."""


@ExecutorSettings.register
class ThreadSettings(ThreadCount, ExecutorSettings):
    """``thread``: each fine-tune in a thread of the flow's process."""

    kind: Literal["thread"] = "thread"


@ExecutorSettings.register
class ProcessSettings(Retries, Warm, ThreadCount, ExecutorSettings):
    """``process``: each fine-tune in a process of its own, pinned to a device of this machine."""

    kind: Literal["process"] = "process"


@ExecutorSettings.register
class AutoSettings(Retries, Warm, ThreadCount, ExecutorSettings):
    """``auto``: ``process`` or ``thread``, as the machine and ``concurrency`` call for; the settings of both."""

    kind: Literal["auto"] = "auto"


@ExecutorSettings.register
class DeploymentSettings(Retries, ThreadCount, ExecutorSettings):
    """``deployment``: flow runs on a Prefect work pool's workers (``flows.finetune_remote`` runs them)."""

    remote: ClassVar[bool] = True
    kind: Literal["deployment"] = "deployment"
    work_pool: str | None = Field(None, min_length=1)
    """The Prefect work pool whose workers run the fine-tunes."""
    chunk: int = Field(1, gt=0, le=MAX_STEPS)
    """Fine-tunes per flow run (run one after another by one worker)."""


EXECUTOR_SETTINGS_BESIDE = ("threads", "retries", "work_pool", "chunk")
"""Executor settings that pipelines files wrote beside ``finetune.executor`` before each executor had
settings of its own: still read, and moved into the executor's settings (one its executor does not
take is ignored, as it was then)."""


class FinetuneConfig(Optimization):
    """Fan-out fine-tuning of every backbone variant on every benchmark."""

    benchmarks: list[str] = plan(min_length=1)
    """Catalog names of the downstream benchmarks."""
    seeds: list[Seed] = plan(default_factory=lambda: [0], min_length=1)
    """One fine-tune per seed for each benchmark, variant and learning rate."""
    learning_rates: list[PositiveFloat] = plan(default_factory=lambda: [3e-5], min_length=1)
    """The learning-rate grid; the leaderboard takes the best on the selection slice (see ``selection_fraction``)."""
    selection: Literal["median", "mean"] = plan("median")
    """Over seeds, at the best learning rate: the median, or the mean (the spread is always shown)."""
    head_reuse: bool = plan(True)
    """Start from the pre-finetuned head when the benchmark was part of pre-finetuning (in each run's key)."""
    head_reuse_control: bool = plan(False)
    """Also fine-tune the pre-finetuned encoder from fresh heads: the control row ``prefinetuned_fresh_head``."""
    eval_every: int | None = Field(None, gt=0, le=MAX_STEPS)
    """Updates between passes over the selection slice for early stopping (None: no early stopping)."""
    patience: int = Field(3, gt=0, le=MAX_STEPS)
    """Selection passes without improvement before stopping; the best weights are kept."""
    selection_fraction: float = Field(0.1, gt=0, lt=1)
    """Share of the training split held out (by example id) as the selection slice when the
    fine-tune selects (a learning-rate grid or ``eval_every``): the grid and early stopping are
    decided on it, never on the validation split that is reported."""
    train_fractions: list[float] = plan(default_factory=list)
    """Sample-efficiency experiment: also fine-tune on these fractions of the training split (0 < f <= 1)."""
    epochs: float = Field(1.0, gt=0, le=10_000)
    """Passes over the (capped) training split."""
    batch_size: int = Field(16, gt=0, le=MAX_BATCH)
    """Examples per update."""
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    """Share of the updates spent warming up."""
    max_eval_examples: int | None = Field(None, gt=0)
    """Cap on validation examples (None: the whole validation split)."""
    num_beams: int = Field(1, gt=0, le=64)
    """Beams of the beam search that writes summaries (1: greedy decoding)."""
    engine: Literal["torch"] = "torch"
    """Fine-tunes run on the plain torch engine."""
    concurrency: int = execution(1, gt=0, le=MAX_WORKERS)
    """Fine-tunes running at once (one per GPU on a cluster)."""
    executor: SerializeAsAny[ExecutorSettings] = execution(AutoSettings())
    """Where each fine-tune runs, with that executor's own settings (``kind`` and the settings after it)."""

    @field_validator("executor", mode="wrap")
    @classmethod
    def _executor(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> ExecutorSettings:
        return ExecutorSettings.choose(value, handler)

    @model_validator(mode="before")
    @classmethod
    def _executor_settings_beside_it(cls, data: Any) -> Any:
        """Move the ``EXECUTOR_SETTINGS_BESIDE`` found beside ``executor`` into its settings."""
        if not isinstance(data, dict) or not (beside := {k: data[k] for k in EXECUTOR_SETTINGS_BESIDE if k in data}):
            return data
        executor = data.get("executor", AutoSettings.model_fields["kind"].default)
        if isinstance(executor, BaseModel):
            executor = {**executor.model_dump(exclude_unset=True), "kind": executor.kind}
        executor = {"kind": executor} if isinstance(executor, str) else executor
        kind = executor.get("kind") if isinstance(executor, dict) else None
        if not isinstance(kind, str) or not ExecutorSettings.MEMBERS.known(kind):  # known: a plugin's, imported now
            return data  # the executor's own error says what is wrong
        if twice := sorted(set(beside) & set(executor)):
            raise ValueError(f"{', '.join(twice)}: given both beside executor and in its settings; keep the one under executor")
        takes = ExecutorSettings.MEMBERS.get(executor["kind"]).model_fields
        rest = {k: v for k, v in data.items() if k not in beside}
        return {**rest, "executor": {**executor, **{k: v for k, v in beside.items() if k in takes}}}

    @property
    def selects(self) -> bool:
        """Whether fine-tunes select (a learning-rate grid or early stopping), and so carve a selection slice."""
        return len(self.learning_rates) > 1 or self.eval_every is not None

    @field_validator("train_fractions")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        if any(not 0 < f <= 1 for f in value):
            raise ValueError("fractions must be in (0, 1]")
        return sorted(value)


class WatchConfig(Strict):
    """Backbones a pipeline re-evaluates besides its own: each run evaluates every one of them, and
    the store makes those evaluated before cost nothing."""

    backbones: list[str] = Field(default_factory=list)
    """Backbones (package:NAME, a directory, an s3:// URI or a hub id, org/name or org/name@revision) listed here."""
    list_file: str | None = None
    """A text file (relative to pipelines.yaml, or a URI such as s3://bucket/backbones.txt), one backbone a line (blank
    lines and # comments ignored), read at the start of every run: adding a line schedules the backbone's evaluation."""


class TrackingConfig(MemberSettings):
    """The ``tracking:`` section: ``kind`` names the experiment tracker, a registered member whose
    settings model, a subclass of this one, validates the rest of the section (``mlflow`` when it names
    none). Each settings model names the tracker class it builds (see ``muppet_core.tracking``)."""

    MEMBERS: ClassVar[Registry] = Registry("tracker", on_miss=load_plugins)
    kind: str = "mlflow"
    """The tracker: ``mlflow``, or a kind of your own (registered with ``register_tracker``, from a plugin too)."""
    tracker: ClassVar[str]
    """The tracker class these settings build, as ``"module:Class"``."""


@TrackingConfig.register
class MlflowTracking(TrackingConfig):
    """Tracking in MLflow: off unless a server is named here or in ``MLFLOW_TRACKING_URI``."""

    tracker: ClassVar[str] = "muppet_core.tracking:MlflowTracker"
    kind: Literal["mlflow"] = "mlflow"
    """``mlflow``."""
    mlflow_uri: str | None = Field(None, min_length=1)
    """The MLflow tracking server (``http://host:5000``); empty: ``MLFLOW_TRACKING_URI``, else no tracking."""
    experiment: str | None = Field(None, min_length=1)
    """The MLflow experiment the runs go to (default: ``muppet-<pipeline>``)."""


TRACKERS = TrackingConfig.MEMBERS
"""Tracker kind -> its settings model (a ``TrackingConfig`` subclass naming its tracker class)."""


def register_tracker(settings: type[TrackingConfig]) -> type[TrackingConfig]:
    """Register a tracker by its settings model (its ``kind`` field's default is the kind); returns it.

    Raises:
        ValueError: another model holds that kind.
    """
    return TrackingConfig.register(settings)


def unregister_tracker(kind: str) -> None:
    """Forget the tracker ``kind`` (for a plugin or test that registered its own)."""
    TRACKERS.unregister(kind)


class PipelineConfig(Strict):
    """One named pipeline: backbone, data, pre-finetuning and fine-tuning."""

    def data_tasks(self) -> list[str]:
        """Every dataset the data stage prepares for this pipeline, sorted."""
        return sorted({*self.prefinetune.tasks, *self.finetune.benchmarks, *self.data.extra_tasks})

    description: str = ""
    """Free text shown by `muppet list`."""
    backbone: str = Field(min_length=1)
    """package:NAME, a local directory, an s3:// URI or a Hugging Face hub id (org/name: the current commit of main; org/name@revision: that sha or tag); a plugin's backbone source adds its own PREFIX:NAME."""
    store: str = Field("muppet-store", min_length=1)
    """Artifact store root (directory or s3:// URI); relative to pipelines.yaml; env MUPPET_STORE wins."""
    store_options: dict[str, Any] = execution(default_factory=dict)
    """Options of the store's backend (the one its root's scheme names), validated by it: for ``s3://``, ``endpoint_url``,
    ``retries``, ``backoff_s``, ``chunk_bytes``, ``max_concurrency``, ``connect_timeout_s``, ``read_timeout_s``,
    ``lock_stale_s`` and ``lock_poll_s`` (see docs/operations.md); a local store takes none. Every process of a run, the
    training workers included, opens the store with them."""
    data: DataConfig = DataConfig()
    """Data sources."""
    prefinetune: PrefinetuneConfig
    """Pre-finetuning stage."""
    finetune: FinetuneConfig
    """Fine-tuning stage."""
    watch: WatchConfig = WatchConfig()
    """More backbones to evaluate on every run (scheduled re-evaluation)."""
    tracking: SerializeAsAny[TrackingConfig] = execution(MlflowTracking())
    """Where the runs are tracked (a tracker ``kind`` and its settings; MLflow by default); never part of a content key."""
    schedule: str | None = None
    """A cron expression: `muppet serve` / `muppet deploy` give the pipeline's deployment this schedule."""
    timezone: str = "UTC"
    """Time zone of the schedule (an IANA name such as Europe/Paris)."""

    @field_validator("store_options")
    @classmethod
    def _store_options(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if "store" in info.data:
            try:
                backend_settings(info.data["store"], value)
            except StoreError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("tracking", mode="wrap")
    @classmethod
    def _tracker_kind(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> TrackingConfig:
        return TrackingConfig.choose(value, handler)

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

    catalog: list[str] = Field(default_factory=list)
    """Folders of your own task-catalog YAML files (relative to pipelines.yaml), read beside the
    package's catalog: add datasets without touching the package."""
    plugins: list[str] = Field(default_factory=list)
    """Modules of your own (importable names; pipelines.yaml's folder is on the import path) that register task
    families, metrics, readers, normalizers, backbone sources, backbone kinds, executors, trackers or store backends when
    imported. Every process of a run imports them, the training workers included; the source of a family, reader,
    normalizer or metric is part of the keys of the stages that use it, and a backbone source's or kind's of its backbone's. An
    installed package can name its module through a ``muppet.plugins`` entry point instead."""
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


def parse_pipelines(raw: Any, source: str = "pipelines.yaml") -> PipelinesFile:
    """Validate an already-parsed YAML document."""
    try:
        return PipelinesFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe_errors(PipelinesFile, exc.errors()), source) from None


def get_pipeline(pipelines: PipelinesFile, name: str) -> PipelineConfig:
    """The pipeline called ``name``, or a ConfigError that lists the known names."""
    if name not in pipelines.pipelines:
        known = ", ".join(sorted(pipelines.pipelines))
        raise ConfigError([f"no pipeline named '{name}'{did_you_mean(name, list(pipelines.pipelines))}; known: {known}"])
    return pipelines.pipelines[name]


REFERENCE_MARK = "<!-- settings reference -->"
"""docs/configuration.md's line after which ``make docs`` writes ``settings_reference()``."""


def settings_reference() -> str:
    """Every setting of pipelines.yaml with its type, default, role in content keys and meaning (its
    field's docstring), as Markdown: generated, so the documentation cannot drift from the models."""
    return (
        "## Every setting\n\n"
        "Generated from the settings' docstrings in `muppet_core/config.py` by `make docs` (a test fails when\n"
        "this table and the code disagree). *In keys*: `key` settings are part of the content keys of the\n"
        "stages that read them; `execution` settings only shape how the work runs and `plan` settings decide\n"
        "which runs a stage makes (each run's own seed, benchmark or learning rate is in its key). The file's\n"
        "own `catalog` and `plugins` enter keys by their content: the entries a stage reads, the code it runs.\n\n"
        + reference_table([(p, t, d, r if p.startswith("pipelines.") else "by content", m) for p, t, d, r, m in reference_rows(PipelinesFile)])
    )


def write_reference(path: str) -> None:
    """Replace what follows ``REFERENCE_MARK`` in the Markdown file ``path`` by ``settings_reference()``."""
    page = Path(path).read_text(encoding="utf-8")
    head, mark, _ = page.partition(REFERENCE_MARK)
    if not mark:
        raise MuppetError(f"{path} has no line '{REFERENCE_MARK}' to write the settings reference after")
    Path(path).write_text(f"{head}{mark}\n\n{settings_reference()}", encoding="utf-8")
