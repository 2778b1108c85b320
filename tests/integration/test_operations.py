"""Operating muppet as an operator does: `muppet serve --with-server --database-url postgresql+asyncpg://...`
starts a real Prefect server on the production database (a fresh PostgreSQL database of the test
server) and serves the deployments, `prefect deployment run` triggers one, the API shows the finished
run and its leaderboard artifact, whose records are in PostgreSQL, and headless Chromium (Playwright)
renders the run and the artifact in the UI.

The served pipeline watches a list file naming a second backbone; its backbone was evaluated
before (the store starts as a copy of the session's tiny run), so the run computes the new backbone
only, and the leaderboard and its history hold both.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from muppet_core.models.labels import backbone_label
from muppet_core.models.tiny import save_tiny_bert
from tests.browser import chromium, new_page, screenshot, shows
from tests.conftest import REPO
from tests.integration.conftest import BENCHMARKS, PRETRAIN_TASKS, artifact_keys, write_pipeline
from tests.servers.postgres import count_rows, prefect_url
from tests.servers.process import free_ports
from tests.servers.serving import stop_serving, wait_for_deployment

PIPELINE = "ops"
SCHEDULE = "0 3 1 1 *"  # registered on the deployment, never due while the test runs


@pytest.fixture(scope="module")
def database(postgres) -> str:
    """The fresh PostgreSQL database the served Prefect server keeps its records in."""
    return postgres()


@pytest.fixture(scope="module")
def served(first_run, tiny_backbone, mirror, database, tmp_path_factory):
    """`muppet serve --with-server` on PostgreSQL and a free port, serving the `ops` pipeline: (root, api url, ui url, env)."""
    root = tmp_path_factory.mktemp("operations")
    shutil.copytree(first_run[0] / "store", root / "store")  # the tiny backbone, evaluated before
    new = save_tiny_bert(root / "second-bert", seed=1)  # the watch list's new backbone: other weights, the same tokenizer
    (root / "backbones.txt").write_text(f"# backbones re-evaluated on schedule\n{new}\n")
    config = write_pipeline(root / "pipelines.yaml", tiny_backbone, mirror, root / "store", seeds=[0], name=PIPELINE)
    doc = yaml.safe_load(config.read_text())
    doc["pipelines"][PIPELINE].update(schedule=SCHEDULE, watch={"list_file": "backbones.txt"})
    config.write_text(yaml.safe_dump(doc))

    port = free_ports(1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(root / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false", MUPPET_CACHE=str(root / "cache"))
    log = open(root / "serve.log", "w")
    serve = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "serve", PIPELINE, "--with-server", "--port", str(port), "--no-auth",  # auth: test_server_auth.py
         "--database-url", prefect_url(database), "--config", str(config), "--server-log", str(root / "server.log")],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        wait_for_deployment(api, f"muppet-reproduce/{PIPELINE}", serve, root / "serve.log")
        yield root, api, f"http://127.0.0.1:{port}", {**env, "PREFECT_API_URL": api}
    finally:
        stop_serving(serve)  # serve pauses its schedules and stops the server it started
        log.close()


@pytest.fixture(scope="module")
def triggered(served):
    """`prefect deployment run muppet-reproduce/ops --watch`, as an operator types it: the run's id,
    and the store's artifacts before and after."""
    root, api, _, env = served
    store = root / "store"
    before = {stage: artifact_keys(store, stage) for stage in ("data", "prefinetune", "finetune")}
    started = time.monotonic()
    done = subprocess.run(
        [str(Path(sys.executable).with_name("prefect")), "deployment", "run", f"muppet-reproduce/{PIPELINE}", "--watch", "--watch-timeout", "900"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=960,
    )
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}\n{(root / 'serve.log').read_text()[-3000:]}"
    run_id = re.search(r"UUID: ([0-9a-f-]{36})", done.stdout).group(1)
    run = httpx.get(f"{api}/flow_runs/{run_id}", timeout=10).json()
    after = {stage: artifact_keys(store, stage) for stage in before}
    return run, before, after, time.monotonic() - started


def test_the_deployment_has_a_typed_run_form_and_the_pipelines_schedule(served):
    _, api, _, _ = served
    deployment = httpx.get(f"{api}/deployments/name/muppet-reproduce/{PIPELINE}", timeout=10).json()
    schema = deployment["parameter_openapi_schema"]["properties"]
    assert schema["pipeline"]["type"] == "string" and "pipelines.yaml" in schema["pipeline"]["description"]
    assert schema["finetune"]["type"] == "boolean"
    assert {"type": "array", "items": {"type": "string"}} in schema["backbones"]["anyOf"]
    assert {"type": "boolean"} in schema["prefinetune"]["anyOf"] and {"type": "string"} in schema["store"]["anyOf"]
    assert deployment["parameters"]["pipeline"] == PIPELINE
    assert [s["schedule"]["cron"] for s in deployment["schedules"]] == [SCHEDULE]


def test_a_run_triggered_from_the_cli_completes_and_computes_only_the_new_backbone(served, triggered, tiny_backbone):
    root, api, _, _ = served
    run, before, after, _ = triggered
    assert run["state"]["type"] == "COMPLETED"
    # the tiny backbone's artifacts were all taken from the store ...
    for stage in before:
        assert {k: after[stage][k] for k in before[stage]} == before[stage], stage
    # ... and only the second backbone's were computed: its datasets, one pre-finetune, its fine-tunes
    assert len(after["data"]) - len(before["data"]) == len(PRETRAIN_TASKS) + len(BENCHMARKS)
    assert len(after["prefinetune"]) - len(before["prefinetune"]) == 1
    new = [json.loads((root / "store" / "finetune" / k / "record.json").read_text()) for k in set(after["finetune"]) - set(before["finetune"])]
    assert sorted((r["backbone"], r["variant"], r["benchmark"]) for r in new) == sorted(
        ("second-bert", v, b) for v in ("base", "prefinetuned") for b in BENCHMARKS
    )
    # the leaderboard and its history hold both backbones
    labels = {backbone_label(tiny_backbone), "second-bert"}
    board = json.loads((root / "store" / "pipelines" / PIPELINE / "leaderboard.json").read_text())
    assert {row["backbone"] for row in board["rows"]} == labels
    (entry,) = [json.loads(p.read_text()) for p in (root / "store" / "pipelines" / PIPELINE / "history").glob("*.json")]
    assert entry["run"] == run["id"] and {row["backbone"] for row in entry["board"]["rows"]} == labels


def test_the_leaderboard_artifact_is_on_the_server_in_postgresql_and_renders_in_the_ui(served, triggered, database, tiny_backbone):
    _, api, ui, _ = served
    run = triggered[0]
    artifacts = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"key": {"any_": [f"leaderboard-{PIPELINE}-table"]}}}, timeout=10).json()
    (table,) = artifacts
    assert table["type"] == "table"
    # the server keeps its records in PostgreSQL: the run, and the artifact beside it
    assert "postgresql+asyncpg://" in (served[0] / "serve.log").read_text()
    assert asyncio.run(count_rows(database, "flow_run")) >= 1 and asyncio.run(count_rows(database, "artifact")) >= 1
    leaderboard_run = httpx.get(f"{api}/flow_runs/{table['flow_run_id']}", timeout=10).json()  # the run's leaderboard subflow
    parent = httpx.get(f"{api}/task_runs/{leaderboard_run['parent_task_run_id']}", timeout=10).json()
    assert parent["flow_run_id"] == run["id"]
    models = [row["model"] for row in json.loads(table["data"])]
    label = backbone_label(tiny_backbone)
    assert {f"{label} / base", f"{label} / prefinetuned", "second-bert / base", "second-bert / prefinetuned"} <= set(models)

    with chromium() as browser:
        page = new_page(browser)
        page.goto(f"{ui}/runs/flow-run/{run['id']}")
        shows(page, run["name"], "muppet-reproduce", "Completed")
        run_page = screenshot(page, "flow-run")
        (markdown,) = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"key": {"any_": [f"leaderboard-{PIPELINE}"]}}}, timeout=10).json()
        page.goto(f"{ui}/artifacts/artifact/{markdown['id']}")
        shows(page, f"Leaderboard: {PIPELINE}")
        artifact_page = screenshot(page, "leaderboard-artifact")
    assert run["name"] in run_page and "muppet-reproduce" in run_page and "Completed" in run_page
    assert f"Leaderboard: {PIPELINE}" in artifact_page
    for model in ("second-bert / base", "second-bert / prefinetuned", f"{label} / base", f"{label} / prefinetuned"):
        assert model in artifact_page, model


def test_the_plan_artifact_is_published_before_the_leaderboard_and_renders_in_the_ui(served, triggered):
    _, api, ui, _ = served
    run = triggered[0]

    def artifact(key: str) -> dict:
        found = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC"}, timeout=10).json()
        return found[0]  # the latest version: this run's

    plan, board = artifact(f"plan-{PIPELINE}"), artifact(f"leaderboard-{PIPELINE}")
    assert plan["type"] == "markdown" and plan["flow_run_id"] == run["id"]  # published by the run itself, before its stages
    assert plan["created"] < board["created"]
    with chromium() as browser:
        page = new_page(browser)
        page.goto(f"{ui}/artifacts/artifact/{plan['id']}")
        shows(page, "Plan of", "Memory per GPU (pre-finetuning)", "What the store holds")
        plan_page = screenshot(page, "plan-artifact")
    assert re.search(rf"Plan of <code[^>]*>{PIPELINE}</code>: 1 x cpu", plan_page) and "4 fine-tunes (base 2, prefinetuned 2)" in plan_page
