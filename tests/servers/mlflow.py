"""A real MLflow tracking server for tests: `mlflow server` on loopback, on a free port, with a SQLite
backend store and artifacts served through it (the ``mlflow_server`` fixture, one per test module)."""

from __future__ import annotations

import os
import signal
import urllib.request
from collections.abc import Iterator

import pytest

from tests.servers.process import bundled_binary, free_ports, start

STARTUP_SECONDS = 240  # creating the schema and importing the app take a while on a loaded machine


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory) -> Iterator[str]:
    """The tracking URI of a fresh `mlflow server` (SQLite backend, proxied artifacts)."""
    root = tmp_path_factory.mktemp("mlflow")
    (port,) = free_ports(1)
    command = [
        bundled_binary("mlflow", "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts"),
    ]
    uri = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
            return response.status == 200

    # A session of its own: the server's worker processes are stopped with it. No job consumers: a quicker start.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    process = start(command, root / "server.log", healthy, "mlflow server", STARTUP_SECONDS, cwd=root, env=env, start_new_session=True)
    try:
        yield uri
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # nothing to keep: the store is the test's
        process.wait()
