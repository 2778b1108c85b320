"""Task schedules and batch streams: the task order is a pure function of seed and step."""

import collections

import pytest

from muppet_core.training.sampling import BatchStream, TaskSchedule


def test_task_order_depends_only_on_seed_and_step():
    a = TaskSchedule({"x": 100, "y": 10, "z": 1}, 4, "proportional", seed=7)
    b = TaskSchedule({"z": 1, "y": 10, "x": 100}, 4, "proportional", seed=7)
    steps = [a.tasks_for_step(s) for s in range(50)]
    assert steps == [b.tasks_for_step(s) for s in range(50)]
    assert a.tasks_for_step(31) == steps[31]  # resuming at any step draws the same tasks
    assert steps != [TaskSchedule({"x": 100, "y": 10, "z": 1}, 4, "proportional", seed=8).tasks_for_step(s) for s in range(50)]


def test_ranks_split_the_same_global_draws():
    schedule = TaskSchedule({f"t{i}": 10 * (i + 1) for i in range(6)}, 4, "proportional", seed=1)
    for step in range(20):
        whole = schedule.tasks_for_step(step)
        assert schedule.tasks_for_rank(step, 0, 1) == whole
        two = [schedule.tasks_for_rank(step, r, 2) for r in range(2)]
        assert [two[i % 2][i // 2] for i in range(4)] == whole
    with pytest.raises(ValueError, match="multiple of the world size"):
        schedule.tasks_for_rank(0, 0, 3)


def test_proportional_uniform_and_temperature_sampling():
    sizes = {"big": 900, "small": 100}

    def share(sampling, **kw):
        schedule = TaskSchedule(sizes, 4, sampling, 0, **kw)
        counts = collections.Counter(t for s in range(2000) for t in schedule.tasks_for_step(s))
        return counts["big"] / 8000

    assert 0.87 < share("proportional") < 0.93
    assert 0.47 < share("uniform") < 0.53
    assert 0.72 < share("temperature", temperature=2.0) < 0.78  # sqrt(9) : 1 -> 0.75


def test_heterogeneous_updates_mix_tasks_and_homogeneous_schedules_do_not():
    sizes = {f"t{i}": 100 for i in range(8)}
    hetero = TaskSchedule(sizes, 4, "proportional", 0)
    assert sum(len(set(hetero.tasks_for_step(s))) > 1 for s in range(100)) > 90
    batch_homo = TaskSchedule(sizes, 4, "proportional", 0, schedule="batch_homogeneous")
    assert all(len(set(batch_homo.tasks_for_step(s))) == 1 for s in range(100))
    assert len({batch_homo.tasks_for_step(s)[0] for s in range(100)}) == 8
    dataset_homo = TaskSchedule(sizes, 4, "proportional", 0, schedule="dataset_homogeneous", total_steps=80)
    firsts = [dataset_homo.tasks_for_step(s)[0] for s in range(80)]
    blocks = [t for i, t in enumerate(firsts) if i == 0 or t != firsts[i - 1]]
    assert sorted(blocks) == sorted(sizes) and collections.Counter(firsts) == {t: 10 for t in sizes}


def _features(lengths):
    return [{"input_ids": [1] * n, "attention_mask": [1] * n} for n in lengths]


def _lengths(features):
    return [len(f["input_ids"]) for f in features]


def test_batch_stream_visits_every_example_once_per_epoch_and_resumes():
    features = _features([5, 50, 7, 9, 33, 12, 40, 3, 8, 21])
    stream = BatchStream(_lengths(features), 3, seed=3)
    first = [i for _ in range(4) for i in stream.next_batch()]
    assert sorted(first) == list(range(10))
    state = stream.state()
    following = [stream.next_batch() for _ in range(5)]
    again = BatchStream(_lengths(features), 3, seed=3)
    again.restore(state)
    assert [again.next_batch() for _ in range(5)] == following


def test_length_grouping_and_token_budget_reduce_padding():
    import random

    rng = random.Random(0)
    features = _features([rng.randint(5, 120) for _ in range(2000)])

    def efficiency(stream):
        real = computed = 0
        for _ in range(100):
            batch = [features[i] for i in stream.next_batch()]
            longest = max(len(f["input_ids"]) for f in batch)
            real += sum(len(f["input_ids"]) for f in batch)
            computed += longest * len(batch)
        return real / computed

    assert efficiency(BatchStream(_lengths(features), 16, 0, group_by_length=True)) > 0.9
    assert efficiency(BatchStream(_lengths(features), 16, 0, group_by_length=False)) < 0.7
    budget = BatchStream(_lengths(features), 64, 0, max_tokens=1024)
    for _ in range(50):
        batch = budget.next_batch()
        assert len(batch) == 1 or len(batch) * max(len(features[i]["input_ids"]) for i in batch) <= 1024
