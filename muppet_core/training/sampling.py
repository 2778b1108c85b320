"""Which task each micro-batch comes from, and which examples it holds.

The task order is a pure function of the seed and the global step: every update draws
``tasks_per_step`` micro-batch tasks for the whole data-parallel world, and rank ``r`` of ``w``
takes draws ``r, r + w, ...``. A run restarted at any step, or spread over any number of ranks
with the same global batch, therefore trains on the same tasks in the same order.
"""

from __future__ import annotations

import numpy as np

SCHEDULES = ("heterogeneous", "batch_homogeneous", "dataset_homogeneous")
SAMPLINGS = ("proportional", "uniform", "temperature")


class TaskSchedule:
    """Draws the tasks of every update.

    Args:
        sizes: training examples per task.
        tasks_per_step: micro-batches per update, over the whole world (the global accumulation).
        sampling: ``proportional`` to dataset size (the paper's default), ``uniform``, or
            ``temperature`` (size ** (1 / temperature), normalised).
        seed: the schedule's seed.
        schedule: ``heterogeneous`` (each micro-batch an independent draw: updates mix tasks),
            ``batch_homogeneous`` (one draw per update: every micro-batch of an update is the same
            task) or ``dataset_homogeneous`` (tasks one after another, each for a share of the
            steps proportional to its sampling weight).
        temperature: the temperature of ``temperature`` sampling.
        total_steps: the run's updates (needed by ``dataset_homogeneous``).
    """

    def __init__(
        self,
        sizes: dict[str, int],
        tasks_per_step: int,
        sampling: str = "proportional",
        seed: int = 0,
        schedule: str = "heterogeneous",
        temperature: float = 1.0,
        total_steps: int = 1,
    ):
        if schedule not in SCHEDULES or sampling not in SAMPLINGS:
            raise ValueError(f"schedule must be one of {SCHEDULES} and sampling one of {SAMPLINGS}")
        self.names = sorted(sizes)
        size = np.array([sizes[n] for n in self.names], dtype=float)
        if size.sum() <= 0:
            raise ValueError("every task is empty")
        weights = {"proportional": size, "uniform": np.ones_like(size), "temperature": size ** (1.0 / temperature)}[sampling]
        self.probs = weights / weights.sum()
        self.tasks_per_step, self.seed, self.schedule = tasks_per_step, seed, schedule
        # dataset_homogeneous: task i owns a contiguous block of steps, in a seeded order.
        order = np.random.default_rng([seed, 2**31 - 1]).permutation(len(self.names))
        self._blocks = np.cumsum(self.probs[order] * total_steps)
        self._block_order = order

    def tasks_for_step(self, step: int) -> list[str]:
        """The tasks of all micro-batches of update ``step``, over the whole world."""
        if self.schedule == "dataset_homogeneous":
            block = min(int(np.searchsorted(self._blocks, step, side="right")), len(self.names) - 1)
            return [self.names[self._block_order[block]]] * self.tasks_per_step
        rng = np.random.default_rng([self.seed, step])
        draws = 1 if self.schedule == "batch_homogeneous" else self.tasks_per_step
        picks = rng.choice(len(self.names), size=draws, p=self.probs)
        if draws == 1:
            picks = np.repeat(picks, self.tasks_per_step)
        return [self.names[i] for i in picks]

    def tasks_for_rank(self, step: int, rank: int, world_size: int) -> list[str]:
        """This rank's share of the update's micro-batch tasks."""
        if self.tasks_per_step % world_size:
            raise ValueError(f"tasks_per_step ({self.tasks_per_step}) must be a multiple of the world size ({world_size})")
        return self.tasks_for_step(step)[rank::world_size]


class BatchStream:
    """Endless micro-batches of one task, reshuffled every epoch with a fixed seed.

    With ``group_by_length``, each epoch's shuffled examples are cut into pools of
    ``pool_batches`` micro-batches, sorted by length inside each pool and batched, and the batches
    are shuffled: dynamic padding then pads little. With ``max_tokens``, a batch also closes when
    its padded size (examples x longest) would pass that budget.

    The position (epoch, batch) is the stream's whole state, for checkpoints.

    Args:
        lengths: the size in tokens of each of the task's encoded examples (its family's ``length``).
        batch_size: examples per micro-batch (the most, with a token budget).
        seed: seed of the shuffles.
        group_by_length: sort by length inside pools.
        max_tokens: token budget per micro-batch (None: none).
        pool_batches: micro-batches per sorting pool.
    """

    def __init__(
        self,
        lengths: list[int],
        batch_size: int,
        seed: int,
        group_by_length: bool = True,
        max_tokens: int | None = None,
        pool_batches: int = 50,
    ):
        self.lengths = list(lengths)
        self.batch_size, self.seed = batch_size, seed
        self.group_by_length, self.max_tokens, self.pool_batches = group_by_length, max_tokens, pool_batches
        self.epoch, self.cursor = 0, 0
        self._batches = self._plan()

    def _plan(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = [int(i) for i in rng.permutation(len(self.lengths))]
        if not self.group_by_length:
            return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        pool = self.batch_size * self.pool_batches
        batches: list[list[int]] = []
        for start in range(0, len(order), pool):
            chunk = sorted(order[start : start + pool], key=lambda i: self.lengths[i])
            batch: list[int] = []
            for i in chunk:  # ascending length: the newcomer is the batch's longest
                over_budget = self.max_tokens and batch and (len(batch) + 1) * self.lengths[i] > self.max_tokens
                full = len(batch) == self.batch_size or over_budget
                if full:
                    batches.append(batch)
                    batch = []
                batch.append(i)
            if batch:
                batches.append(batch)
        return [batches[i] for i in rng.permutation(len(batches))]

    def next_batch(self) -> list[int]:
        """The next micro-batch's example indices."""
        if self.cursor == len(self._batches):
            self.epoch, self.cursor = self.epoch + 1, 0
            self._batches = self._plan()
        batch = self._batches[self.cursor]
        self.cursor += 1
        return batch

    def state(self) -> list[int]:
        """(epoch, batch cursor)."""
        return [self.epoch, self.cursor]

    def restore(self, state: list[int]) -> None:
        """Continue from a saved (epoch, batch cursor)."""
        self.epoch, self.cursor = int(state[0]), int(state[1])
        self._batches = self._plan()
