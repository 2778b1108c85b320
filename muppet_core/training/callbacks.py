"""Training-loop callbacks: progress and logging live here, not in the loop.

Besides those the stages install, a stage can be given ``CallbackSpec``s (``"module:Class"`` and
its options): they are built where the loop runs, in the worker processes too. The fault tests
install their kill switch that way; nothing else in the code knows of it.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from muppet_core.registry import resolve

log = logging.getLogger(__name__)


class Callback:
    """Hooks called by the training loop; override what you need."""

    def on_train_start(self, total_steps: int, start_step: int = 0) -> None: ...

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


class ProgressBar(Callback):
    """A tqdm bar over optimizer updates, with the running loss (on a terminal only).

    Args:
        description: the bar's label.
    """

    def __init__(self, description: str):
        self.description = description
        self.bar = None

    def on_train_start(self, total_steps: int, start_step: int = 0) -> None:
        # disable=None: a bar on a terminal, nothing in captured logs.
        self.bar = tqdm(total=total_steps, initial=start_step, desc=self.description, file=sys.stderr, mininterval=1.0, leave=False, disable=None)

    def on_step_end(self, step: int, logs: dict) -> None:
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{logs['loss']:.3f}", refresh=False)

    def on_train_end(self, summary: dict) -> None:
        self.bar.close()


class ProgressFile(Callback):
    """Writes ``{"step": s, "total": n}`` to ``path`` (atomically) at the start, at most every
    ``every_seconds`` and at the end, for a process that follows the run from outside.

    Args:
        path: the file to write.
        every_seconds: shortest interval between writes.
    """

    def __init__(self, path: str, every_seconds: float = 1.0):
        self.path, self.every_seconds = Path(path), every_seconds
        self.total, self.written = 0, float("-inf")

    def _write(self, step: int) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"step": step, "total": self.total}))
        tmp.replace(self.path)
        self.written = time.monotonic()

    def on_train_start(self, total_steps: int, start_step: int = 0) -> None:
        self.total = total_steps
        self._write(start_step)

    def on_step_end(self, step: int, logs: dict) -> None:
        if time.monotonic() - self.written >= self.every_seconds:
            self._write(step + 1)

    def on_train_end(self, summary: dict) -> None:
        self._write(summary["steps"])  # the history holds a resumed run's earlier updates too


class LossLogger(Callback):
    """Logs the mean loss, the loss of each task and the examples per second every ``every`` updates.

    Args:
        description: prefix of each line.
        every: updates between lines.
    """

    def __init__(self, description: str, every: int = 50):
        self.description, self.every = description, every
        self.window: list[dict] = []
        self.tick = time.perf_counter()

    def on_train_start(self, total_steps: int, start_step: int = 0) -> None:
        self.tick = time.perf_counter()
        if start_step:
            log.info("%s resumed from the checkpoint at step %d of %d", self.description, start_step, total_steps)

    def on_step_end(self, step: int, logs: dict) -> None:
        self.window.append(logs)
        if (step + 1) % self.every:
            return
        per_task: dict[str, list[float]] = {}
        for entry in self.window:
            for task, loss in entry["tasks"].items():
                per_task.setdefault(task, []).append(loss)
        mean = sum(e["loss"] for e in self.window) / len(self.window)
        tasks = ", ".join(f"{t} {sum(v) / len(v):.3f}" for t, v in sorted(per_task.items()))
        elapsed = time.perf_counter() - self.tick
        rate = sum(e["examples"] for e in self.window) / elapsed
        log.info("%s step %d: loss %.4f (%.1f examples/s) | %s", self.description, step + 1, mean, rate, tasks)
        self.window.clear()
        self.tick = time.perf_counter()

    def on_train_end(self, summary: dict) -> None:
        log.info(
            "%s done: %d updates, %d examples, final loss %.4f, %.1f examples/s, padding efficiency %.3f",
            self.description, summary["steps"], summary["examples_seen"], summary["final_loss"],
            summary["examples_per_second"], summary["padding_efficiency"],
        )


class EarlyStopping(Callback):
    """Scores the model every ``every`` updates, remembers the best weights, and stops after
    ``patience`` scores without improvement; ``keep_best`` then puts the best weights back.

    Args:
        model: the model being trained.
        score: returns the validation score, higher is better.
        every: updates between scores.
        patience: scores without improvement before stopping.
    """

    def __init__(self, model, score: Callable[[], float], every: int, patience: int):
        self.model, self.score, self.every, self.patience = model, score, every, patience
        self.best, self.best_state, self.misses, self.scores = float("-inf"), None, 0, []

    def _check(self, step: int) -> bool:
        value = self.score()
        self.scores.append((step, value))
        if value > self.best:
            self.best, self.misses = value, 0
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            self.misses += 1
        return self.misses >= self.patience

    def on_step_end(self, step: int, logs: dict) -> bool:
        if (step + 1) % self.every:
            return False
        stop = self._check(step + 1)
        if stop:
            log.info("early stopping after update %d: best validation score %.4f", step + 1, self.best)
        return stop

    def state(self) -> dict:
        return {"best": self.best, "best_state": self.best_state, "misses": self.misses, "scores": self.scores}

    def restore(self, state: dict) -> None:
        self.best, self.best_state, self.misses = state["best"], state["best_state"], state["misses"]
        self.scores = [tuple(s) for s in state["scores"]]

    def keep_best(self) -> None:
        """Score the final weights too, then load the best weights seen."""
        self._check(-1)
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
