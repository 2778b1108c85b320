"""The pre-finetuning stage: a multi-task model trained on the pipeline's task mix."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from muppet_core.artifacts.stage import StageOutput, run_cached
from muppet_core.artifacts.store import ArtifactStore, code_version
from muppet_core.config import PrefinetuneConfig
from muppet_core.data.encoding import encode
from muppet_core.data.prepare import load_split
from muppet_core.data.splits import subsample
from muppet_core.models.backbone import Variant, load_encoder
from muppet_core.models.multitask import build_multitask_model, head_name
from muppet_core.tasks.catalog import get_task
from muppet_core.training.callbacks import LossLogger, ProgressBar
from muppet_core.training.loop import LoopSettings, TaskStream, train

STAGE = "prefinetune"
CODE = ("muppet_core.data.encoding", "muppet_core.models", "muppet_core.training")


def build_streams(tasks: list[str], data_dirs: dict[str, Path], tokenizer, max_length: int, cap: int | None, seed: int):
    """Encoded training streams per task, and how many examples each lost to truncation."""
    streams, dropped = {}, {}
    for task in tasks:
        spec = get_task(task)
        records = subsample(load_split(data_dirs[task], spec.family, "train"), cap, seed)
        features, dropped[task] = encode(spec.family, records, tokenizer, max_length)
        streams[task] = TaskStream(spec.family, head_name(spec), features, spec.loss_scale(max_length))
    return streams, dropped


def prefinetune(config: PrefinetuneConfig, backbone_path: str, data_dirs: dict[str, Path], out_dir: Path) -> dict:
    """Pre-finetune the backbone on ``config.tasks`` and save the model into ``out_dir``."""
    torch.manual_seed(config.seed)
    encoder, tokenizer = load_encoder(backbone_path)
    model = build_multitask_model(encoder, [get_task(t) for t in config.tasks])
    streams, dropped = build_streams(config.tasks, data_dirs, tokenizer, config.max_length, config.max_train_examples, config.seed)
    settings = LoopSettings(
        steps=config.steps,
        tasks_per_step=config.tasks_per_step,
        micro_batch_size=config.micro_batch_size,
        learning_rate=config.learning_rate,
        warmup_ratio=config.warmup_ratio,
        weight_decay=config.weight_decay,
        sampling=config.sampling,
        loss_scaling=config.loss_scaling,
        seed=config.seed,
    )
    callbacks = [ProgressBar("pre-finetune"), LossLogger("pre-finetune", every=max(config.steps // 10, 1))]
    summary = train(model, streams, settings, tokenizer.pad_token_id, callbacks)
    model.save(out_dir, tokenizer)
    info = {
        "summary": summary,
        "tasks": {t: {"examples": len(s.features), "dropped_by_truncation": dropped[t], "loss_scale": s.loss_scale} for t, s in streams.items()},
    }
    (out_dir / "train_summary.json").write_text(json.dumps(info, indent=1))
    return info


def prefinetune_stage(
    config: PrefinetuneConfig, backbone_path: str, backbone_key: str, data: dict[str, StageOutput], store: ArtifactStore
) -> StageOutput:
    """Pre-finetune through the store; the key hashes backbone, data, config and code."""
    key = store.key(
        STAGE,
        backbone=backbone_key,
        data={t: data[t].key for t in config.tasks},
        config=config.model_dump(exclude={"enabled"}),
        code=code_version(*CODE),
    )
    data_dirs = lambda: {t: store.fetch("data", data[t].key) for t in config.tasks}  # noqa: E731
    return run_cached(store, STAGE, "+".join(config.tasks), key, lambda out: prefinetune(config, backbone_path, data_dirs(), out))


def prefinetuned_variant(output: StageOutput, store: ArtifactStore) -> Variant:
    """The pre-finetuned encoder as a variant to fine-tune."""
    return Variant("prefinetuned", output.key, str(store.fetch(STAGE, output.key) / "encoder"))
