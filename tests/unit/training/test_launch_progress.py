"""Following the workers' progress file from the launching process."""

from __future__ import annotations

import json
import time

from muppet_core.training.callbacks import ProgressFile
from muppet_core.training.launch import _following


def test_every_change_of_the_progress_file_is_reported_and_the_last_one_at_the_end(tmp_path):
    path = tmp_path / "job.progress"
    seen: list[tuple[int, int]] = []
    writer = ProgressFile(str(path), every_seconds=0.0)
    with _following(path, lambda step, total: seen.append((step, total)), every=0.05):
        writer.on_train_start(total_steps=3)
        for step in range(3):
            time.sleep(0.3)  # several polls per update
            writer.on_step_end(step, {})
        writer.on_train_end({"steps": 3})
    assert seen[-1] == (3, 3) and json.loads(path.read_text()) == {"step": 3, "total": 3}
    assert seen == sorted(set(seen)) and {(1, 3), (2, 3)} <= set(seen)  # each intermediate value, once, in order
