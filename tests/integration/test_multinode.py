"""Pre-finetuning on two nodes, simulated on this machine: two torchrun agents meet at a c10d
rendezvous on 127.0.0.1, each in its own working directory with its own HOME, TMPDIR and store
cache, and the store on SeaweedFS. The first node is the stage as the flow runs it; the second is
``muppet join``, as a cluster's scheduler starts it. A node that dies fails the stage with one line
and publishes nothing; both started again resume from the checkpoint in the store.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.callbacks import CallbackSpec
from muppet_core.config import DataConfig, PrefinetuneConfig
from muppet_core.data.stage import data_stage
from muppet_core.errors import StoreError
from muppet_core.models.backbone import base_variant
from muppet_core.stages import PREFINETUNE as STAGE
from muppet_core.training.prefinetune import prefinetune_key, prefinetune_stage
from tests.conftest import REPO
from tests.faults.killswitch import pause_at
from tests.servers.process import free_ports
from tests.servers.seaweed import BUCKET

TASKS = ["rotten_tomatoes", "commonsenseqa"]
SETTINGS = {"tasks": TASKS, "steps": 6, "micro_batch_size": 4, "tasks_per_step": 2, "max_length": 32, "max_train_examples": 32,
            "checkpoint_every": 2, "engine": "torch", "launcher": "torchrun", "seed": 5}
BACKBONE = f"s3://{BUCKET}/backbones/tiny"


def _stage_child(spec_file: str) -> None:
    """One node's flow side: the pre-finetuning stage as the flow runs it (run in a child process)."""
    from muppet_core.training.launch import LaunchError

    spec = json.loads(Path(spec_file).read_text())
    store = ArtifactStore(spec["store"])
    data = {t: data_stage(t, DataConfig(mirror=spec["mirror"]), store) for t in TASKS}
    base = base_variant(BACKBONE, store.cache_dir)
    try:
        output = prefinetune_stage(PrefinetuneConfig(**spec["config"]), base, data, store, print, [CallbackSpec(**c) for c in spec["callbacks"]])
    except LaunchError as exc:
        print(f"STAGE FAILED: {str(exc).splitlines()[0]}", flush=True)
        sys.exit(3)
    print(f"STAGE DONE {output.key}", flush=True)


def _node_env(node: Path) -> dict[str, str]:
    for sub in ("home", "tmp", "cache"):
        (node / sub).mkdir(parents=True, exist_ok=True)
    return {**os.environ, "HOME": str(node / "home"), "TMPDIR": str(node / "tmp"), "MUPPET_CACHE": str(node / "cache"),
            "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1",
            # torchrun gives each process one thread when a node runs several, as the reference's does: the same kernels then sum in the same order
            "OMP_NUM_THREADS": "1"}


def _start_flow_node(node: Path, spec: dict) -> subprocess.Popen:
    node.mkdir(parents=True, exist_ok=True)
    (node / "spec.json").write_text(json.dumps(spec))
    code = "import sys; from tests.integration.test_multinode import _stage_child; _stage_child(sys.argv[1])"
    return subprocess.Popen([sys.executable, "-c", code, str(node / "spec.json")], cwd=node, env=_node_env(node),
                            stdout=open(node / "out.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)


def _start_joining_node(node: Path, store: str) -> subprocess.Popen:
    node.mkdir(parents=True, exist_ok=True)
    muppet = Path(sys.executable).parent / "muppet"  # as the scheduler types it on the other node
    return subprocess.Popen([str(muppet), "join", store, "--once"], cwd=node, env=_node_env(node),
                            stdout=open(node / "out.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)


def _wait(proc: subprocess.Popen, node: Path, timeout: float = 400) -> str:
    proc.wait(timeout=timeout)
    return (node / "out.log").read_text()


def _weights(store: ArtifactStore, key: str) -> dict[str, torch.Tensor]:
    out = store.fetch(STAGE, key)
    return {**load_file(str(out / "encoder" / "model.safetensors")), **{f"heads.{k}": v for k, v in load_file(str(out / "heads.safetensors")).items()}}


@pytest.fixture(scope="module")
def stores(seaweed, mirror, tiny_backbone, tmp_path_factory):
    """Two stores on SeaweedFS holding the prepared data, and the tiny backbone uploaded beside them."""
    fs = seaweed.fs()
    fs.put(str(tiny_backbone) + "/", BACKBONE.removeprefix("s3://"), recursive=True)
    template = ArtifactStore(str(tmp_path_factory.mktemp("data-template")))
    for t in TASKS:
        data_stage(t, DataConfig(mirror=mirror), template)
    roots = {name: f"s3://{BUCKET}/multinode-{name}" for name in ("reference", "killed")}
    for root in roots.values():
        fs.put(f"{template.root}/data/", f"{root.removeprefix('s3://')}/data", recursive=True)
    return roots


def _run_two_nodes(tmp: Path, name: str, root: str, mirror: str, callbacks: list | None = None) -> tuple[subprocess.Popen, subprocess.Popen]:
    endpoint = f"127.0.0.1:{free_ports(1)[0]}"
    config = {**SETTINGS, "nnodes": 2, "nproc_per_node": 1, "rdzv_endpoint": endpoint}
    spec = {"store": root, "mirror": mirror, "config": config, "callbacks": [c.model_dump() for c in callbacks or []]}
    flow = _start_flow_node(tmp / name / "node1", spec)
    joiner = _start_joining_node(tmp / name / "node2", root)
    return flow, joiner


def test_two_nodes_through_the_store_equal_one_node_and_resume_after_a_node_dies(stores, seaweed, mirror, tmp_path):
    # One node, two processes: the reference.
    reference = ArtifactStore(stores["reference"])
    data = {t: data_stage(t, DataConfig(mirror=mirror), reference) for t in TASKS}
    base = base_variant(BACKBONE, reference.cache_dir)
    one_node = prefinetune_stage(PrefinetuneConfig(**SETTINGS, nproc_per_node=2), base, data, reference, lambda line: None)
    expected = _weights(reference, one_node.key)

    # Two nodes, one process each; the second node's agent is SIGKILLed in update 5, after the step-4
    # checkpoint (its worker, in a session of its own, dies with it: see ``launch.die_with_launcher``).
    tmp = tmp_path / "killed"
    tmp.mkdir()
    paused, release = tmp / "paused", tmp / "release"
    flow, joiner = _run_two_nodes(tmp_path, "killed", stores["killed"], mirror, [pause_at(5, str(paused), str(release))])
    deadline = time.monotonic() + 400
    while not paused.exists():
        assert flow.poll() is None and joiner.poll() is None and time.monotonic() < deadline, "the run ended before update 5"
        time.sleep(0.5)
    os.killpg(joiner.pid, signal.SIGKILL)
    joiner.wait()
    release.touch()
    flow_log = _wait(flow, tmp / "node1")
    failed = [line for line in flow_log.splitlines() if line.startswith("STAGE FAILED")]
    assert flow.returncode == 3 and failed == ["STAGE FAILED: pre-finetuning workers (node 1 of 2) exited with status 1"], flow_log[-3000:]
    killed = ArtifactStore(stores["killed"])
    assert not killed.has(STAGE, one_node.key) and not seaweed.fs().find(f"{stores['killed'].removeprefix('s3://')}/{STAGE}")
    assert json.loads(killed.read_text(f"_scratch/{STAGE}/{one_node.key}/latest.json"))["step"] == 4

    # Both nodes started again: they resume from the store's checkpoint and end as the uninterrupted one-node
    # run, bit for bit. Updates 1-4 ran on two nodes before the kill and 5-6 after, so this is also two nodes
    # against one (an uninterrupted two-node run computes the same updates: it is left out for time).
    flow, joiner = _run_two_nodes(tmp_path, "again", stores["killed"], mirror, [pause_at(5, str(paused), str(release))])
    flow_log, join_log = _wait(flow, tmp_path / "again" / "node1"), _wait(joiner, tmp_path / "again" / "node2")
    assert flow.returncode == 0 and joiner.returncode == 0, flow_log[-3000:] + join_log[-3000:]
    assert f"STAGE DONE {one_node.key}" in flow_log and "took part in 1 multi-node job(s)" in join_log
    assert "resumed from the checkpoint at step 4 of 6" in flow_log + join_log
    resumed = _weights(killed, one_node.key)
    diff = max(float((resumed[k] - expected[k]).abs().max()) for k in expected)
    print(f"largest weight difference, 2 nodes x 1 process (resumed) vs 1 node x 2 processes: {diff:.3g}")
    assert resumed.keys() == expected.keys() and all(torch.equal(resumed[k], expected[k]) for k in expected)
    # the scratch area (checkpoints, the job) is gone from the store once the export is published
    left = seaweed.fs().find(f"{stores['killed'].removeprefix('s3://')}/_scratch", detail=True)
    assert not [p for p, info in left.items() if info["size"]] and not killed.list("_launch", ".json"), left
    assert prefinetune_key(PrefinetuneConfig(**SETTINGS), base.key, data) == one_node.key  # nodes and launcher stay out of the key


def test_several_nodes_with_a_store_only_this_machine_reaches_are_refused_before_any_work(mirror, tiny_backbone, tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    config = PrefinetuneConfig(**{**SETTINGS, "nnodes": 2, "rdzv_endpoint": "127.0.0.1:29400"})
    base = base_variant(tiny_backbone, tmp_path / "cache")
    with pytest.raises(StoreError) as refused:
        prefinetune_stage(config, base, {}, store, lambda line: None)
    message = str(refused.value)
    assert "\n" not in message and "pre-finetuning on 2 nodes" in message and "s3://" in message
    assert not (tmp_path / "store").exists(), "nothing was written"
