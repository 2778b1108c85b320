"""The one training loop, shared by pre-finetuning and fine-tuning.

Each optimizer update accumulates the gradients of the micro-batches the TaskSchedule assigns
to this rank, each from its drawn task (heterogeneous batches); each task's loss is scaled by its
1/log n(i) factor when loss scaling is on. Checkpoints every ``checkpoint_every`` updates hold
everything needed to resume exactly where a killed run stopped: a resumed run ends with the same
weights, history and summary counts as one never stopped. Progress, logging, early stopping (and,
in the fault tests, a kill in the middle of an update) are callbacks.
"""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from transformers import get_linear_schedule_with_warmup

from muppet_core.callbacks import Callback
from muppet_core.errors import DivergedError
from muppet_core.families.base import Family
from muppet_core.models import devices
from muppet_core.models.multitask import MultiTaskModel
from muppet_core.stopping import check_stop
from muppet_core.training.checkpoint import load_checkpoint, save_checkpoint
from muppet_core.training.engine import DeepSpeedEngine, TorchEngine, deepspeed_config, flattens_groups
from muppet_core.training.sampling import BatchStream, TaskSchedule
from muppet_core.training.settings import LoopSettings


@dataclass
class TaskStream:
    """One task's training examples as the loop sees them, with the family that collates them and
    gives their loss."""

    family: Family
    head: str
    features: list[dict[str, Any]]
    loss_scale: float


def _owner(name: str) -> str:
    """The part of the model a parameter belongs to, by its first two name parts: a head
    (``heads.rte``), or a part of the encoder (``encoder.embeddings``, ``encoder.encoder``, ``encoder.pooler``)."""
    return ".".join(name.split(".")[:2])


def _optimizer(model: torch.nn.Module, settings: LoopSettings, per_owner: bool = False) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices only: two groups, or (``per_owner``) two for each part of the
    model (see ``_owner``), so that an optimizer which flattens each group into one tensor can leave a
    part that got no gradient alone (see ``engine.DeepSpeedEngine``)."""
    groups: dict[tuple[str, bool], list[torch.nn.Parameter]] = {}
    for name, param in sorted(model.named_parameters()):
        if param.requires_grad:
            groups.setdefault((_owner(name) if per_owner else "", param.ndim < 2), []).append(param)
    order = sorted(groups, key=lambda k: (k[1], k[0]))  # decayed groups first, as ever
    groups = [{"params": groups[k], "weight_decay": 0.0 if k[1] else settings.optim.weight_decay} for k in order]
    # The fused kernel: one pass over each parameter and its two moments instead of eight.
    return torch.optim.AdamW(groups, lr=settings.learning_rate, fused=settings.optim.optimizer == "adamw_torch_fused")


def build_engine(model: torch.nn.Module, settings: LoopSettings, accumulation: int, world_size: int, device: torch.device | None = None):
    """The engine that owns optimizer and scheduler for this run (``model`` already on ``device``, by
    default the rank's device)."""
    device = device or devices.rank_device(settings.optim.device)
    optim = settings.optim
    if optim.engine == "deepspeed":
        config = deepspeed_config(
            settings.micro_batch_size, accumulation, world_size, optim.max_grad_norm,
            optim.zero_stage, optim.precision, optim.deepspeed_config,
        )
        optimizer = _optimizer(model, settings, per_owner=flattens_groups(config))
        scheduler = get_linear_schedule_with_warmup(optimizer, int(optim.warmup_ratio * settings.steps), settings.steps)
        engine = DeepSpeedEngine(model, optimizer, scheduler, config)
        placed = next(engine.module.parameters()).device
        if placed != device:  # DeepSpeed places the model on its accelerator's device itself
            raise devices.DeviceError(f"DeepSpeed put the model on {placed}, not on this rank's device {device}: unset `device` or match it")
        return engine
    optimizer = _optimizer(model, settings)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(optim.warmup_ratio * settings.steps), settings.steps)
    return TorchEngine(model, optimizer, scheduler, accumulation, optim.max_grad_norm, optim.precision, device)


def scaled_loss(family: Family, logits: Any, labels: torch.Tensor, scale: float, enabled: bool) -> torch.Tensor:
    """The family's loss with a task's 1/log n(i) factor when loss scaling is on (see ``Family.scaled_loss``)."""
    return family.scaled_loss(logits, labels, scale if enabled else 1.0)


def padding_efficiency(batch: dict[str, torch.Tensor]) -> tuple[int, int]:
    """(real tokens, computed tokens) of a collated batch."""
    mask = batch["attention_mask"]
    return int(mask.sum()), int(mask.numel())


def _sum_over_ranks(
    seen: collections.Counter, real: int, computed: int, names: list[str], world_size: int, device: torch.device
) -> tuple[collections.Counter, int, int]:
    """One update's counts (examples per task, real and computed tokens) summed over every rank, so
    every rank holds the run's totals (and a checkpoint, written from rank 0's, holds them too)."""
    if world_size == 1 or not torch.distributed.is_initialized():
        return seen, real, computed
    counts = torch.tensor([seen[n] for n in names] + [real, computed], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(counts)
    totals = [int(v) for v in counts.tolist()]
    return collections.Counter({n: v for n, v in zip(names, totals) if v}), totals[-2], totals[-1]


def train(
    model: MultiTaskModel,
    streams: dict[str, TaskStream],
    settings: LoopSettings,
    pad_id: int,
    callbacks: list[Callback] = (),
    rank: int = 0,
    world_size: int = 1,
) -> dict[str, Any]:
    """Train ``model`` in place for ``settings.steps`` updates (resuming from a checkpoint when one exists).

    Returns:
        A summary: updates, examples seen, final mean loss, wall time, padding efficiency,
        examples per task, and the per-step history (loss per task). Examples and tokens are counted
        over every rank; the losses in the history are this rank's.

    Raises:
        DivergedError: a micro-batch's loss is not a finite number (NaN or infinite).
    """
    model.train()
    optim, mixing = settings.optim, settings.mixing
    schedule = TaskSchedule(
        {n: s.family.examples(s.features) for n, s in streams.items()}, settings.tasks_per_step, mixing.sampling,
        settings.seed, mixing.schedule, mixing.temperature, settings.steps,
    )
    accumulation = settings.tasks_per_step // world_size
    device = devices.rank_device(optim.device)
    model.to(device)
    engine = build_engine(model, settings, accumulation, world_size, device)
    batches = {
        name: BatchStream(
            [s.family.length(f) for f in s.features], settings.micro_batch_size, settings.seed + i,
            optim.group_by_length, optim.max_tokens_per_batch,
        )
        for i, (name, s) in enumerate(sorted(streams.items()))
    }
    checkpoint_dir = settings.checkpoint_dir
    resumed = load_checkpoint(checkpoint_dir, engine, rank)
    start, history = 0, []
    seen, real, computed = collections.Counter(), 0, 0
    if resumed:
        loop = resumed["loop"]
        start, history = resumed["step"], loop["history"]
        seen, (real, computed) = collections.Counter(loop["seen"]), loop["tokens"]
        for name, position in loop["positions"].items():
            batches[name].restore(position)
        for cb, state in zip(callbacks, loop["callbacks"]):  # rank 0's callbacks and counters; other ranks report nothing
            cb.restore(state)
    def micro_batches():
        """(step, task, example indices, the streams' positions after the step's draws, whether it is the
        step's last) of every micro-batch of this rank from ``start`` on. Every rank draws all of an update's
        micro-batches, in one global order, and computes its share (draws r, r + w, ...): an update
        consumes the same examples whatever the world size."""
        for step in range(start, settings.steps):
            order = schedule.tasks_for_rank(step, rank, world_size)
            drawn = [batches[name].next_batch() for name in schedule.tasks_for_step(step)][rank::world_size]
            positions = {n: b.state() for n, b in batches.items()}  # what a checkpoint after this step resumes from
            for k, (name, picked) in enumerate(zip(order, drawn, strict=True)):
                yield step, name, picked, positions, k == len(order) - 1

    def collate(micro_batch) -> dict[str, torch.Tensor]:
        _, name, picked, _, _ = micro_batch
        stream = streams[name]
        return stream.family.collate([stream.features[i] for i in picked], pad_id)

    # The next micro-batch (the next update's first, at an update's last) is drawn before this one computes,
    # and with prefetch collated meanwhile; the positions each checkpoint saves are its own update's.
    feed = devices.prefetched(micro_batches(), collate, device, optim.prefetch)
    for cb in callbacks:
        cb.on_train_start(settings.steps, start)
    started = time.perf_counter()
    for step in range(start, settings.steps):
        check_stop()  # a run asked to stop (SIGTERM, Ctrl-C) leaves a fine-tune of its threads here, its last checkpoint kept
        step_losses: list[torch.Tensor] = []
        order: list[str] = []
        step_seen, step_real, step_computed = collections.Counter(), 0, 0
        last = False
        while not last:
            (_, name, picked, positions, last), batch = next(feed)
            order.append(name)
            stream = streams[name]
            family = stream.family
            for cb in callbacks:
                cb.on_micro_batch(step, name, picked)
            with engine.autocast():
                logits = engine(stream.head, family, batch)
                loss = scaled_loss(family, logits, batch["labels"], stream.loss_scale, mixing.loss_scaling)
                if optim.r3f_eps > 0:
                    loss = loss + optim.r3f_lambda * family.r3f(engine.module, stream.head, batch, logits, optim.r3f_eps, optim.r3f_noise)
            engine.backward(loss)
            for cb in callbacks:
                cb.on_backward(step)
            engine.step()
            step_losses.append(loss.detach())
            step_seen[name] += len(batch["labels"])
            r, c = padding_efficiency(batch)
            step_real, step_computed = step_real + r, step_computed + c
        step_seen, step_real, step_computed = _sum_over_ranks(step_seen, step_real, step_computed, sorted(streams), world_size, device)
        seen.update(step_seen)
        real, computed = real + step_real, computed + step_computed
        losses: dict[str, list[float]] = collections.defaultdict(list)
        for name, value in zip(order, torch.stack(step_losses).tolist()):  # one read-out per update
            losses[name].append(value)
            if not math.isfinite(value):
                raise DivergedError(f"the training loss of task '{name}' is {value} at update {step + 1} of {settings.steps}: "
                                    "the run diverged and nothing it trained is scored (lower the learning rate, or check the data)")
        logs = {"step": step + 1, "loss": sum(sum(v) for v in losses.values()) / max(sum(len(v) for v in losses.values()), 1),
                "tasks": {k: sum(v) / len(v) for k, v in losses.items()}, "order": order,
                "examples": sum(step_seen.values())}
        history.append(logs)
        stop = [cb.on_step_end(step, logs) for cb in callbacks]  # every callback sees every update
        if any(stop):
            break  # before any checkpoint: a run resumed after this point redoes these updates and stops here again
        due = optim.checkpoint_every and (step + 1) % optim.checkpoint_every == 0 and step + 1 < settings.steps
        if checkpoint_dir and due:
            loop = {"positions": positions, "history": history, "seen": dict(seen),
                    "tokens": [real, computed], "callbacks": [cb.state() for cb in callbacks]}
            save_checkpoint(checkpoint_dir, step + 1, engine, loop, rank)
    wall = time.perf_counter() - started
    recent = [h["loss"] for h in history[-20:]]
    summary = {
        "steps": len(history),
        "resumed_from_step": start,
        "examples_seen": sum(seen.values()),
        "examples_per_task": dict(seen),
        "final_loss": sum(recent) / max(len(recent), 1),
        "wall_seconds": wall,
        "examples_per_second": sum(seen.values()) / wall if wall else 0.0,
        "padding_efficiency": real / computed if computed else 1.0,
        "tokens_seen": real,
        "history": history,
    }
    for cb in callbacks:
        cb.on_train_end(summary)
    return summary
