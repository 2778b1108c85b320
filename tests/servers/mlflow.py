"""A real MLflow tracking server for tests: `mlflow server` on loopback, on a free port, with a SQLite
backend store and artifacts served through it (the ``mlflow_server`` fixture, one per test module)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.servers.seaweed import free_ports

STARTUP_SECONDS = 240  # creating the schema and importing the app take a while on a loaded machine


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory) -> Iterator[str]:
    """The tracking URI of a fresh `mlflow server` (SQLite backend, proxied artifacts)."""
    binary = shutil.which("mlflow", path=os.path.dirname(sys.executable)) or shutil.which("mlflow")
    if not binary:
        pytest.fail("the `mlflow` command is missing: install the test extra (pip install -e '.[test]'), which brings mlflow")
    root = tmp_path_factory.mktemp("mlflow")
    (port,) = free_ports(1)
    command = [
        binary, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts"),
    ]
    log = open(root / "server.log", "w")
    # A session of its own: the server's worker processes are stopped with it.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job consumers: a quicker start
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=root, env=env, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_SECONDS
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield uri
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # nothing to keep: the store is the test's
        process.wait()
        log.close()
