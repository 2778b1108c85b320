"""Heterogeneous batches: which task each micro-batch comes from, and which examples it holds.

The task order is a pure function of the seed and the global step, so a run restarted at any
step, or spread over any number of ranks with the same global batch, draws the same tasks.
"""

from __future__ import annotations

import numpy as np


class TaskSchedule:
    """Draws ``tasks_per_step`` tasks for every optimizer update.

    Args:
        sizes: training examples per task.
        tasks_per_step: micro-batches accumulated per update, each from an independent draw.
        sampling: ``proportional`` (to dataset size, the paper's default) or ``uniform``.
        seed: the schedule's seed.
    """

    def __init__(self, sizes: dict[str, int], tasks_per_step: int, sampling: str, seed: int):
        self.names = sorted(sizes)
        weights = np.array([sizes[n] if sampling == "proportional" else 1 for n in self.names], dtype=float)
        if weights.sum() <= 0:
            raise ValueError("every task is empty")
        self.probs = weights / weights.sum()
        self.tasks_per_step = tasks_per_step
        self.seed = seed

    def tasks_for_step(self, step: int) -> list[str]:
        """The tasks of the micro-batches accumulated at ``step``."""
        rng = np.random.default_rng([self.seed, step])
        picks = rng.choice(len(self.names), size=self.tasks_per_step, p=self.probs)
        return [self.names[i] for i in picks]


class ExampleStream:
    """Endless micro-batches of one task's examples, reshuffled every epoch with a fixed seed.

    Args:
        size: number of examples.
        seed: seed of the shuffles.
    """

    def __init__(self, size: int, seed: int):
        self.size, self.seed = size, seed
        self.epoch, self.cursor = 0, 0
        self._order = self._shuffle()

    def _shuffle(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.size)

    def take(self, n: int) -> list[int]:
        """The next ``n`` example indices."""
        out: list[int] = []
        while len(out) < n:
            if self.cursor == self.size:
                self.epoch, self.cursor = self.epoch + 1, 0
                self._order = self._shuffle()
            k = min(n - len(out), self.size - self.cursor)
            out.extend(int(i) for i in self._order[self.cursor : self.cursor + k])
            self.cursor += k
        return out
