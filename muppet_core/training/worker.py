"""One rank of a pre-finetuning run: ``python -m muppet_core.training.worker JOB.json``.

The launcher (a plain process, torchrun or deepspeed) starts one worker per rank; each joins the
process group, builds the same model from the same seed, encodes its data and trains its share
of every update. Rank 0 writes checkpoints and, at the end, the exported model.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import torch

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.config import PrefinetuneConfig
from muppet_core.models.backbone import load_encoder
from muppet_core.models.export import export_model
from muppet_core.models.multitask import build_multitask_model
from muppet_core.tasks.catalog import get_task
from muppet_core.training.callbacks import LossLogger, ProgressBar
from muppet_core.training.engine import init_distributed
from muppet_core.training.loop import LoopSettings, train
from muppet_core.training.streams import build_streams


def loop_settings(config: PrefinetuneConfig, checkpoint_dir: str | None) -> LoopSettings:
    """The loop's settings for a pre-finetuning config."""
    return LoopSettings(
        steps=config.steps,
        tasks_per_step=config.tasks_per_step,
        micro_batch_size=config.micro_batch_size,
        learning_rate=config.learning_rate,
        warmup_ratio=config.warmup_ratio,
        weight_decay=config.weight_decay,
        sampling=config.sampling,
        temperature=config.temperature,
        schedule=config.schedule,
        loss_scaling=config.loss_scaling,
        max_grad_norm=config.max_grad_norm,
        group_by_length=config.group_by_length,
        max_tokens_per_batch=config.max_tokens_per_batch,
        r3f_eps=config.r3f_eps,
        r3f_lambda=config.r3f_lambda,
        seed=config.seed,
        engine=config.engine,
        zero_stage=config.zero_stage,
        precision=config.precision,
        deepspeed_config=config.deepspeed_config,
        checkpoint_every=config.checkpoint_every,
        checkpoint_dir=checkpoint_dir,
    )


def run(job: dict) -> dict | None:
    """Train this rank's share; rank 0 exports the model into ``job['out_dir']`` and returns the summary.

    Args:
        job: ``config`` (PrefinetuneConfig as a dict), ``backbone_path``, ``store`` (root URI),
            ``data_keys`` (task -> data artifact key), ``out_dir``, ``checkpoint_dir``, ``trace``
            (optional: a file each rank appends its per-step tasks to).
    """
    config = PrefinetuneConfig.model_validate(job["config"])
    rank, world_size = init_distributed() if config.engine == "deepspeed" or config.launcher != "local" else (0, 1)
    torch.manual_seed(config.seed)
    encoder, tokenizer = load_encoder(job["backbone_path"])
    model = build_multitask_model(encoder, [get_task(t) for t in config.tasks])
    store = ArtifactStore(job["store"])
    data_dirs = {t: store.fetch("data", key) for t, key in job["data_keys"].items()}
    streams, dropped = build_streams(
        config.tasks, data_dirs, tokenizer, config.max_length, config.max_train_examples, config.seed, config.max_target_length
    )
    callbacks = [ProgressBar("pre-finetune"), LossLogger("pre-finetune", every=max(config.steps // 10, 1))] if rank == 0 else []
    summary = train(model, streams, loop_settings(config, job["checkpoint_dir"]), tokenizer.pad_token_id, callbacks, rank, world_size)
    if job.get("trace"):
        with open(f"{job['trace']}.rank{rank}", "w", encoding="utf-8") as fh:
            json.dump({"rank": rank, "world_size": world_size, "order": [h["order"] for h in summary["history"]]}, fh)
    if rank != 0:
        return None
    info = {
        "summary": {k: v for k, v in summary.items() if k != "history"},
        "world_size": world_size,
        "tasks": {t: {"examples": len(s.features), "dropped_by_truncation": dropped[t], "loss_scale": s.loss_scale} for t, s in streams.items()},
    }
    export_model(model, tokenizer, Path(job["out_dir"]), config, info, summary["history"])
    return info


def main() -> int:
    # Libraries speak at WARNING and above; the project's own progress at INFO.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    logging.getLogger("muppet_core").setLevel(logging.INFO)
    with open(sys.argv[1], encoding="utf-8") as fh:
        run(json.load(fh))
    return 0


if __name__ == "__main__":
    sys.exit(main())
