"""Heterogeneous batches: the task order is a pure function of seed and step."""

import collections

from muppet_core.training.sampling import ExampleStream, TaskSchedule


def test_task_order_depends_only_on_seed_and_step():
    a = TaskSchedule({"x": 100, "y": 10, "z": 1}, 4, "proportional", seed=7)
    b = TaskSchedule({"z": 1, "y": 10, "x": 100}, 4, "proportional", seed=7)
    steps = [a.tasks_for_step(s) for s in range(50)]
    assert steps == [b.tasks_for_step(s) for s in range(50)]
    assert a.tasks_for_step(31) == steps[31]  # resuming at any step draws the same tasks
    assert steps != [TaskSchedule({"x": 100, "y": 10, "z": 1}, 4, "proportional", seed=8).tasks_for_step(s) for s in range(50)]


def test_proportional_and_uniform_sampling():
    sizes = {"big": 900, "small": 100}
    prop = collections.Counter(t for s in range(2000) for t in TaskSchedule(sizes, 4, "proportional", 0).tasks_for_step(s))
    assert 0.87 < prop["big"] / 8000 < 0.93
    uni = collections.Counter(t for s in range(2000) for t in TaskSchedule(sizes, 4, "uniform", 0).tasks_for_step(s))
    assert 0.47 < uni["big"] / 8000 < 0.53


def test_updates_mix_tasks():
    schedule = TaskSchedule({f"t{i}": 100 for i in range(8)}, 4, "proportional", 0)
    mixed = sum(len(set(schedule.tasks_for_step(s))) > 1 for s in range(100))
    assert mixed > 90


def test_example_stream_visits_every_example_once_per_epoch():
    stream = ExampleStream(10, seed=3)
    first, second = stream.take(10), stream.take(10)
    assert sorted(first) == sorted(second) == list(range(10))
    assert first != second
    again = ExampleStream(10, seed=3)
    assert again.take(4) + again.take(6) == first
