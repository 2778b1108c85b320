"""The training loop computes, bit for bit, what a bare PyTorch loop over the same micro-batches computes.

The bare loop below is the textbook one: collate, forward, scaled loss, backward of loss /
accumulation, ``torch.nn.utils.clip_grad_norm_``, AdamW (fused), the linear schedule. The loop's
shortcuts (no clipping pass when the factor is 1, one loss read-out per update) must leave every
loss and every weight exactly as it is there, whether clipping acts on every update or on none.
"""

from __future__ import annotations

import pytest
import torch
from transformers import get_linear_schedule_with_warmup

from muppet_core.config import PrefinetuneConfig
from muppet_core.families.build import build_multitask_model
from muppet_core.models.backbone import load_encoder
from muppet_core.tasks.catalog import get_task
from muppet_core.training.engine import clip_gradients
from muppet_core.training.loop import train
from muppet_core.training.sampling import BatchStream, TaskSchedule
from muppet_core.training.settings import prefinetune_settings
from muppet_core.training.streams import build_streams

TASKS = ["rotten_tomatoes", "commonsenseqa"]  # two families, two loss scales


@pytest.fixture(scope="module")
def streams(store_with_data, tiny_backbone):
    store, keys = store_with_data
    _, tokenizer = load_encoder(tiny_backbone)
    return build_streams(TASKS, {t: store.fetch("data", keys[t]) for t in TASKS}, tokenizer, 48, 64, 0)[0], tokenizer.pad_token_id


def _model(backbone: str):
    torch.manual_seed(0)
    encoder, _ = load_encoder(backbone)
    return build_multitask_model(encoder, [get_task(t) for t in TASKS])


def _bare(model, streams, config: PrefinetuneConfig, pad_id: int) -> tuple[list[dict[str, list[float]]], list[float]]:
    """The updates of ``config`` in a plain loop: each update's micro-batch losses by task, and its gradient norm."""
    model.train()
    decay = [p for _, p in sorted(model.named_parameters()) if p.ndim >= 2]
    no_decay = [p for _, p in sorted(model.named_parameters()) if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=config.learning_rate, fused=True)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * config.steps), config.steps)
    schedule = TaskSchedule({n: s.family.examples(s.features) for n, s in streams.items()}, config.tasks_per_step, config.sampling, config.seed,
                            config.schedule, config.temperature, config.steps)
    batches = {n: BatchStream([s.family.length(f) for f in s.features], config.micro_batch_size, config.seed + i, config.group_by_length)
               for i, (n, s) in enumerate(sorted(streams.items()))}
    losses, norms = [], []
    for step in range(config.steps):
        step_losses: dict[str, list[float]] = {}
        for name in schedule.tasks_for_step(step):
            s = streams[name]
            batch = s.family.collate([s.features[i] for i in batches[name].next_batch()], pad_id)
            loss = s.family.scaled_loss(model(s.head, s.family, batch), batch["labels"], s.loss_scale)  # n(i) per example for multiple choice
            (loss / config.tasks_per_step).backward()
            step_losses.setdefault(name, []).append(loss.item())
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(step_losses)
    return losses, norms


@pytest.mark.parametrize("max_grad_norm", [1e-3, 1e3], ids=["clips-every-update", "never-clips"])
def test_the_loop_is_bit_identical_to_a_bare_loop(streams, tiny_backbone, max_grad_norm):
    features, pad_id = streams
    config = PrefinetuneConfig(tasks=TASKS, steps=5, micro_batch_size=4, tasks_per_step=3, max_length=48, max_grad_norm=max_grad_norm,
                               checkpoint_every=None, engine="torch")
    model = _model(tiny_backbone)
    summary = train(model, features, prefinetune_settings(config, None), pad_id)
    reference = _model(tiny_backbone)
    losses, norms = _bare(reference, features, config, pad_id)
    # Both branches of the clipping shortcut are taken: every norm above the bound, or every one below.
    assert all(n > max_grad_norm for n in norms) if max_grad_norm < 1 else all(n < max_grad_norm for n in norms), norms
    assert [h["tasks"] for h in summary["history"]] == [{k: sum(v) / len(v) for k, v in step.items()} for step in losses]
    assert set(summary["examples_per_task"]) == set(TASKS) and summary["steps"] == 5
    weights = dict(reference.named_parameters())
    assert all(torch.equal(p, weights[n]) for n, p in model.named_parameters())


def test_clip_gradients_matches_torch_clip_grad_norm_bit_for_bit():
    torch.manual_seed(0)
    for scale in (1e-4, 1.0, 1e4):  # within the bound, around it, far above it
        grads = [torch.randn(7, 5) * scale, torch.randn(3) * scale]
        mine = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
        theirs = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
        for p, q, g in zip(mine, theirs, grads):
            p.grad, q.grad = g.clone(), g.clone()
        assert torch.equal(clip_gradients(mine, 1.0), torch.nn.utils.clip_grad_norm_(theirs, 1.0))
        assert all(torch.equal(p.grad, q.grad) for p, q in zip(mine, theirs))
