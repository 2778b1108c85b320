"""The callbacks the stages install: progress, loss logging, early stopping and the profiler live
here, not in the loop (the protocol they follow is ``muppet_core.callbacks``)."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from muppet_core.callbacks import Callback

log = logging.getLogger(__name__)


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


class Profiler(Callback):
    """Profiles the training loop's operators (torch.profiler, CPU) from the first update to the
    last, and writes the ``top`` costliest by self CPU time to ``path`` as JSON: a list of
    ``{"op", "self_ms", "share", "calls"}``, ``share`` being the operator's part of all the time profiled.

    Args:
        path: where the JSON goes.
        top: operators written.
    """

    def __init__(self, path: str, top: int = 15):
        self.path, self.top, self.profiler = path, top, None

    def on_train_start(self, total_steps: int, start_step: int = 0) -> None:
        from torch.profiler import ProfilerActivity, profile

        self.profiler = profile(activities=[ProfilerActivity.CPU])
        self.profiler.__enter__()

    def on_train_end(self, summary: dict) -> None:
        self.profiler.__exit__(None, None, None)
        events = sorted(self.profiler.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events) or 1
        costs = [
            {"op": e.key, "self_ms": round(e.self_cpu_time_total / 1000, 1), "share": round(e.self_cpu_time_total / total, 4), "calls": e.count}
            for e in events[: self.top]
        ]
        Path(self.path).write_text(json.dumps(costs, indent=1))
