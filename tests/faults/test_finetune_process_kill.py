"""A fine-tune process SIGKILLed in the middle of training, under the ``process`` executor: it is
started again while ``finetune.executor.retries`` allows, then it is a failure record with the reason, and
the fine-tunes beside it complete."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.config import DataConfig, FinetuneConfig
from muppet_core.data.stage import data_stage
from muppet_core.evaluation.results import failure_path, read_result
from muppet_core.models.backbone import Variant
from muppet_core.stages import FINETUNE_FAILED as FAILED_STAGE
from muppet_core.training.executor import run_finetune
from muppet_core.training.finetune import FinetuneRun
from tests.faults.killswitch import kill_at


def test_a_killed_fine_tune_process_is_retried_then_a_failure_record(tiny_backbone, mirror, tmp_path, fault_report):
    store = ArtifactStore(str(tmp_path / "store"))
    data = data_stage("rte", DataConfig(mirror=mirror), store)
    config = FinetuneConfig(benchmarks=["rte"], seeds=[0, 1], batch_size=8, max_length=48, max_train_examples=24, max_eval_examples=16,
                            executor={"kind": "process", "threads": 1, "retries": 1}, concurrency=2)
    variant = Variant("base", "tiny", tiny_backbone)
    doomed, survivor = FinetuneRun(variant, "rte", 0, 3e-5), FinetuneRun(variant, "rte", 1, 3e-5)
    logs: dict[str, list[str]] = {doomed.name: [], survivor.name: []}
    switches = {doomed.name: [kill_at(2)], survivor.name: [kill_at(2, once=str(tmp_path / "killed-once"))]}

    def start(run):
        return run_finetune("kill", run, data, config, store, logs[run.name].append, switches[run.name])

    with ThreadPoolExecutor(2) as pool:
        failed, finished = pool.map(start, [doomed, survivor])

    assert failed.stage == FAILED_STAGE and not store.has("finetune", failed.key)
    record = read_result(store, failed)
    assert record.status == "failed" and record.metrics == {} and record.weights_sha256 is None
    assert record.error == "LaunchError: the fine-tune process exited with status -9 (killed by SIGKILL)"
    assert json.loads(store.read_text(failure_path(failed.key)))["seed"] == 0
    restarts = [line for line in logs[doomed.name] if "starting it again from its last checkpoint (1 of 1)" in line]
    assert len(restarts) == 1 and "killed by SIGKILL" in restarts[0]

    assert finished.stage == "finetune" and store.has("finetune", finished.key)  # killed once, started again, done
    done = read_result(store, finished)
    assert done.ok and done.seed == 1 and 0 <= done.score <= 1 and len(done.weights_sha256) == 64
    assert any("starting it again" in line for line in logs[survivor.name])
    planned = [line for line in logs[survivor.name] if line.startswith(f"fine-tune {survivor.name}: own process on core")]
    core = int(planned[0].split("own process on core ")[1].split()[0])  # the share of its slot, as planned
    assert f"fine-tune {survivor.name} runs on cores [{core}] with 1 torch thread(s)" in "\n".join(logs[survivor.name])  # as applied
    fault_report("kill", "SIGKILL of a fine-tune process (executor: process, retries: 1) during update 2, every time for one run and once for the other",
                 f"killed every time: started again once, then a failure record '{record.error}'; killed once: started again and finished")
