"""The fine-tuning stage: the fan-out's plan, and one run (variant x benchmark x seed x learning
rate, possibly on a fraction of the data) trained then evaluated."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from muppet_core import stages
from muppet_core.artifacts.fingerprints import METRIC_LIBRARIES, TRAINING_LIBRARIES, library_versions
from muppet_core.artifacts.stage import StageOutput, run_cached, stored_output
from muppet_core.artifacts.store import ArtifactStore, code_version
from muppet_core.callbacks import CallbackSpec, build_callbacks, computing
from muppet_core.config import FinetuneConfig
from muppet_core.data.prepare import load_split
from muppet_core.data.splits import carve_selection, describe_scored, subsample
from muppet_core.errors import MuppetError, StoreError, first_line
from muppet_core.evaluation.metrics import METRICS
from muppet_core.evaluation.results import CONTROL_VARIANT, ResultRecord, failure_path
from muppet_core.families import get_family
from muppet_core.families.build import build_multitask_model
from muppet_core.models.backbone import Variant, default_pooling, load_encoder
from muppet_core.schema import result_settings
from muppet_core.tasks.catalog import entry_modules, get_task
from muppet_core.training.callbacks import EarlyStopping, LossLogger, ProgressBar
from muppet_core.training.evaluate import evaluate
from muppet_core.training.loop import TaskStream, train
from muppet_core.training.settings import finetune_settings

log = logging.getLogger(__name__)
# A failed run is recorded here, outside the content-addressed artifacts, so a re-run retries it.


@dataclass(frozen=True)
class FinetuneRun:
    """One cell of the fan-out: a variant fine-tuned on a benchmark with one seed and learning rate,
    on a fraction of the training split, for the main grid or an experiment; ``head_reuse`` False
    starts a pre-finetuned variant from fresh heads (the control)."""

    variant: Variant
    benchmark: str
    seed: int
    learning_rate: float
    fraction: float = 1.0
    experiment: str | None = None
    head_reuse: bool = True

    def reuses_head(self, config: FinetuneConfig) -> bool:
        """Whether the run starts from the pre-finetuned head (of a pre-finetuned variant, head reuse on)."""
        return config.head_reuse and self.head_reuse and bool(self.variant.tasks)

    @property
    def name(self) -> str:
        """``variant/benchmark/seed/lr`` (and the fraction when below 1)."""
        fraction = f"/frac{self.fraction:g}" if self.fraction < 1 else ""
        return f"{self.variant.name}/{self.benchmark}/seed{self.seed}/lr{self.learning_rate:g}{fraction}"


def plan_runs(config: FinetuneConfig, variants: list[Variant]) -> list[FinetuneRun]:
    """Every fine-tune of a pipeline: variants x benchmarks x seeds x learning rates (and, with
    ``head_reuse_control``, the pre-finetuned variant's grid again from fresh heads), plus the
    sample-efficiency fractions (at the first learning rate) and the task-count variants' runs."""
    runs = []
    first_lr = config.learning_rates[0]
    for v in variants:
        if v.experiment:
            runs += [FinetuneRun(v, b, s, first_lr, experiment=v.experiment) for b in config.benchmarks for s in config.seeds]
            continue
        runs += [FinetuneRun(v, b, s, lr) for b in config.benchmarks for s in config.seeds for lr in config.learning_rates]
        if config.head_reuse_control and config.head_reuse and v.tasks:
            control = dataclasses.replace(v, name=CONTROL_VARIANT)
            runs += [FinetuneRun(control, b, s, lr, head_reuse=False) for b in config.benchmarks for s in config.seeds for lr in config.learning_rates]
        runs += [
            FinetuneRun(v, b, s, first_lr, fraction=f, experiment="sample_efficiency")
            for f in config.train_fractions
            for b in config.benchmarks
            for s in config.seeds
        ]
    return runs


def _validation_score(model, spec, features, tokenizer, num_beams: int = 1) -> float:
    """The main metric, oriented so that higher is better."""
    metric = METRICS.get(spec.metric)
    head = get_family(spec.family).head_name(spec)
    value = evaluate(model, head, spec, features, tokenizer.pad_token_id, tokenizer=tokenizer, num_beams=num_beams)[spec.metric]
    return value if metric.higher_is_better else -value


@dataclass(frozen=True)
class Fitted:
    """What one fine-tune produced: validation metrics, the training loop's summary (updates,
    examples, tokens, wall time, padding efficiency), the example counts, the fine-tuned weights'
    digest, the scores on the selection slice carved from train (None when nothing selects), and
    what was scored (see ``describe_scored``)."""

    metrics: dict[str, float]
    summary: dict
    train_examples: int
    eval_examples: int
    weights_sha256: str
    selection_metrics: dict[str, float] | None = None
    selection_examples: int | None = None
    eval_split: str | None = None


def fit(
    run: FinetuneRun, data_dir: Path, config: FinetuneConfig, checkpoint_dir: str | Path | None = None,
    extra_callbacks: list[CallbackSpec] | tuple[CallbackSpec, ...] = (),
) -> Fitted:
    """Fine-tune on the benchmark's train split and evaluate on validation.

    The head starts from the pre-finetuned one when the variant was pre-finetuned with it and
    ``head_reuse`` is on; with ``eval_every`` the validation score is tracked during training,
    training stops after ``patience`` passes without improvement, and the best weights are kept.
    With ``checkpoint_dir`` (a local path or a URI in the store), a checkpoint is written there every ``config.checkpoint_every``
    updates and a run that finds one resumes from it, ending exactly as an uninterrupted run.
    ``extra_callbacks`` are installed besides progress, logging and early stopping (see ``CallbackSpec``).
    """
    spec = get_task(run.benchmark)
    family = get_family(spec.family).for_task(spec)
    head = family.head_name(spec)
    torch.manual_seed(run.seed)
    encoder, tokenizer = load_encoder(run.variant.encoder_path)
    model = build_multitask_model(encoder, [spec], config.pooling or default_pooling(run.variant.encoder_path))
    label = run.name
    if run.reuses_head(config):
        reused = model.load_heads(Path(run.variant.encoder_path).parent, [head])
        if reused:
            log.info("%s starts from the pre-finetuned head %s", label, reused[0])
    train_records = subsample(load_split(data_dir, spec.family, "train"), config.max_train_examples, run.seed)
    eval_records = subsample(load_split(data_dir, spec.family, "validation"), config.max_eval_examples, 0)
    select_features = None
    if config.selects:  # the grid and early stopping decide on a slice of train, never on the reported split
        train_records, select_records = carve_selection(train_records, config.selection_fraction, run.benchmark)
        select_features, _ = family.encode(select_records, tokenizer, config.max_length)
    if run.fraction < 1:
        train_records = subsample(train_records, max(1, round(run.fraction * len(train_records))), run.seed)
    train_features, _ = family.encode(train_records, tokenizer, config.max_length)
    eval_features, _ = family.encode(eval_records, tokenizer, config.max_length)
    stream = TaskStream(family, head, train_features, 1.0)
    steps = max(1, math.ceil(config.epochs * len(train_features) / config.batch_size))
    settings = finetune_settings(config, steps, run.learning_rate, run.seed, str(checkpoint_dir) if checkpoint_dir else None)
    callbacks = [ProgressBar(label), LossLogger(label, every=10**9)]
    stopper = None
    if config.eval_every:
        stopper = EarlyStopping(model, lambda: _validation_score(model, spec, select_features, tokenizer, config.num_beams), config.eval_every, config.patience)
        callbacks.append(stopper)
    callbacks += build_callbacks(extra_callbacks)
    summary = train(model, {run.benchmark: stream}, settings, tokenizer.pad_token_id, callbacks)
    if stopper:
        stopper.keep_best()
    metrics = evaluate(model, head, spec, eval_features, tokenizer.pad_token_id, tokenizer=tokenizer, num_beams=config.num_beams)
    log.info("%s validation: %s", label, ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    selection = evaluate(model, head, spec, select_features, tokenizer.pad_token_id, tokenizer=tokenizer, num_beams=config.num_beams) if select_features else None
    scored = describe_scored(spec, json.loads((Path(data_dir) / "stats.json").read_text()), len(eval_records))
    return Fitted(metrics, summary, len(train_records), len(eval_records), weights_digest(model), selection,
                  len(select_features) if select_features else None, scored)


def finetune(
    run: FinetuneRun, data_dir: Path, config: FinetuneConfig, pipeline: str, checkpoint_dir: str | Path | None = None,
    extra_callbacks: list[CallbackSpec] | tuple[CallbackSpec, ...] = (),
) -> ResultRecord:
    """``fit`` (see there), as the run's result record."""
    started = time.perf_counter()
    fitted = fit(run, data_dir, config, checkpoint_dir, extra_callbacks)
    return _record(
        pipeline, run, started, metrics=fitted.metrics, train_examples=fitted.train_examples,
        examples_seen=int(fitted.summary["examples_seen"]), eval_examples=fitted.eval_examples, weights_sha256=fitted.weights_sha256,
        selection_metrics=fitted.selection_metrics, selection_examples=fitted.selection_examples, eval_split=fitted.eval_split,
    )


def weights_digest(model: torch.nn.Module) -> str:
    """The sha256 of every tensor of ``model``'s state, in name order (names, dtypes, shapes and bytes)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _record(pipeline: str, run: FinetuneRun, started: float, **outcome) -> ResultRecord:
    """The result record of ``run``: its identity, timing and code version, plus the outcome
    (metrics and example counts, or a failure's status and error)."""
    return ResultRecord(
        pipeline=pipeline,
        variant=run.variant.name,
        variant_key=run.variant.key,
        benchmark=run.benchmark,
        seed=run.seed,
        learning_rate=run.learning_rate,
        main_metric=get_task(run.benchmark).metric,
        wall_seconds=round(time.perf_counter() - started, 2),
        code_version=finetune_code(run.benchmark),
        experiment=run.experiment,
        prefinetune_tasks=len(run.variant.tasks) or None,
        backbone=run.variant.label,
        **outcome,
    )


def finetune_code(benchmark: str) -> str:
    """The version of the code a fine-tune of ``benchmark`` runs: what this module imports, and the
    plugin modules that define the benchmark's family and metrics."""
    return code_version(__name__, *entry_modules(get_task(benchmark), "family", "metric"))


def finetune_key(run: FinetuneRun, data: StageOutput, config: FinetuneConfig) -> str:
    """The content key: variant, data, every setting but those marked execution or plan (they shape
    the fan-out or its execution), the run's own seed, learning rate, fraction, experiment and head
    reuse, the code it runs (``finetune_code``) and the training and metric libraries' versions; not
    the pipeline's name."""
    return ArtifactStore.key(
        stages.FINETUNE,
        variant=run.variant.name,
        variant_key=run.variant.key,
        data=data.key,
        benchmark=run.benchmark,
        config=result_settings(config),
        head_reuse=run.reuses_head(config),
        selects=config.selects,
        seed=run.seed,
        learning_rate=run.learning_rate,
        fraction=run.fraction,
        experiment=run.experiment,
        code=finetune_code(run.benchmark),
        libraries=library_versions(TRAINING_LIBRARIES + METRIC_LIBRARIES),
    )


def run_settings(run: FinetuneRun, config: FinetuneConfig) -> dict:
    """What decides one fine-tune's result: the settings in its key, the variant and the run's own values."""
    own = {"variant": run.variant.name, "backbone": run.variant.backbone, "benchmark": run.benchmark, "seed": run.seed,
           "learning_rate": run.learning_rate, "fraction": run.fraction, "experiment": run.experiment}
    return {**own, **result_settings(config), "head_reuse": run.reuses_head(config), "selects": config.selects}


def stored_finetune(run: FinetuneRun, data: StageOutput, config: FinetuneConfig, store: ArtifactStore) -> StageOutput | None:
    """The result of ``run`` when the store holds it intact (a cache hit: no slot, process or worker
    needed), else None."""
    return stored_output(store, stages.FINETUNE, run.name, finetune_key(run, data, config))


def finetune_stage(
    pipeline: str, run: FinetuneRun, data: StageOutput, config: FinetuneConfig, store: ArtifactStore,
    callbacks: list[CallbackSpec] | tuple[CallbackSpec, ...] = (),
) -> StageOutput:
    """One fine-tune through the store (see ``finetune_key``): pipelines that ask for the same run
    (an ablation's base model, a backbone already evaluated) share its result. ``callbacks`` are
    installed in its loop; stage callbacks (a tracker, see ``muppet_core.tracking``) hear a computed
    run start and end, with its scores.

    A run's checkpoints live in the store's scratch area under its key (``ArtifactStore.scratch_uri``),
    so a killed run started again, on this machine or another, resumes from its last checkpoint;
    they are removed once the result is published.
    A run that raises returns a ``finetune-failed`` output whose record says why; nothing is
    published under the key, so the next run of the pipeline tries it again.
    """
    key = finetune_key(run, data, config)
    checkpoints = store.scratch_uri(stages.FINETUNE, key)

    def build(out: Path) -> dict:
        with computing(callbacks, "fine-tune " + "/".join(filter(None, [run.variant.label, run.name])), key, run_settings(run, config)) as hooks:
            record = finetune(run, store.fetch(stages.DATA, data.key), config, pipeline, checkpoints, hooks.loop)
            hooks.metrics.update({f"score/{k}": v for k, v in record.metrics.items()} | {"wall_seconds": record.wall_seconds})
        (out / "record.json").write_text(record.model_dump_json(indent=1))
        return {"benchmark": run.benchmark, "variant": run.variant.name, "seed": run.seed}

    started = time.perf_counter()
    try:
        output = run_cached(store, stages.FINETUNE, run.name, key, build)
        ArtifactStore(checkpoints).remove("")
        return output
    except Exception as exc:  # one failed run must not stop the fan-out: it becomes a failure record
        if isinstance(exc, MuppetError):  # its one line says what went wrong
            log.error("fine-tune %s failed: %s", run.name, exc)
        else:
            log.exception("fine-tune %s failed", run.name)
        return record_failure(pipeline, run, key, store, started, exc)


def record_failure(pipeline: str, run: FinetuneRun, key: str, store: ArtifactStore, started: float, exc: BaseException) -> StageOutput:
    """Write the failure record of ``run`` (its error: the exception's type and first line) and
    return its ``finetune-failed`` output; ``started`` is when the run began (``time.perf_counter``).

    Raises:
        StoreError: the store took not even the failure record (full, say): one line, with the run's
            own error when it was another.
    """
    error = f"{type(exc).__name__}: {first_line(exc)}" if str(exc).strip() else type(exc).__name__
    record = _record(
        pipeline, run, started, metrics={}, train_examples=None, examples_seen=None, eval_examples=None, status="failed", error=error,
    )
    try:
        uri = store.write_text(failure_path(key), record.model_dump_json(indent=1))
    except StoreError as lost:
        why = "" if isinstance(exc, StoreError) else f" (it failed: {error})"
        raise StoreError(f"fine-tune {run.name}: neither its result nor its failure record could be written{why}: {first_line(lost)}") from None
    return StageOutput(stages.FINETUNE_FAILED, run.name, key, uri, False)
