"""The fan-out's ``process`` executor on real data: fine-tunes in processes of their own, two at
once, end bit for bit where the same fine-tunes end as threads one at a time, under the same keys."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import torch

from tests.integration.conftest import PRETRAIN_TASKS, artifact_keys, write_pipeline

# The records' fields that say what a run computed (the rest is timing and provenance).
OUTCOME = ("status", "metrics", "train_examples", "examples_seen", "eval_examples", "weights_sha256")


def _run(first_run, tiny_backbone, mirror, root, finetune):
    """The tiny pipeline, base variant only, from the data ``first_run`` prepared; its store's records by run."""
    from flows.reproduce import reproduce

    shutil.copytree(first_run[0] / "store" / "data", root / "store" / "data")
    config = write_pipeline(root / "p.yaml", tiny_backbone, mirror, root / "store", seeds=[0], name="exec", prefinetune=False, finetune=finetune,
                            tasks=PRETRAIN_TASKS)  # the tasks whose data ``first_run`` prepared
    reproduce(pipeline="exec", config=str(config))
    records = [json.loads(p.read_text()) for p in (root / "store" / "finetune").glob("*/record.json")]
    return {(r["benchmark"], r["seed"]): r for r in records}


def test_process_executor_at_concurrency_2_equals_threads_at_1_bit_for_bit(prefect_harness, first_run, tiny_backbone, mirror, tmp_path, monkeypatch):
    import muppet_core.training.finetune as finetune_module

    def not_here(*args, **kwargs):
        raise AssertionError("fine-tuned in the flow's process")

    with monkeypatch.context() as patch:  # the process executor (auto at concurrency 2) never fine-tunes in this process
        patch.setattr(finetune_module, "finetune", not_here)
        processes = _run(first_run, tiny_backbone, mirror, tmp_path / "processes", {"executor": {"kind": "auto", "threads": 1}, "concurrency": 2})
    before = torch.get_num_threads()
    try:  # the thread executor sets this process's thread count
        threads = _run(first_run, tiny_backbone, mirror, tmp_path / "threads", {"executor": {"kind": "thread", "threads": 1}, "concurrency": 1})
    finally:
        torch.set_num_threads(before)

    assert sorted(processes) == sorted(threads) == [("rte", 0), ("sst2", 0)]  # both at once in the process run
    for run, record in threads.items():
        assert record["status"] == "ok" and len(record["weights_sha256"]) == 64, run
        assert {k: processes[run][k] for k in OUTCOME} == {k: record[k] for k in OUTCOME}, run
    assert processes[("rte", 0)]["weights_sha256"] != processes[("sst2", 0)]["weights_sha256"]  # the hash tells runs apart
    assert set(artifact_keys(tmp_path / "processes" / "store", "finetune")) == set(artifact_keys(tmp_path / "threads" / "store", "finetune"))
    boards = [pd.read_csv(tmp_path / side / "store" / "pipelines" / "exec" / "leaderboard.csv", index_col="model") for side in ("processes", "threads")]
    scores = [c for c in boards[0].columns if c.split(".")[0] in ("sst2", "rte", "average", "avg")]
    pd.testing.assert_frame_equal(boards[0][scores], boards[1][scores])


def test_the_deployment_executor_refuses_a_local_store_before_any_work(prefect_harness, tiny_backbone, mirror, tmp_path):
    from flows.reproduce import reproduce
    from muppet_core.errors import StoreError

    config = write_pipeline(tmp_path / "p.yaml", tiny_backbone, mirror, tmp_path / "store", seeds=[0], name="remote", prefinetune=False,
                            finetune={"executor": {"kind": "deployment", "work_pool": "gpu"}})
    with pytest.raises(StoreError, match=r"^finetune\.executor: deployment needs an artifact store that every machine reaches, and "):
        reproduce(pipeline="remote", config=str(config))
    assert not any((tmp_path / "store" / stage).exists() for stage in ("data", "finetune", "pipelines"))
