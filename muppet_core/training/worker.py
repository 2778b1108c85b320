"""One rank of a pre-finetuning run: a ``prefinetune`` job (``python -m muppet_core.training JOB.json``).

The launcher (a plain process, torchrun or deepspeed) starts one worker per rank; each joins the
process group, builds the same model from the same seed, encodes its data and trains its share
of every update. Rank 0 writes checkpoints and, at the end, the exported model.
"""

from __future__ import annotations

import collections
import json
from typing import Literal

import torch

from muppet_core import stages
from muppet_core.artifacts.store import ArtifactStore
from muppet_core.callbacks import Callback, build_callbacks
from muppet_core.config import PrefinetuneConfig
from muppet_core.families.build import build_multitask_model
from muppet_core.models.backbone import default_pooling, load_encoder
from muppet_core.models.sources import resolve_backbone
from muppet_core.tasks.catalog import get_task
from muppet_core.training.callbacks import LossLogger, ProgressBar
from muppet_core.training.engine import init_distributed
from muppet_core.training.export import export_model
from muppet_core.training.jobs import Job
from muppet_core.training.loop import train
from muppet_core.training.settings import prefinetune_settings
from muppet_core.training.streams import build_streams


class PrefinetuneJob(Job):
    """What every rank of a pre-finetuning run is given; its ``callbacks`` are installed by every rank
    besides progress and logging."""

    kind: Literal["prefinetune"] = "prefinetune"
    config: PrefinetuneConfig
    """The pre-finetuning settings."""
    backbone_path: str
    """The base encoder: a local directory, or (over several nodes) the backbone as configured, which each node resolves."""
    data_keys: dict[str, str]
    """Task -> key of its data artifact."""
    out_dir: str
    """Where rank 0 exports the model: a local folder, or a URI in the store (over several nodes)."""
    checkpoint_dir: str
    """Where the run checkpoints and resumes from: a local folder or a URI in the store."""
    trace: str | None = None
    """A file each rank writes its per-step tasks and examples to (``<trace>.rank<r>``), for tests."""

    def execute(self) -> dict | None:
        """Train this rank's share; rank 0 exports the model into ``out_dir`` and returns the summary."""
        return train_rank(self)


class ExampleTrace(Callback):
    """Records the task and example indices of every micro-batch this rank computes, per update."""

    def __init__(self):
        self.examples: dict[int, list] = collections.defaultdict(list)

    def on_micro_batch(self, step: int, task: str, indices: list[int]) -> None:
        self.examples[step].append([task, [int(i) for i in indices]])


def train_rank(job: PrefinetuneJob) -> dict | None:
    """Train this rank's share of ``job``; rank 0 exports the model into ``job.out_dir`` and returns the summary."""
    config = job.config
    rank, world_size = init_distributed() if config.engine == "deepspeed" or config.launcher != "local" else (0, 1)
    torch.manual_seed(config.seed)
    store = job.open_store()
    backbone = resolve_backbone(job.backbone_path, store.cache_dir)
    encoder, tokenizer = load_encoder(backbone)
    model = build_multitask_model(encoder, [get_task(t) for t in config.tasks], config.pooling or default_pooling(backbone))
    data_dirs = {t: store.fetch(stages.DATA, key) for t, key in job.data_keys.items()}
    streams, dropped = build_streams(
        config.tasks, data_dirs, tokenizer, config.max_length, config.max_train_examples, config.seed, config.max_target_length
    )
    callbacks = [ProgressBar("pre-finetune"), LossLogger("pre-finetune", every=max(config.steps // 10, 1))] if rank == 0 else []
    callbacks += build_callbacks(job.callbacks, rank)
    trace = ExampleTrace()
    if job.trace:
        callbacks.append(trace)
    summary = train(model, streams, prefinetune_settings(config, job.checkpoint_dir), tokenizer.pad_token_id, callbacks, rank, world_size)
    if job.trace:
        with open(f"{job.trace}.rank{rank}", "w", encoding="utf-8") as fh:
            json.dump({"rank": rank, "world_size": world_size, "order": [h["order"] for h in summary["history"]],
                       "examples": {str(k): v for k, v in trace.examples.items()}}, fh)
    if rank != 0:
        return None
    info = {
        "summary": {k: v for k, v in summary.items() if k != "history"},
        "world_size": world_size,
        "tasks": {t: {"examples": s.family.examples(s.features), "dropped_by_truncation": dropped[t], "loss_scale": s.loss_scale} for t, s in streams.items()},
    }
    with ArtifactStore(job.out_dir).staged("") as folder:  # in place in a local folder, else uploaded at the end
        export_model(model, tokenizer, folder, config, info, summary["history"], backbone)
    return info
