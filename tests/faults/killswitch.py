"""The fault tests' kill switch: a training-loop callback that SIGKILLs its own process in the
middle of a chosen update (after a micro-batch's backward pass, before the optimizer steps), as an
out-of-memory kill or a lost node would. Installed through ``CallbackSpec`` only by these tests."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from muppet_core.training.callbacks import Callback, CallbackSpec


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
