"""The fault tests' kill switch: a training-loop callback that SIGKILLs its own process in the
middle of a chosen update (after a micro-batch's backward pass, before the optimizer steps), as an
out-of-memory kill or a lost node would. Installed through ``CallbackSpec`` only by these tests."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from muppet_core.callbacks import Callback, CallbackSpec


class KillSwitch(Callback):
    """SIGKILL this process during update ``update`` (1-based).

    Args:
        update: the update to die in.
        once: a file marking that a process already died here: with it, the switch kills only
            the first process that reaches the update (the file is created just before the kill).
    """

    def __init__(self, update: int, once: str | None = None):
        self.update, self.once = update, once

    def on_backward(self, step: int) -> None:
        if step + 1 != self.update:
            return
        if self.once:
            if Path(self.once).exists():
                return
            Path(self.once).touch()
        os.kill(os.getpid(), signal.SIGKILL)


def kill_at(update: int, once: str | None = None) -> CallbackSpec:
    """The spec that installs a ``KillSwitch`` for ``update`` (only once with a ``once`` file) where the loop runs."""
    return CallbackSpec(target=f"{__name__}:KillSwitch", options={"update": update, "once": once})


class Pause(Callback):
    """Hold every rank at the start of update ``update`` (after the micro-batch's backward pass)
    until the file ``release`` exists: the test then kills what it wants at a known point. Once
    ``release`` exists the switch holds nothing, so the run started again goes straight through.

    Args:
        update: the update to hold in (1-based).
        paused: a file created when a rank is held.
        release: the file that lets the held ranks go on.
        timeout_s: the longest a rank is held.
    """

    def __init__(self, update: int, paused: str, release: str, timeout_s: float = 300.0):
        self.update, self.paused, self.release, self.timeout_s = update, Path(paused), Path(release), timeout_s

    def on_backward(self, step: int) -> None:
        if step + 1 != self.update or self.release.exists():
            return
        self.paused.touch()
        deadline = time.monotonic() + self.timeout_s
        while not self.release.exists() and time.monotonic() < deadline:
            time.sleep(0.2)


def pause_at(update: int, paused: str, release: str) -> CallbackSpec:
    """The spec that installs a ``Pause`` for ``update`` on every rank."""
    return CallbackSpec(target=f"{__name__}:Pause", options={"update": update, "paused": paused, "release": release})
