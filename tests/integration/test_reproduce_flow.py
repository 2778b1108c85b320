"""The whole muppet-reproduce flow on a tiny random 2-layer BERT under the Prefect test harness."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from muppet_core.artifacts.store import MANIFEST

PRETRAIN_TASKS = ["rotten_tomatoes", "snli", "commonsenseqa", "squad"]
BENCHMARKS = ["sst2", "rte"]


def write_pipeline(path: Path, backbone: str, mirror: str, store: Path, seeds: list[int]) -> Path:
    doc = {
        "pipelines": {
            "tiny": {
                "description": "2-layer random BERT, four families, two benchmarks",
                "backbone": backbone,
                "store": str(store),
                "data": {"mirror": mirror},
                "prefinetune": {"tasks": PRETRAIN_TASKS, "steps": 3, "micro_batch_size": 4, "tasks_per_step": 3, "max_length": 64, "max_train_examples": 64},
                "finetune": {"benchmarks": BENCHMARKS, "seeds": seeds, "batch_size": 8, "max_length": 64, "max_train_examples": 32, "max_eval_examples": 40, "concurrency": 2},
            }
        }
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def artifact_keys(store: Path, stage: str) -> dict[str, float]:
    """Complete artifacts of a stage, with their manifests' modification times."""
    return {p.parent.name: p.stat().st_mtime_ns for p in (store / stage).glob(f"*/{MANIFEST}")}


@pytest.fixture(scope="module")
def first_run(prefect_harness, tiny_backbone, mirror, tmp_path_factory):
    from flows.reproduce import reproduce

    root = tmp_path_factory.mktemp("tiny-pipeline")
    config = write_pipeline(root / "pipelines.yaml", tiny_backbone, mirror, root / "store", seeds=[0])
    csv_uri = reproduce(pipeline="tiny", config=str(config))
    return root, config, csv_uri


def test_every_stage_wrote_its_artifact(first_run):
    root, _, csv_uri = first_run
    store = root / "store"
    assert len(artifact_keys(store, "data")) == len(PRETRAIN_TASKS) + len(BENCHMARKS)
    (pft,) = artifact_keys(store, "prefinetune")
    pft_dir = store / "prefinetune" / pft
    assert (pft_dir / "encoder" / "model.safetensors").is_file()
    assert set(json.loads((pft_dir / "heads.json").read_text())) == {"rotten_tomatoes", "snli", "ranking", "span"}
    summary = json.loads((pft_dir / "train_summary.json").read_text())
    assert summary["summary"]["steps"] == 3 and summary["summary"]["examples_seen"] == 3 * 3 * 4
    records = [json.loads(p.read_text()) for p in (store / "finetune").glob("*/record.json")]
    assert sorted((r["variant"], r["benchmark"]) for r in records) == sorted(
        (v, b) for v in ("base", "prefinetuned") for b in BENCHMARKS
    )
    assert all(r["eval_examples"] == 40 and r["train_examples"] == 32 for r in records)
    assert csv_uri == f"{store}/pipelines/tiny/leaderboard.csv"


def test_leaderboard_csv_holds_the_result_records(first_run):
    root, _, csv_uri = first_run
    table = pd.read_csv(csv_uri, index_col="variant")
    assert list(table.index) == ["base", "prefinetuned"]
    assert list(table.columns) == [*BENCHMARKS, "average"]
    records = [json.loads(p.read_text()) for p in (root / "store" / "finetune").glob("*/record.json")]
    for r in records:
        assert math.isclose(table.loc[r["variant"], r["benchmark"]], r["metrics"]["accuracy"], abs_tol=1e-6)
        assert 0.0 <= r["metrics"]["accuracy"] <= 1.0
    assert math.isclose(table.loc["base", "average"], table.loc["base", BENCHMARKS].mean(), abs_tol=1e-6)


def test_rerun_is_served_from_the_store_and_a_new_seed_computes_only_its_runs(first_run, tiny_backbone, mirror):
    from flows.reproduce import reproduce

    root, config, _ = first_run
    store = root / "store"
    before = {stage: artifact_keys(store, stage) for stage in ("data", "prefinetune", "finetune")}
    reproduce(pipeline="tiny", config=str(config))
    assert {stage: artifact_keys(store, stage) for stage in before} == before

    write_pipeline(config, tiny_backbone, mirror, store, seeds=[0, 1])
    reproduce(pipeline="tiny", config=str(config))
    after = {stage: artifact_keys(store, stage) for stage in before}
    assert after["data"] == before["data"] and after["prefinetune"] == before["prefinetune"]
    assert {k: after["finetune"][k] for k in before["finetune"]} == before["finetune"]
    new = set(after["finetune"]) - set(before["finetune"])
    assert len(new) == 2 * len(BENCHMARKS)
    assert {json.loads((store / "finetune" / k / "record.json").read_text())["seed"] for k in new} == {1}


def test_results_command_prints_the_published_tables(first_run):
    import io
    import subprocess
    import sys

    root, config, csv_uri = first_run
    run = lambda *a: subprocess.run([sys.executable, "-m", "muppet_core.cli", "results", "tiny", "--config", str(config), *a], capture_output=True, text=True, timeout=120)  # noqa: E731
    csv = run("--format", "csv")
    assert csv.returncode == 0, csv.stderr
    assert pd.read_csv(io.StringIO(csv.stdout), index_col="variant").equals(pd.read_csv(csv_uri, index_col="variant"))
    md = run("--format", "md")
    assert "| base |" in md.stdout and "| prefinetuned |" in md.stdout
    out = root / "table.json"
    assert run("--format", "json", "--output", str(out)).returncode == 0
    assert [row["variant"] for row in json.loads(out.read_text())] == ["base", "prefinetuned"]
