"""The Prefect server killed and restarted in the middle of a run: the stages finished before the
restart stay in the store, and re-triggering the pipeline completes from them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import yaml

from muppet_core.server import LocalServer
from tests.conftest import REPO
from tests.integration.conftest import artifact_keys
from tests.servers.process import free_ports


def test_a_run_survives_a_prefect_server_restart(tmp_path, tiny_backbone, mirror, fault_report):
    store = tmp_path / "store"
    config = tmp_path / "pipelines.yaml"
    config.write_text(yaml.safe_dump({"pipelines": {"restart": {
        "backbone": tiny_backbone, "store": str(store), "data": {"mirror": mirror},
        "prefinetune": {"tasks": ["rotten_tomatoes", "trec"], "steps": 2, "micro_batch_size": 4, "tasks_per_step": 2,
                        "max_length": 32, "max_train_examples": 32, "engine": "torch"},
        "finetune": {"benchmarks": ["rte"], "batch_size": 8, "max_length": 32, "max_train_examples": 16, "max_eval_examples": 16},
    }}}))
    server = LocalServer(free_ports(1)[0], home=tmp_path / "prefect", log=tmp_path / "server.log").start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(server.environment(), MUPPET_CACHE=str(tmp_path / "cache"))
    command = [sys.executable, "-m", "flows.cli", "run", "restart", "--config", str(config)]
    try:
        first = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 240
        while not artifact_keys(store, "data") and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert first.poll() is None, "the run ended before the restart could be injected"
        server.stop(kill=True)  # SIGKILL, mid-run
        finished_before = {stage: artifact_keys(store, stage) for stage in ("data", "prefinetune", "finetune")}
        time.sleep(2)
        server.start()  # same port, same database
        first_out, _ = first.communicate(timeout=600)
        first_outcome = "completed" if first.returncode == 0 else f"failed (exit {first.returncode})"

        again = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        after = {stage: artifact_keys(store, stage) for stage in finished_before}
        for stage, artifacts in finished_before.items():  # nothing finished before the restart was redone
            assert {k: after[stage][k] for k in artifacts} == artifacts, stage
        assert (store / "pipelines" / "restart" / "leaderboard.csv").is_file()
        assert len(after["finetune"]) == 2 and len(after["prefinetune"]) == 1
        if first.returncode == 0:  # the first run rode out the restart: the second took everything from the store
            said = again.stdout + again.stderr  # a stage line reads 'computed   data/...'; a leaderboard row 'cached (computed in run ...)'
            assert not re.search(r"\bcomputed\s{2,}\w", said) and ": computed" not in said and "cache hit" in said
    finally:
        server.stop()
    kept = sum(len(a) for a in finished_before.values())
    fault_report(
        "fault",
        "Prefect server SIGKILLed while a run was preparing data, restarted 2 s later on the same database",
        f"the running flow {first_outcome}; {kept} artifact(s) finished before the kill were kept; "
        "re-triggering completed and took them from the store",
    )
