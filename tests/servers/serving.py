"""`muppet serve` as the tests start it: wait until it serves a deployment, stop it with its server."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest


def wait_for_deployment(
    api: str, name: str, serve: subprocess.Popen, log: Path, timeout: float = 180, headers: Callable[[], dict | None] = lambda: None,
) -> None:
    """Until the server at ``api`` holds the deployment ``name``; fails with the serving log when
    ``serve`` exits or ``timeout`` passes first. ``headers`` gives each request's headers, read
    again every time (a server with auth writes its auth string once it has started)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{api}/deployments/name/{name}", headers=headers(), timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if serve.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"`muppet serve --with-server` did not serve {name}:\n{log.read_text()[-3000:]}")
        time.sleep(1)


def stop_serving(serve: subprocess.Popen) -> None:
    """SIGTERM to the serving process's group (serve stops the server it started), SIGKILL after 60 s."""
    if serve.poll() is None:
        os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
