"""Training-loop callbacks: progress and logging live here, not in the loop."""

from __future__ import annotations

import logging
import sys

from tqdm.auto import tqdm

log = logging.getLogger(__name__)


class Callback:
    """Hooks called by the training loop; override what you need."""

    def on_train_start(self, total_steps: int) -> None: ...

    def on_step_end(self, step: int, logs: dict[str, float]) -> None: ...

    def on_train_end(self, summary: dict[str, float]) -> None: ...


class ProgressBar(Callback):
    """A tqdm bar over optimizer updates, with the running loss.

    Args:
        description: the bar's label.
    """

    def __init__(self, description: str):
        self.description = description
        self.bar = None

    def on_train_start(self, total_steps: int) -> None:
        # disable=None: a bar on a terminal, nothing in captured logs.
        self.bar = tqdm(total=total_steps, desc=self.description, file=sys.stderr, mininterval=1.0, leave=False, disable=None)

    def on_step_end(self, step: int, logs: dict[str, float]) -> None:
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{logs['loss']:.3f}", refresh=False)

    def on_train_end(self, summary: dict[str, float]) -> None:
        self.bar.close()


class LossLogger(Callback):
    """Logs the mean loss every ``every`` updates.

    Args:
        description: prefix of each line.
        every: updates between lines.
    """

    def __init__(self, description: str, every: int = 50):
        self.description, self.every = description, every
        self.window: list[float] = []

    def on_step_end(self, step: int, logs: dict[str, float]) -> None:
        self.window.append(logs["loss"])
        if (step + 1) % self.every == 0:
            log.info("%s step %d: loss %.4f", self.description, step + 1, sum(self.window) / len(self.window))
            self.window.clear()

    def on_train_end(self, summary: dict[str, float]) -> None:
        log.info("%s done: %s", self.description, ", ".join(f"{k}={v:.4g}" for k, v in summary.items()))
