"""Warm workers of the ``process`` executor (``muppet_core.training.warm``), real processes on the
tiny BERT: fine-tunes run one after another in one worker equal fresh processes' bit for bit; a
worker SIGKILLed in the middle of a run is replaced and the run resumes and finishes; a fine-tune
that fails leaves its worker up; the workers end with the fan-out, when the pool is closed, and with
a ``muppet run`` that is stopped (SIGTERM) or killed (SIGKILL) in the middle of a fine-tune."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.callbacks import CallbackSpec
from muppet_core.config import DataConfig, FinetuneConfig
from muppet_core.data.stage import data_stage
from muppet_core.evaluation.results import read_result
from muppet_core.models.backbone import Variant
from muppet_core.stages import FINETUNE_FAILED
from muppet_core.training.executor import PROCESS, run_finetune
from muppet_core.training.finetune import FinetuneRun
from muppet_core.training.warm import CLOSE_WAIT_S, WORKERS
from tests.conftest import REPO
from tests.faults.killswitch import kill_at
from tests.integration.conftest import BENCHMARKS

WORKER_LINE = re.compile(r"^warm worker (\d+), job (\d+)$")
OUTCOME = ("status", "error", "metrics", "weights_sha256", "train_examples", "examples_seen", "eval_examples")


def _config(**executor) -> FinetuneConfig:
    return FinetuneConfig(benchmarks=["rte"], seeds=[0, 1], batch_size=8, max_length=48, max_train_examples=24, max_eval_examples=16,
                          checkpoint_every=1, executor={"kind": "process", "threads": 1, "warm": True, **executor}, concurrency=1)


def _workers(lines: list[str]) -> list[tuple[int, int]]:
    """(pid, job) of each ``warm worker PID, job N`` line."""
    return [(int(m[1]), int(m[2])) for line in lines if (m := WORKER_LINE.match(line))]


def _gone(pid: int, within: float = 0.0) -> bool:
    deadline = time.monotonic() + within
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def _store(root: Path, mirror: str):
    store = ArtifactStore(str(root))
    return store, data_stage("rte", DataConfig(mirror=mirror), store)


@pytest.fixture(autouse=True)
def _no_idle_workers():
    """Each test starts and ends with no idle worker in this process."""
    WORKERS.close()
    yield
    WORKERS.close()


def test_fine_tunes_one_after_another_in_one_warm_worker_equal_fresh_processes_bit_for_bit(tiny_backbone, mirror, tmp_path):
    variant = Variant("base", "tiny", tiny_backbone)
    runs = [FinetuneRun(variant, "rte", seed, 3e-5) for seed in (1, 0)]
    records, workers = {}, {}
    for side, warm in (("warm", True), ("fresh", False)):
        store, data = _store(tmp_path / side, mirror)
        lines: list[str] = []
        with PROCESS.fan_out():
            outputs = [run_finetune(side, run, data, _config(warm=warm), store, lines.append) for run in runs]
            idle = WORKERS.pids()
        records[side], workers[side] = [read_result(store, o) for o in outputs], _workers(lines)
        assert (idle == [workers[side][0][0]]) if warm else idle == []

    pid = workers["warm"][0][0]
    assert workers["warm"] == [(pid, 1), (pid, 2)] and workers["fresh"] == []  # one worker ran both
    assert _gone(pid)  # it ended with the fan-out
    for warm, fresh in zip(records["warm"], records["fresh"]):
        assert warm.ok and {k: getattr(warm, k) for k in OUTCOME} == {k: getattr(fresh, k) for k in OUTCOME}, warm.seed
    assert records["warm"][0].weights_sha256 != records["warm"][1].weights_sha256  # the hash tells the runs apart


def test_a_warm_worker_killed_mid_run_is_replaced_and_the_run_resumes_and_finishes(tiny_backbone, mirror, tmp_path, fault_report):
    run = FinetuneRun(Variant("base", "tiny", tiny_backbone), "rte", 0, 3e-5)
    config = _config(retries=1)
    (whole, whole_data), (killed, killed_data) = _store(tmp_path / "whole", mirror), _store(tmp_path / "killed", mirror)
    lines: list[str] = []
    with PROCESS.fan_out():
        uninterrupted = run_finetune("warm-kill", run, whole_data, config, whole, lines.append)
        finished = run_finetune("warm-kill", run, killed_data, config, killed, lines.append, [kill_at(2, once=str(tmp_path / "killed-once"))])
        workers = _workers(lines)
        assert len(workers) == 3 and workers[0][0] == workers[1][0] != workers[2][0], workers
        assert [job for _, job in workers] == [1, 2, 1]  # the first worker's second job killed it; a new one ran the retry
        assert _gone(workers[0][0]) and WORKERS.pids() == [workers[2][0]]
    assert _gone(workers[2][0])

    restarts = [line for line in lines if "starting it again from its last checkpoint (1 of 1)" in line]
    assert len(restarts) == 1 and "exited with status -9 (killed by SIGKILL)" in restarts[0]
    assert finished.stage == "finetune" and killed.has("finetune", finished.key)
    done, whole_record = read_result(killed, finished), read_result(whole, uninterrupted)
    assert done.ok and done.weights_sha256 == whole_record.weights_sha256 and done.metrics == whole_record.metrics  # resumed, bit for bit
    fault_report("kill", "SIGKILL of a warm fine-tune worker (executor: process, warm, retries: 1) during update 2 of its second job",
                 "a new worker started, the run resumed from its checkpoint and ended as an uninterrupted run, bit for bit")


def test_a_failed_fine_tune_retires_its_warm_worker_and_the_next_runs_in_a_new_one(tiny_backbone, mirror, tmp_path, fault_report):
    variant = Variant("base", "tiny", tiny_backbone)
    store, data = _store(tmp_path / "store", mirror)
    broken = [CallbackSpec(target="tests.faults.killswitch:KillSwitch", options={"update": 1, "no_such_option": 1})]
    lines: list[str] = []
    with PROCESS.fan_out():
        failed = run_finetune("warm-fail", FinetuneRun(variant, "rte", 0, 3e-5), data, _config(), store, lines.append, broken)
        after = run_finetune("warm-fail", FinetuneRun(variant, "rte", 1, 3e-5), data, _config(), store, lines.append)
        retired = _workers(lines)[0][0]
        assert _gone(retired, within=CLOSE_WAIT_S)  # it exited by itself after the failure, inside the fan-out
    workers = _workers(lines)
    assert len(workers) == 2 and workers[0] == (retired, 1) and workers[1][0] != retired and workers[1][1] == 1, workers
    assert failed.stage == FINETUNE_FAILED and read_result(store, failed).error.startswith("TypeError: ")
    assert after.stage == "finetune" and read_result(store, after).ok
    fault_report("bad config", "a fine-tune whose loop callback cannot be built, in a warm worker",
                 "a failure record with the TypeError; that worker retired, a new one ran the next fine-tune")


def test_a_warm_worker_exits_when_the_pool_is_closed(tiny_backbone, mirror, tmp_path):
    store, data = _store(tmp_path / "store", mirror)
    lines: list[str] = []
    output = run_finetune("warm-close", FinetuneRun(Variant("base", "tiny", tiny_backbone), "rte", 0, 3e-5), data, _config(), store, lines.append)
    assert output.stage == "finetune"
    [(pid, job)] = _workers(lines)
    assert job == 1 and WORKERS.pids() == [pid] and psutil.Process(pid).cmdline()[-1] == "--serve"  # idle, outside any fan-out
    [worker] = [w for idle in WORKERS._idle.values() for w in idle]
    WORKERS.close()
    assert worker.proc.returncode == 0  # its stdin closed, it exited by itself (not SIGKILLed after the wait: -9)
    assert _gone(pid) and WORKERS.pids() == []


def _held_run(root: Path, backbone: str, mirror: str) -> subprocess.Popen:
    """``muppet run busy``: one fine-tune in a warm worker, held at update 1 until ``root/release`` exists."""
    finetune = {"benchmarks": BENCHMARKS[1:], "seeds": [0], "batch_size": 8, "max_length": 32, "max_train_examples": 16,
                "max_eval_examples": 16, "concurrency": 1, "executor": {"kind": "process", "threads": 1, "warm": True}}
    doc = {"plugins": ["tests.faults.holding"], "pipelines": {"busy": {
        "backbone": backbone, "store": str(root / "store"), "data": {"mirror": mirror}, "finetune": finetune,
        "prefinetune": {"enabled": False, "tasks": BENCHMARKS[1:], "steps": 1},
        "tracking": {"kind": "hold", "paused": str(root / "paused"), "release": str(root / "release")},
    }}}
    (root / "pipelines.yaml").write_text(yaml.safe_dump(doc))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(root / "prefect"), MUPPET_CACHE=str(root / "cache"))
    return subprocess.Popen([sys.executable, "-m", "flows.cli", "run", "busy", "--config", str(root / "pipelines.yaml")], cwd=REPO, env=env,
                            stdout=(root / "run.log").open("w"), stderr=subprocess.STDOUT, start_new_session=True)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_muppet_run_stopped_or_killed_mid_fine_tune_leaves_no_warm_worker(signum, tiny_backbone, mirror, tmp_path, fault_report):
    run = _held_run(tmp_path, tiny_backbone, mirror)
    log = tmp_path / "run.log"
    started: list[psutil.Process] = []  # the run and everything under it, once the fine-tune is held
    try:
        deadline = time.monotonic() + 240
        while not (tmp_path / "paused").exists():
            assert run.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        started += [psutil.Process(run.pid), *psutil.Process(run.pid).children(recursive=True)]
        tree = [p.pid for p in started]
        workers = [pid for pid in tree if psutil.pid_exists(pid) and "--serve" in psutil.Process(pid).cmdline()]
        assert len(workers) == 1, log.read_text()[-3000:]
        sent = time.monotonic()
        os.kill(run.pid, signum)
        run.wait(timeout=60)
        took = time.monotonic() - sent
        if signum == signal.SIGTERM:
            assert run.returncode == 143 and "muppet: stopped by SIGTERM" in log.read_text(), log.read_text()[-3000:]
            assert took < 10.0, f"{took:.1f} s from SIGTERM to exit"
            left = [pid for pid in tree if not _gone(pid, within=2.0)]
            assert left == [], f"processes left after the SIGTERM: {left}"
        else:  # the flow process gone at once: the kernel ends its worker mid-job
            assert run.returncode == -signal.SIGKILL
            assert _gone(workers[0], within=5.0), "the warm worker outlived the SIGKILLed run"
        fault_report("signal", f"{signal.Signals(signum).name} to a `muppet run` (executor: process, warm) held in a fine-tune",
                     f"the run and its warm worker gone {took:.1f} s after the signal")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)  # the run, or what a killed run left in its session
        for process in started:  # and what left the session: Prefect's temporary server, which a SIGKILLed run cannot stop
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()  # psutil refuses a pid reused by another process
