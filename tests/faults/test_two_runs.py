"""Two `muppet run`s on one machine without PREFECT_API_URL (issue 29): they share the machine's
fine-tune slots through the Prefect database under PREFECT_HOME. While one run holds the only slot
with a fine-tune, a run whose fine-tunes are all in the store finishes without waiting for it, and
a run with work waits, says who holds the slot, and ends within seconds of a SIGTERM, leaving no
process behind."""

from __future__ import annotations

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

from tests.conftest import REPO
from tests.integration.conftest import BENCHMARKS

SIGTERM_EXIT_S = 10.0


def _pipelines(root: Path, backbone: str, mirror: str) -> Path:
    """``busy`` (one fine-tune, held at update 1 until ``release`` exists), ``warm`` (one fine-tune, put
    in the store by the test) and ``work`` (one fine-tune of its own), all on one store, concurrency 1."""
    finetune = {"benchmarks": BENCHMARKS[1:], "seeds": [0], "batch_size": 8, "max_length": 32, "max_train_examples": 16,
                "max_eval_examples": 16, "concurrency": 1, "executor": "thread"}
    common = {"backbone": backbone, "store": str(root / "store"), "data": {"mirror": mirror},
              "prefinetune": {"enabled": False, "tasks": BENCHMARKS[1:], "steps": 1}}
    hold = {"kind": "hold", "paused": str(root / "paused"), "release": str(root / "release")}
    doc = {"plugins": ["tests.faults.holding"], "pipelines": {
        "busy": {**common, "finetune": {**finetune, "seeds": [1]}, "tracking": hold},
        "warm": {**common, "finetune": finetune},
        "work": {**common, "finetune": {**finetune, "seeds": [2]}},
    }}
    path = root / "pipelines.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _warm(config: Path) -> None:
    """The ``warm`` pipeline's data and fine-tunes into the store, as its flow computes them (same keys), without Prefect."""
    from muppet_core.data.stage import data_stage
    from muppet_core.models.backbone import base_variant
    from muppet_core.pipelines import load_pipeline, open_store
    from muppet_core.training.finetune import finetune_stage, plan_runs

    pipeline = load_pipeline("warm", str(config))
    store = open_store(pipeline)
    base = base_variant(pipeline.backbone, store.cache_dir)
    data = {name: data_stage(name, pipeline.data, store, base) for name in pipeline.data_tasks()}
    for run in plan_runs(pipeline.finetune, [base]):
        assert finetune_stage("warm", run, data[run.benchmark], pipeline.finetune, store).stage == "finetune"


def _start(config: Path, pipeline: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flows.cli", "run", pipeline, "--config", str(config)], cwd=REPO, env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _until(what, process: subprocess.Popen, log: Path, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert process.poll() is None, f"run ended early ({process.returncode}):\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)


@pytest.mark.usefixtures("plugins_undone")
def test_a_warm_run_beside_a_busy_one_and_a_sigterm_to_a_waiting_one(tiny_backbone, mirror, tmp_path, fault_report):
    config = _pipelines(tmp_path, tiny_backbone, mirror)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}  # Prefect's temporary server, as a user runs it
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), MUPPET_CACHE=str(tmp_path / "cache"))
    logs = {name: tmp_path / f"{name}.log" for name in ("busy", "warm", "work")}
    busy = _start(config, "busy", env, logs["busy"])
    runs = [busy]
    try:
        _warm(config)  # while busy starts
        _until((tmp_path / "paused").exists, busy, logs["busy"])  # busy holds the only slot, mid fine-tune

        started = time.monotonic()
        warm = _start(config, "warm", env, logs["warm"])
        work = _start(config, "work", env, logs["work"])
        runs += [warm, work]
        _until(lambda: "waiting for a slot" in logs["work"].read_text(), work, logs["work"])
        tree = [work.pid, *(p.pid for p in psutil.Process(work.pid).children(recursive=True))]
        stopped = time.monotonic()
        os.kill(work.pid, signal.SIGTERM)
        work.wait(timeout=60)
        sigterm_s = time.monotonic() - stopped
        assert warm.wait(timeout=240) == 0, logs["warm"].read_text()[-3000:]
        warm_s = time.monotonic() - started
        assert busy.poll() is None and not (tmp_path / "release").exists()  # warm finished while busy held the slot

        waiting = logs["work"].read_text()
        assert work.returncode == 143 and "muppet: stopped by SIGTERM" in waiting and "Traceback" not in waiting, waiting[-3000:]
        assert re.search(r"waiting for a slot of 'muppet-finetune-on-[^']+' \(1 slot\) for \d+ s, held by pipeline busy .*seed1", waiting)
        assert sigterm_s < SIGTERM_EXIT_S, f"{sigterm_s:.1f} s from SIGTERM to exit"
        left = [pid for pid in tree if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
        assert left == [], f"processes left after the SIGTERM: {left}"
        assert "waiting for a slot" not in logs["warm"].read_text() and "cache hit  finetune/" in logs["warm"].read_text()

        (tmp_path / "release").touch()
        assert busy.wait(timeout=240) == 0, logs["busy"].read_text()[-3000:]
    finally:
        for run in runs:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
    fault_report("signal", "two `muppet run`s without PREFECT_API_URL beside one holding the only fine-tune slot: "
                 "an all-cache-hit run, and a run with work sent SIGTERM while it waited for the slot",
                 f"the cache-hit run finished in {warm_s:.0f} s without a slot; the waiting run named the holder at once "
                 f"and exited {sigterm_s:.1f} s after the SIGTERM (status 143), no process left")
