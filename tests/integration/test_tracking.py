"""What a pipeline run reports beyond the store: MLflow tracking (against a real `mlflow server` with
a SQL backend, read back through MlflowClient) and Prefect progress artifacts (read back through the
Prefect client)."""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import yaml

from tests.integration.conftest import artifact_keys, write_pipeline

TASKS = ["rotten_tomatoes", "snli"]
STEPS = 2


def test_a_run_without_tracking_never_imports_mlflow(first_run):
    # The first test of the module: nothing in this process has tracked anything yet, and the test
    # processes hold mlflow off as an untracked run does (tests/conftest.py); loading it lifts that.
    assert first_run[2].endswith("leaderboard.csv")
    assert "mlflow" in sys.modules and sys.modules["mlflow"] is None


def tracked_pipeline(root: Path, backbone: str, mirror: str, uri: str, data: Path) -> Path:
    """A tiny pipeline (two pre-finetuning tasks on the torch engine, one benchmark) tracked in the
    MLflow server at ``uri``, its store seeded with the prepared datasets of ``data`` (a store)."""
    shutil.copytree(data / "data", root / "store" / "data")
    config = write_pipeline(root / "pipelines.yaml", backbone, mirror, root / "store", seeds=[0], name="tracked")
    doc = yaml.safe_load(config.read_text())
    pipeline = doc["pipelines"]["tracked"]
    pipeline["prefinetune"].update(tasks=TASKS, steps=STEPS, engine="torch")
    pipeline["finetune"]["benchmarks"] = ["sst2"]
    pipeline["tracking"] = {"mlflow_uri": uri}
    config.write_text(yaml.safe_dump(doc))
    return config


def everything_logged(client, experiment_id: str) -> dict:
    """Every run of the experiment with its params, tags and the length of each metric's history."""
    return {
        r.info.run_id: (r.data.params, r.data.tags, {k: len(client.get_metric_history(r.info.run_id, k)) for k in r.data.metrics})
        for r in client.search_runs([experiment_id])
    }


def test_mlflow_tracks_each_computed_stage_under_the_pipeline_run(first_run, tiny_backbone, mirror, tmp_path, mlflow_server):
    from flows.reproduce import reproduce
    from muppet_core.tracking import client as mlflow_client

    config = tracked_pipeline(tmp_path, tiny_backbone, mirror, mlflow_server, first_run[0] / "store")
    store = tmp_path / "store"
    reproduce(pipeline="tracked", config=str(config))
    client = mlflow_client(mlflow_server)
    experiment = client.get_experiment_by_name("muppet-tracked")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 4 and len(children) == 3  # the pipeline run: one pre-finetune, two fine-tunes (base, pre-finetuned)
    assert {r.info.status for r in runs} == {"FINISHED"}
    (history,) = (store / "pipelines" / "tracked" / "history").glob("*.json")
    flow_run = json.loads(history.read_text())["run"]
    assert parent.data.tags["prefect.flow_run_id"] == flow_run
    assert all(c.data.tags["prefect.flow_run_id"] == flow_run for c in children)

    (pft,) = [c for c in children if c.info.run_name.startswith("pre-finetune")]
    (pft_key,) = artifact_keys(store, "prefinetune")
    assert pft.data.tags["muppet.artifact_key"] == pft_key
    assert pft.data.params["tasks"] == ",".join(TASKS) and pft.data.params["steps"] == str(STEPS)
    assert pft.data.params["backbone"] == tiny_backbone and pft.data.params["loss_scaling"] == "True"
    assert "launcher" not in pft.data.params  # execution settings are not the stage's result settings
    trained = json.loads((store / "prefinetune" / pft_key / "history.json").read_text())
    for task in TASKS:  # each task's loss at every update where it was drawn, as the run's own history holds it
        logged = {m.step: m.value for m in client.get_metric_history(pft.info.run_id, f"loss/{task}")}
        assert logged == {h["step"]: h["tasks"][task] for h in trained if task in h["tasks"]} and logged
    assert [m.step for m in client.get_metric_history(pft.info.run_id, "loss")] == list(range(1, STEPS + 1))
    summary = json.loads((store / "prefinetune" / pft_key / "train_summary.json").read_text())["summary"]
    assert math.isclose(pft.data.metrics["examples_per_second"], summary["examples_per_second"], rel_tol=1e-9)

    finetunes = [c for c in children if c is not pft]
    (base,) = [c for c in finetunes if c.data.params["variant"] == "base"]
    # tracking is in no key: the base fine-tune has the key of the untracked run's (same data, settings)
    assert base.data.tags["muppet.artifact_key"] in artifact_keys(first_run[0] / "store", "finetune")
    records = {p.parent.name: json.loads(p.read_text()) for p in (store / "finetune").glob("*/record.json")}
    assert sorted(c.data.params["variant"] for c in finetunes) == ["base", "prefinetuned"]
    for run in finetunes:
        record = records[run.data.tags["muppet.artifact_key"]]
        assert run.data.params["benchmark"] == "sst2" and run.data.params["seed"] == "0" and run.data.params["epochs"] == "1.0"
        assert run.data.metrics["score/accuracy"] == record["metrics"]["accuracy"]
        assert run.data.metrics["examples_per_second"] > 0
        updates = math.ceil(record["train_examples"] / 8)  # batch_size 8
        assert [m.step for m in client.get_metric_history(run.info.run_id, "loss/sst2")] == list(range(1, updates + 1))

    assert {a.path for a in client.list_artifacts(parent.info.run_id)} == {"leaderboard.csv", "leaderboard.png"}
    downloaded = client.download_artifacts(parent.info.run_id, "leaderboard.csv", str(tmp_path))
    assert Path(downloaded).read_text() == (store / "pipelines" / "tracked" / "leaderboard.csv").read_text()

    before = everything_logged(client, experiment.experiment_id)
    reproduce(pipeline="tracked", config=str(config))  # every stage a cache hit
    assert everything_logged(client, experiment.experiment_id) == before


def test_progress_artifacts_reach_100_percent(first_run):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterType, FlowRunFilter, FlowRunFilterParentFlowRunId,
    )

    root = first_run[0]
    history = sorted((root / "store" / "pipelines" / "tiny" / "history").glob("*.json"))
    pipeline_run = json.loads(history[0].read_text())["run"]  # the first entry is the first run's
    with get_client(sync_client=True) as client:
        subflows = client.read_flow_runs(flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[pipeline_run])))
        progress = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[f.id for f in subflows]), type=ArtifactFilterType(any_=["progress"])
            )
        )
    by_description = {a.description: a for a in progress}
    assert set(by_description) == {"4 of 4 fine-tunes", "prefinetuned: update 3 of 3"}
    assert all(float(a.data) == 100.0 for a in progress)
    fanout = by_description["4 of 4 fine-tunes"]
    assert fanout.updated > fanout.created  # created at 0 of 4 before any fine-tune ended, then updated
