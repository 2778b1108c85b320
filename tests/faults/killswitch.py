"""The fault tests' kill switch: a training-loop callback that SIGKILLs its own process in the
middle of a chosen update (after a micro-batch's backward pass, before the optimizer steps), as an
out-of-memory kill or a lost node would. Installed through ``CallbackSpec`` only by these tests."""

from __future__ import annotations

import os
import signal

from muppet_core.training.callbacks import Callback, CallbackSpec


class KillSwitch(Callback):
    """SIGKILL this process during update ``update`` (1-based).

    Args:
        update: the update to die in.
    """

    def __init__(self, update: int):
        self.update = update

    def on_backward(self, step: int) -> None:
        if step + 1 == self.update:
            os.kill(os.getpid(), signal.SIGKILL)


def kill_at(update: int) -> CallbackSpec:
    """The spec that installs a ``KillSwitch`` for ``update`` where the loop runs."""
    return CallbackSpec(target=f"{__name__}:KillSwitch", options={"update": update})
