"""The fine-tuning stage: one backbone variant x benchmark x seed, trained then evaluated."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch

from muppet_core.artifacts.stage import StageOutput, run_cached
from muppet_core.artifacts.store import ArtifactStore, code_version
from muppet_core.config import FinetuneConfig
from muppet_core.data.encoding import encode
from muppet_core.data.prepare import load_split
from muppet_core.data.splits import subsample
from muppet_core.errors import first_line
from muppet_core.evaluation.evaluate import evaluate
from muppet_core.evaluation.results import ResultRecord
from muppet_core.models.backbone import load_encoder
from muppet_core.models.multitask import build_multitask_model, head_name
from muppet_core.tasks.catalog import get_task
from muppet_core.training.callbacks import LossLogger, ProgressBar
from muppet_core.training.loop import LoopSettings, TaskStream, train

log = logging.getLogger(__name__)
STAGE = "finetune"
# A failed run is recorded here, outside the content-addressed artifacts, so a re-run retries it.
FAILED_STAGE = "finetune-failed"
CODE = (
    "muppet_core.data.encoding",
    "muppet_core.evaluation",
    "muppet_core.models",
    "muppet_core.training.callbacks",
    "muppet_core.training.checkpoint",
    "muppet_core.training.engine",
    "muppet_core.training.finetune",
    "muppet_core.training.loop",
    "muppet_core.training.sampling",
)
# Settings that decide a single run's outcome (the rest only shape the fan-out).
RUN_SETTINGS = {"learning_rate", "epochs", "batch_size", "warmup_ratio", "weight_decay", "max_length", "max_train_examples", "max_eval_examples"}


def finetune(
    benchmark: str, encoder_path: str, data_dir: Path, config: FinetuneConfig, seed: int, identity: dict
) -> ResultRecord:
    """Fine-tune a fresh head (and the encoder) on the benchmark's train split; evaluate on validation.

    Args:
        benchmark: catalog name.
        encoder_path: directory of the variant's encoder.
        data_dir: the benchmark's normalized splits.
        config: fine-tuning settings.
        seed: seed of head initialisation, data order and dropout.
        identity: pipeline, variant and variant_key for the result record.
    """
    started = time.perf_counter()
    spec = get_task(benchmark)
    torch.manual_seed(seed)
    encoder, tokenizer = load_encoder(encoder_path)
    model = build_multitask_model(encoder, [spec])
    train_records = subsample(load_split(data_dir, spec.family, "train"), config.max_train_examples, seed)
    eval_records = subsample(load_split(data_dir, spec.family, "validation"), config.max_eval_examples, 0)
    train_features, _ = encode(spec.family, train_records, tokenizer, config.max_length)
    eval_features, _ = encode(spec.family, eval_records, tokenizer, config.max_length)
    stream = TaskStream(spec.family, head_name(spec), train_features, 1.0)
    settings = LoopSettings(
        steps=max(1, math.ceil(config.epochs * len(train_features) / config.batch_size)),
        tasks_per_step=1,
        micro_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_ratio=config.warmup_ratio,
        weight_decay=config.weight_decay,
        loss_scaling=False,
        seed=seed,
    )
    label = f"{identity['variant']}/{benchmark}/seed{seed}"
    summary = train(model, {benchmark: stream}, settings, tokenizer.pad_token_id, [ProgressBar(label), LossLogger(label, every=10**9)])
    metrics = evaluate(model, head_name(spec), spec, eval_features, tokenizer.pad_token_id)
    log.info("%s validation: %s", label, ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    return ResultRecord(
        **identity,
        benchmark=benchmark,
        seed=seed,
        learning_rate=config.learning_rate,
        metrics=metrics,
        main_metric=spec.metric,
        train_examples=len(train_features),
        examples_seen=int(summary["examples_seen"]),
        eval_examples=len(eval_features),
        wall_seconds=round(time.perf_counter() - started, 2),
        code_version=code_version(*CODE),
    )


def finetune_stage(
    pipeline: str,
    variant: str,
    variant_key: str,
    encoder_path: str,
    benchmark: str,
    data: StageOutput,
    config: FinetuneConfig,
    seed: int,
    store: ArtifactStore,
) -> StageOutput:
    """One fine-tune through the store; the key hashes pipeline, variant, data, run settings, seed and code.

    A run that raises returns a ``finetune-failed`` output whose record says why; nothing is
    published under the key, so the next run of the pipeline tries it again.
    """
    key = store.key(
        STAGE,
        pipeline=pipeline,
        variant=variant,
        variant_key=variant_key,
        data=data.key,
        benchmark=benchmark,
        config=config.model_dump(include=RUN_SETTINGS),
        seed=seed,
        code=code_version(*CODE),
    )
    identity = {"pipeline": pipeline, "variant": variant, "variant_key": variant_key}

    def build(out: Path) -> dict:
        record = finetune(benchmark, encoder_path, store.fetch("data", data.key), config, seed, identity)
        (out / "record.json").write_text(record.model_dump_json(indent=1))
        return {"benchmark": benchmark, "variant": variant, "seed": seed}

    name = f"{variant}/{benchmark}/seed{seed}"
    started = time.perf_counter()
    try:
        return run_cached(store, STAGE, name, key, build)
    except Exception as exc:  # one failed run must not stop the fan-out: it becomes a failure record
        log.exception("fine-tune %s failed", name)
        record = ResultRecord(
            **identity, benchmark=benchmark, seed=seed, learning_rate=config.learning_rate, metrics={},
            main_metric=get_task(benchmark).metric, train_examples=None, examples_seen=None, eval_examples=None,
            wall_seconds=round(time.perf_counter() - started, 2), code_version=code_version(*CODE),
            status="failed", error=f"{type(exc).__name__}: {first_line(exc)}" if str(exc).strip() else type(exc).__name__,
        )
        uri = store.write_text(failure_path(key), record.model_dump_json(indent=1))
        return StageOutput(FAILED_STAGE, name, key, uri, False)


def failure_path(key: str) -> str:
    """Where the failure record of the fine-tune ``key`` lives: a named file, never a cached artifact."""
    return f"failures/{STAGE}/{key}.json"


def read_result(store: ArtifactStore, output: StageOutput) -> ResultRecord:
    """The result record of a fine-tune: its metrics, or why it failed."""
    if output.stage == FAILED_STAGE:
        return ResultRecord.model_validate_json(store.read_text(failure_path(output.key)))
    return ResultRecord.model_validate(store.read_json(STAGE, output.key))
