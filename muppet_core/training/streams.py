"""Encoded training streams of the pipeline's tasks."""

from __future__ import annotations

from pathlib import Path

from muppet_core.data.prepare import load_split
from muppet_core.data.splits import subsample
from muppet_core.families import get_family
from muppet_core.tasks.catalog import get_task
from muppet_core.training.loop import TaskStream


def build_streams(
    tasks: list[str], data_dirs: dict[str, Path], tokenizer, max_length: int, cap: int | None, seed: int, max_target_length: int = 64
):
    """Encoded training streams per task, and how many examples each lost to truncation."""
    streams, dropped = {}, {}
    for task in tasks:
        spec = get_task(task)
        family = get_family(spec.family).for_task(spec)
        records = subsample(load_split(data_dirs[task], spec.family, "train"), cap, seed)
        features, dropped[task] = family.encode(records, tokenizer, max_length, max_target_length)
        streams[task] = TaskStream(family, family.head_name(spec), features, spec.loss_scale(max_length, tokenizer.vocab_size))
    return streams, dropped
