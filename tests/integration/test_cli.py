"""The `muppet` command as a user runs it: clear one-line errors, results from the store."""

from __future__ import annotations

import subprocess
import sys

import yaml

from tests.conftest import REPO


def muppet(*args: str, env: dict | None = None, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_validate_accepts_the_repository_file():
    result = muppet("validate")
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_unknown_pipeline_exits_non_zero_with_one_line():
    result = muppet("run", "nosuch")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "no pipeline named 'nosuch'" in lines[0]


def test_misspelled_key_exits_non_zero_with_one_line(tmp_path):
    doc = yaml.safe_load((REPO / "pipelines.yaml").read_text())
    doc["pipelines"]["demo"]["prefinetune"]["stpes"] = doc["pipelines"]["demo"]["prefinetune"].pop("steps")
    bad = tmp_path / "pipelines.yaml"
    bad.write_text(yaml.safe_dump(doc))
    for args in (("validate", str(bad)), ("run", "demo", "--config", str(bad))):
        result = muppet(*args)
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr  # the missing 'steps' is explained by the misspelling
        assert lines[0] == "muppet: error: pipelines.yaml: pipelines.demo.prefinetune.stpes: unknown key (did you mean 'steps'?)"


def test_dataset_missing_everywhere_stops_before_any_work(tmp_path):
    import os

    env = {**os.environ, "MUPPET_DATA_MIRROR": str(tmp_path / "empty"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "MUPPET_STORE": str(tmp_path / "store")}
    result = muppet("run", "demo", env=env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("muppet: error: dataset '") and "MUPPET_DATA_MIRROR" in lines[0]
    assert not (tmp_path / "store").exists()


def test_results_without_a_run_says_so(tmp_path):
    result = muppet("results", "demo", "--store", str(tmp_path))
    assert result.returncode != 0 and "muppet run demo" in result.stderr


def test_several_nodes_with_a_local_store_stop_before_any_work(tmp_path):
    import os

    doc = yaml.safe_load((REPO / "pipelines.yaml").read_text())
    doc["pipelines"]["demo"]["prefinetune"].update(launcher="torchrun", nnodes=2, rdzv_endpoint="127.0.0.1:29400")
    config = tmp_path / "pipelines.yaml"
    config.write_text(yaml.safe_dump(doc))
    env = {**os.environ, "MUPPET_STORE": str(tmp_path / "store")}
    result = muppet("run", "demo", "--config", str(config), env=env)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("muppet: error: pre-finetuning on 2 nodes (prefinetune.nnodes) needs an artifact store that every machine reaches")
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("MANIFEST.json")), "no work was done"
