"""The production database: `muppet serve --with-server --database-url postgresql+asyncpg://...`
starts the Prefect server on PostgreSQL (a fresh database of the test server) and serves the
tiny demo-style pipeline; `prefect deployment run ... --watch`, as an operator types it, runs it to
the end, and its leaderboard artifact is on the server, whose records are in PostgreSQL.

The pipeline's store starts as a copy of the session's tiny run, so the run takes its training stages
from the store and the test spends its time on the server and its database, not on training (the
deployment executor's test trains through a PostgreSQL server)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from muppet_core.models.labels import backbone_label
from tests.conftest import REPO
from tests.integration.conftest import BENCHMARKS, write_pipeline
from tests.servers.postgres import count_rows, prefect_url
from tests.servers.seaweed import free_ports
from tests.servers.serving import stop_serving, wait_for_deployment

PIPELINE = "demo"


def test_serve_with_a_postgres_server_runs_the_demo_deployment_from_the_cli(postgres, first_run, tiny_backbone, mirror, tmp_path):
    database = postgres()
    shutil.copytree(first_run[0] / "store", tmp_path / "store")  # every training stage of the run is in the store
    config = write_pipeline(tmp_path / "pipelines.yaml", tiny_backbone, mirror, tmp_path / "store", seeds=[0], name=PIPELINE)
    port = free_ports(1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), MUPPET_CACHE=str(tmp_path / "cache"))
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        serve = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "serve", PIPELINE, "--with-server", "--port", str(port), "--no-auth",
             "--database-url", prefect_url(database), "--config", str(config), "--server-log", str(tmp_path / "server.log")],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    api = f"http://127.0.0.1:{port}/api"
    try:
        wait_for_deployment(api, f"muppet-reproduce/{PIPELINE}", serve, log)
        done = subprocess.run(
            [str(Path(sys.executable).with_name("prefect")), "deployment", "run", f"muppet-reproduce/{PIPELINE}", "--watch", "--watch-timeout", "600"],
            cwd=REPO, env={**env, "PREFECT_API_URL": api}, capture_output=True, text=True, timeout=660,
        )
        assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}\n{log.read_text()[-3000:]}"
        run_id = re.search(r"UUID: ([0-9a-f-]{36})", done.stdout).group(1)
        run = httpx.get(f"{api}/flow_runs/{run_id}", timeout=10).json()
        assert run["state"]["type"] == "COMPLETED"
        (table,) = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"key": {"any_": [f"leaderboard-{PIPELINE}-table"]}}}, timeout=10).json()
        assert table["type"] == "table"
        leaderboard_run = httpx.get(f"{api}/flow_runs/{table['flow_run_id']}", timeout=10).json()  # the run's leaderboard subflow
        assert httpx.get(f"{api}/task_runs/{leaderboard_run['parent_task_run_id']}", timeout=10).json()["flow_run_id"] == run_id
        rows = json.loads(table["data"])
        label = backbone_label(tiny_backbone)
        assert {f"{label} / base", f"{label} / prefinetuned"} <= {row["model"] for row in rows}
        assert all(any(column.startswith(b) for column in rows[0]) for b in BENCHMARKS)
    finally:
        stop_serving(serve)
    # the server kept its records in PostgreSQL: the run, and the artifact beside it
    assert asyncio.run(count_rows(database, "flow_run")) >= 1
    assert asyncio.run(count_rows(database, "artifact")) >= 1
    assert "postgresql+asyncpg://" in log.read_text() and (tmp_path / "store" / "pipelines" / PIPELINE / "leaderboard.csv").is_file()
