"""A fine-tune SIGKILLed on one "machine" resumes on another from its last checkpoint, which lives
in the store's scratch area (SeaweedFS), as a flow run of the ``deployment`` executor does when its
worker dies: the two processes share nothing but the store (each has its own cache folder), and
the resumed run ends bit for bit where an uninterrupted one ends."""

from __future__ import annotations

import json
import sys

import pytest

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.config import DataConfig, FinetuneConfig
from muppet_core.data.stage import data_stage
from muppet_core.evaluation.results import read_result
from muppet_core.models.backbone import Variant
from muppet_core.training.finetune import FinetuneRun, finetune_key
from muppet_core.training.finetune_worker import FinetuneJob
from muppet_core.training.launch import MAIN, LaunchError, job_path, run_job
from muppet_core.training.pinning import Device
from tests.faults.killswitch import kill_at
from tests.servers.seaweed import BUCKET

WORKER = [sys.executable, "-m", MAIN]


def test_a_killed_fine_tune_resumes_on_another_machine_from_the_stores_checkpoint(seaweed, tiny_backbone, mirror, tmp_path, fault_report):
    config = FinetuneConfig(benchmarks=["rte"], batch_size=8, max_length=48, max_train_examples=40, max_eval_examples=16, checkpoint_every=1)
    run = FinetuneRun(Variant("base", "tiny", tiny_backbone), "rte", 0, 3e-5)

    def job(store: ArtifactStore, machine: str, callbacks=()) -> FinetuneJob:
        return FinetuneJob(pipeline="moves", run=run, data=data_stage("rte", DataConfig(mirror=mirror), store), config=config, store=store.root,
                           cache_dir=str(tmp_path / machine), device=Device(threads=1), output=f"{store.root}/_jobs/{machine}.json",
                           callbacks=list(callbacks))

    store = ArtifactStore(f"s3://{BUCKET}/moves", str(tmp_path / "a"))
    first = job(store, "a", [kill_at(4)])  # 5 updates, a checkpoint after each; dies in the 4th
    key = finetune_key(run, first.data, config)
    with pytest.raises(LaunchError, match="killed by SIGKILL"):
        run_job(first, job_path(tmp_path), WORKER, lambda line: None, "machine a's fine-tune")
    assert not store.has("finetune", key) and store.backend.fs.exists(store.scratch_uri("finetune", key).removeprefix("s3://"))

    lines: list[str] = []
    run_job(job(store, "b"), job_path(tmp_path), WORKER, lines.append, "machine b's fine-tune")
    assert any("resumed from the checkpoint at step 3 of 5" in line for line in lines)
    resumed = read_result(store, json_output(store, "b"))

    fresh = ArtifactStore(f"s3://{BUCKET}/moves-uninterrupted", str(tmp_path / "c"))
    run_job(job(fresh, "c"), job_path(tmp_path), WORKER, lambda line: None, "an uninterrupted fine-tune")
    whole = read_result(fresh, json_output(fresh, "c"))
    assert resumed.ok and (resumed.metrics, resumed.weights_sha256) == (whole.metrics, whole.weights_sha256)
    fault_report("kill", "SIGKILL of a fine-tune during update 4 of 5 on machine a (own cache), started again on machine b (another cache)",
                 "b resumed from the step-3 checkpoint in the store (SeaweedFS) and ended bit for bit as an uninterrupted run")


def json_output(store: ArtifactStore, machine: str):
    from muppet_core.artifacts.stage import StageOutput

    return StageOutput(**json.loads(store.read_text(f"_jobs/{machine}.json")))


def test_a_worker_on_another_machine_finds_the_variants_encoder_through_the_store(seaweed, tiny_backbone, mirror, tmp_path):
    """The flow resolves each variant's encoder folder on its own machine; a worker elsewhere (its own
    cache, none of the flow machine's folders) fetches a pre-finetuned encoder from the store by its
    key and resolves a base backbone again, and the fine-tune runs."""
    import shutil

    from muppet_core import stages
    from muppet_core.training.finetune_worker import variant_here

    flow_machine = ArtifactStore(f"s3://{BUCKET}/elsewhere", str(tmp_path / "a"))
    built = tmp_path / "built"
    shutil.copytree(tiny_backbone, built / "encoder")
    flow_machine.publish(stages.PREFINETUNE, "pft0", built)
    pre = Variant("prefinetuned", "pft0", str(flow_machine.fetch(stages.PREFINETUNE, "pft0") / "encoder"), ("rte",), backbone=tiny_backbone)
    base = Variant("base", "tiny", str(tmp_path / "a" / "gone"), backbone=tiny_backbone)
    shutil.rmtree(tmp_path / "a")  # the flow machine's cache is not on the worker's

    worker = ArtifactStore(f"s3://{BUCKET}/elsewhere", str(tmp_path / "b"))
    here = variant_here(pre, worker)
    assert here.encoder_path == str(tmp_path / "b" / stages.PREFINETUNE / "pft0" / "encoder")
    assert (here.key, here.tasks) == (pre.key, pre.tasks)
    assert variant_here(base, worker).encoder_path == str(tiny_backbone)

    config = FinetuneConfig(benchmarks=["rte"], batch_size=8, max_length=48, max_train_examples=16, max_eval_examples=8, head_reuse=False)
    data = data_stage("rte", DataConfig(mirror=mirror), worker)
    job = FinetuneJob(pipeline="elsewhere", run=FinetuneRun(pre, "rte", 0, 3e-5), data=data, config=config, store=worker.root,
                      cache_dir=str(tmp_path / "b"), output=str(tmp_path / "out.json"))
    assert read_result(worker, job.execute()).ok
