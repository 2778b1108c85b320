"""`muppet plan` as a user runs it: the paper's pipeline offline, as JSON and as tables; a wrong argument is one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

OFFLINE = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0", "MUPPET_DATA_MIRROR": "", "MUPPET_BENCH_RESULTS": "/nonexistent"}


def _plan(*args: str, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, **OFFLINE}
    return subprocess.run([sys.executable, "-m", "flows.cli", "plan", *args, "--config", str(REPO / "pipelines.paper.yaml"),
                           "--store", str(tmp_path / "store")], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_the_plan_of_paper_large_on_64_h100s_offline(tmp_path):
    done = _plan("paper-large", "--gpus", "64", "--gpu", "h100", "--json", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert (plan["gpus"], plan["device"]["kind"], plan["device"]["mfu"]) == (64, "h100", 0.3)
    assert "ASSUMED" in plan["device"]["rate_source"]
    work = plan["prefinetune"]["work"]
    assert plan["prefinetune"]["examples"] == 50000 * 64 * 8 and work["flops"] > 1e19
    assert work["wall_s"] == pytest.approx(work["gpu_hours"] * 3600 / 64)
    assert plan["prefinetune"]["memory"]["fits"] is True
    # Offline and without a mirror no dataset's rows are known, and each says why.
    assert all(d["rows"] is None and "the hub is not reachable (127.0.0.1 did not answer" in d["source"] for d in plan["datasets"])
    assert plan["finetune"]["count"] == 2 * 16 * 5 * 3 and plan["gpu_hours"] is None


def test_the_plan_as_tables_and_a_wrong_kind_in_one_line(tmp_path):
    done = _plan("paper-bart", "--gpus", "64", "--gpu", "h100", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# Plan of `paper-bart`: 64 x h100") and "| pre-finetune | 53 datasets, 50000 updates" in done.stdout
    wrong = _plan("paper-bart", "--gpu", "h10", tmp_path=tmp_path)
    assert (wrong.returncode, wrong.stdout) == (2, "")
    assert wrong.stderr == "muppet: error: unknown GPU kind 'h10' (did you mean 'h100'?); known: h100, h200, a100, v100, cpu\n"
