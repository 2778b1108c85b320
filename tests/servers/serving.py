"""`muppet serve` as the tests start it: wait until it serves a deployment, stop it with its server."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.servers.process import wait_until


def wait_for_deployment(
    api: str, name: str, serve: subprocess.Popen, log: Path, timeout: float = 180, headers: Callable[[], dict | None] = lambda: None,
) -> None:
    """Until the server at ``api`` holds the deployment ``name``; fails with the serving log when
    ``serve`` exits or ``timeout`` passes first. ``headers`` gives each request's headers, read
    again every time (a server with auth writes its auth string once it has started)."""

    def served() -> bool:
        return httpx.get(f"{api}/deployments/name/{name}", headers=headers(), timeout=2).status_code == 200

    wait_until(served, serve, log, f"`muppet serve --with-server` serving {name}", timeout, interval=1)


def stop_serving(serve: subprocess.Popen) -> None:
    """SIGTERM to the serving process's group (serve stops the server it started), SIGKILL after 60 s."""
    if serve.poll() is None:
        os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
