"""The training loop's callback protocol, and the spec that names a callback to build.

Besides the callbacks the stages install (``muppet_core.training.callbacks``), a stage can be given
``CallbackSpec``s (``"module:Class"`` and its options): they are built where the loop runs, in the
worker processes too. The experiment tracker feeds on them; the fault tests install their kill
switch that way, and nothing else in the code knows of it.
"""

from __future__ import annotations

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


class CallbackSpec(BaseModel):
    """A callback to build where the loop runs: ``target`` is ``"module:Class"``, called with ``options``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str
    """The callback class (or factory), as ``"module:attr"``."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of the call."""
    rank_zero: bool = False
    """Build it on rank 0 only (what reports progress or metrics once per run)."""


def build_callbacks(specs: list[CallbackSpec] | tuple[CallbackSpec, ...], rank: int = 0) -> list[Callback]:
    """The callbacks that ``specs`` name for this rank, built in order."""
    return [resolve(spec.target)(**spec.options) for spec in specs if rank == 0 or not spec.rank_zero]
