"""The one path of fine-tunes whose try ended without their results, shared by the ``process``
executor (its process died) and the ``deployment`` executor (its flow run ended without them):
started again while retries last, then one failure record each, with the reason."""

from __future__ import annotations

import time

from muppet_core.artifacts.stage import StageOutput
from muppet_core.artifacts.store import ArtifactStore
from muppet_core.config import FinetuneConfig
from muppet_core.evaluation.results import read_result
from muppet_core.models.backbone import Variant
from muppet_core.training.finetune import FinetuneRun
from muppet_core.training.finetune_worker import FinetuneJob, retry_or_fail
from muppet_core.training.launch import LaunchError


def test_a_lost_try_starts_again_while_retries_last_then_each_job_is_a_failure_record(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    config = FinetuneConfig(benchmarks=["rte"], executor={"kind": "process", "retries": 2})
    data = StageOutput("data", "rte", "data-key", str(tmp_path), False)
    jobs = [FinetuneJob(pipeline="p", run=FinetuneRun(Variant("base", "k", "/b"), "rte", seed, 3e-5), data=data, config=config,
                        store=store.root, output=str(tmp_path / f"{seed}.json")) for seed in (0, 1)]
    killed, lines = LaunchError("the fine-tune process exited with status -9 (killed by SIGKILL)\nlast output:\n..."), []

    assert retry_or_fail(jobs[:1], 0, 2, killed, store, time.perf_counter(), lines.append) is None
    assert retry_or_fail(jobs, 1, 2, RuntimeError("flow run r ended Crashed: gone"), store, time.perf_counter(), lines.append) is None
    assert lines == [
        "fine-tune base/rte/seed0/lr3e-05: the fine-tune process exited with status -9 (killed by SIGKILL); "
        "starting it again from its last checkpoint (1 of 2)",
        "fine-tune base/rte/seed0/lr3e-05 and 1 more: flow run r ended Crashed: gone; starting them again from their last checkpoints (2 of 2)",
    ]

    failed = retry_or_fail(jobs, 2, 2, RuntimeError("flow run r ended Crashed: gone"), store, time.perf_counter(), lines.append)
    assert len(lines) == 2 and [o.stage for o in failed] == ["finetune-failed"] * 2
    records = [read_result(store, output) for output in failed]
    assert [(r.seed, r.status, r.error) for r in records] == [(seed, "failed", "RuntimeError: flow run r ended Crashed: gone") for seed in (0, 1)]
