"""Progress of long work as a Prefect progress artifact, so the UI shows it beside the run."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from muppet_core.errors import first_line

log = logging.getLogger(__name__)


class Progress:
    """A progress artifact of the current flow run, created at the first report (work taken from
    the store reports nothing) and updated at most every ``every_seconds``, always at the end.

    Args:
        describe: the artifact's description for (done, total), e.g. ``"37 of 54 fine-tunes"``.
        every_seconds: shortest interval between updates before the last.
    """

    def __init__(self, describe: Callable[[int, int], str], every_seconds: float = 1.0):
        self.describe, self.every_seconds = describe, every_seconds
        self.artifact = None
        self.sent = float("-inf")
        self.lock = threading.Lock()

    def __call__(self, done: int, total: int) -> None:
        """Report ``done`` of ``total``."""
        percent = 100.0 * done / total if total else 100.0
        with self.lock:
            if self.artifact is not None and done < total and time.monotonic() - self.sent < self.every_seconds:
                return
            try:
                if self.artifact is None:
                    self.artifact = create_progress_artifact(percent, description=self.describe(done, total))
                else:
                    update_progress_artifact(self.artifact, percent, description=self.describe(done, total))
            except Exception as exc:  # a progress report never stops the work
                log.warning("progress artifact not updated: %s", first_line(exc))
            self.sent = time.monotonic()
