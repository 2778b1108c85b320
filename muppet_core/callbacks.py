"""The callback protocol of the training loop and of the stages that train, and the spec that names a
callback to build.

Besides the callbacks the stages install (``muppet_core.training.callbacks``), a stage can be given
``CallbackSpec``s (``"module:Class"`` and its options). A loop callback is built where the loop runs,
in the worker processes too; the fault tests install their kill switch that way, and nothing else in
the code knows of it. A stage callback (``stage=True``, the experiment tracker) is built where the
stage runs, when it computes (``computing``): it hears the stage start and end, and hands the loop
callbacks of its own (which log each update).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from muppet_core.registry import resolve


class Callback:
    """Hooks called by the training loop; override what you need."""

    def on_train_start(self, total_steps: int, start_step: int = 0) -> None: ...

    def on_micro_batch(self, step: int, task: str, indices: list[int]) -> None:
        """Before each of this rank's micro-batches of update ``step``: its task and the indices of its examples."""

    def on_backward(self, step: int) -> None:
        """After each micro-batch's backward pass of update ``step`` (0-based), before the engine steps."""

    def on_step_end(self, step: int, logs: dict) -> bool | None:
        """Return True to stop training after this update."""

    def on_train_end(self, summary: dict) -> None: ...

    def state(self) -> dict:
        """What a resumed run needs to continue as if never stopped (JSON values and tensors); checkpointed."""
        return {}

    def restore(self, state: dict) -> None:
        """Continue from a ``state()`` read back from a checkpoint."""

    def on_stage_start(self, name: str, key: str, settings: dict[str, Any]) -> None:
        """Before a stage computes (never for one taken from the store): what it makes, its content
        key and the settings that decide it."""

    def loop_callbacks(self) -> list[CallbackSpec]:
        """Callbacks the stage's training loop installs for this one, wherever it runs (after ``on_stage_start``)."""
        return []

    def on_stage_end(self, metrics: dict[str, float], error: BaseException | None = None) -> None:
        """After the stage computed: its final values; ``error``: why it failed instead."""


class CallbackSpec(BaseModel):
    """A callback to build where the loop runs: ``target`` is ``"module:Class"``, called with ``options``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str
    """The callback class (or factory), as ``"module:attr"``."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of the call."""
    rank_zero: bool = False
    """Build it on rank 0 only (what reports progress or metrics once per run)."""
    stage: bool = False
    """A stage callback: built where the stage runs, when it computes, never in the loop (see ``computing``)."""


def build_callbacks(specs: list[CallbackSpec] | tuple[CallbackSpec, ...], rank: int = 0) -> list[Callback]:
    """The loop callbacks that ``specs`` name for this rank, built in order (stage callbacks are not)."""
    return [resolve(spec.target)(**spec.options) for spec in specs if not spec.stage and (rank == 0 or not spec.rank_zero)]


def build_stage_callbacks(specs: list[CallbackSpec] | tuple[CallbackSpec, ...]) -> list[Callback]:
    """The stage callbacks that ``specs`` name, built in order."""
    return [resolve(spec.target)(**spec.options) for spec in specs if spec.stage]


class StageCallbacks:
    """The callbacks of a stage that computes: ``loop`` is what its training loop installs (the loop
    callbacks it was given and those of its stage callbacks); ``metrics`` its final values, which the
    stage fills in for ``on_stage_end``."""

    def __init__(self, loop: list[CallbackSpec]):
        self.loop = loop
        self.metrics: dict[str, float] = {}


@contextlib.contextmanager
def computing(specs: list[CallbackSpec] | tuple[CallbackSpec, ...], name: str, key: str, settings: dict[str, Any]) -> Iterator[StageCallbacks]:
    """Run the block as the stage ``name`` computing ``key``: its stage callbacks are built and told it
    starts, and at the end its final metrics (or the error it raised)."""
    callbacks = build_stage_callbacks(specs)
    hooks = StageCallbacks([spec for spec in specs if not spec.stage])
    for callback in callbacks:
        callback.on_stage_start(name, key, settings)
        hooks.loop += callback.loop_callbacks()
    try:
        yield hooks
    except BaseException as exc:
        for callback in callbacks:
            callback.on_stage_end({}, exc)
        raise
    for callback in callbacks:
        callback.on_stage_end(hooks.metrics)
