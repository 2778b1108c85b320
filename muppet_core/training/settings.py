"""The loop's settings, and the one place where a pipeline's config becomes them."""

from __future__ import annotations

from dataclasses import dataclass, field

from muppet_core.config import FinetuneConfig, Mixing, Optimization, PrefinetuneConfig

FINETUNE_MIXING = Mixing(loss_scaling=False)
"""A fine-tune trains one task: its loss is not scaled."""


@dataclass(frozen=True)
class LoopSettings:
    """One run of the training loop.

    Args:
        optim: the optimisation settings (a PrefinetuneConfig or FinetuneConfig is one).
        steps: optimizer updates.
        tasks_per_step: micro-batches per update, over the whole world.
        micro_batch_size: examples per micro-batch.
        learning_rate: peak learning rate.
        seed: seed of the task draws and the data order.
        mixing: how tasks are drawn and their losses scaled.
        checkpoint_dir: where the run checkpoints and resumes from (None: no checkpoints).
    """

    optim: Optimization
    steps: int
    tasks_per_step: int
    micro_batch_size: int
    learning_rate: float
    seed: int = 0
    mixing: Mixing = field(default_factory=Mixing)
    checkpoint_dir: str | None = None


def prefinetune_settings(config: PrefinetuneConfig, checkpoint_dir: str | None) -> LoopSettings:
    """The loop's settings of a pre-finetuning run."""
    return LoopSettings(
        optim=config, steps=config.steps, tasks_per_step=config.tasks_per_step, micro_batch_size=config.micro_batch_size,
        learning_rate=config.learning_rate, seed=config.seed, mixing=config, checkpoint_dir=checkpoint_dir,
    )


def finetune_settings(config: FinetuneConfig, steps: int, learning_rate: float, seed: int, checkpoint_dir: str | None) -> LoopSettings:
    """The loop's settings of one fine-tune: one task, ``batch_size`` examples an update, loss unscaled."""
    return LoopSettings(
        optim=config, steps=steps, tasks_per_step=1, micro_batch_size=config.batch_size, learning_rate=learning_rate,
        seed=seed, mixing=FINETUNE_MIXING, checkpoint_dir=checkpoint_dir,
    )
