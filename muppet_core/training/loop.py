"""The one training loop, shared by pre-finetuning and fine-tuning.

Each optimizer update accumulates the gradients of ``tasks_per_step`` micro-batches, each from
a task drawn by the TaskSchedule (heterogeneous batches); each task's loss is scaled by its
1/log n(i) factor when loss scaling is on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from transformers import get_linear_schedule_with_warmup

from muppet_core.data.encoding import collate
from muppet_core.models.losses import family_loss, scaled_loss
from muppet_core.models.multitask import MultiTaskModel
from muppet_core.training.callbacks import Callback
from muppet_core.training.sampling import ExampleStream, TaskSchedule


@dataclass
class TaskStream:
    """One task's training examples as the loop sees them."""

    family: str
    head: str
    features: list[dict[str, Any]]
    loss_scale: float


@dataclass(frozen=True)
class LoopSettings:
    """Optimisation settings of one run."""

    steps: int
    tasks_per_step: int
    micro_batch_size: int
    learning_rate: float
    warmup_ratio: float
    weight_decay: float
    sampling: str = "proportional"
    loss_scaling: bool = True
    max_grad_norm: float = 1.0
    seed: int = 0


def _optimizer(model: torch.nn.Module, settings: LoopSettings) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 else decay).append(param)
    groups = [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=settings.learning_rate)


def train(
    model: MultiTaskModel,
    streams: dict[str, TaskStream],
    settings: LoopSettings,
    pad_id: int,
    callbacks: list[Callback] = (),
) -> dict[str, float]:
    """Train ``model`` in place for ``settings.steps`` updates.

    Returns:
        A summary: updates, examples seen, final mean loss and wall time.
    """
    model.train()
    schedule = TaskSchedule({n: len(s.features) for n, s in streams.items()}, settings.tasks_per_step, settings.sampling, settings.seed)
    examples = {n: ExampleStream(len(s.features), settings.seed + i) for i, (n, s) in enumerate(sorted(streams.items()))}
    optimizer = _optimizer(model, settings)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(settings.warmup_ratio * settings.steps), settings.steps)
    for cb in callbacks:
        cb.on_train_start(settings.steps)
    seen, started, recent = 0, time.perf_counter(), []
    for step in range(settings.steps):
        total = 0.0
        for name in schedule.tasks_for_step(step):
            stream = streams[name]
            batch = collate(stream.family, [stream.features[i] for i in examples[name].take(settings.micro_batch_size)], pad_id)
            logits = model(stream.head, stream.family, batch)
            loss = scaled_loss(family_loss(stream.family, logits, batch["labels"]), stream.loss_scale, settings.loss_scaling)
            (loss / settings.tasks_per_step).backward()
            total += loss.item() / settings.tasks_per_step
            seen += len(batch["labels"])
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        recent = (recent + [total])[-20:]
        for cb in callbacks:
            cb.on_step_end(step, {"loss": total})
    summary = {
        "steps": float(settings.steps),
        "examples_seen": float(seen),
        "final_loss": sum(recent) / max(len(recent), 1),
        "wall_seconds": time.perf_counter() - started,
    }
    for cb in callbacks:
        cb.on_train_end(summary)
    return summary
