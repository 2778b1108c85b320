"""A plugin for the tests that need a run busy with a fine-tune for as long as they like: the
tracker ``hold`` (``tracking: {kind: hold, paused: FILE, release: FILE, only: TEXT}``) installs the kill
switch's ``Pause`` in the loop of each fine-tune whose name holds ``only``, so a ``muppet run`` that
names this module in ``plugins:`` holds its fine-tune slot at update 1 until the test creates ``release``."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from muppet_core.callbacks import CallbackSpec
from muppet_core.config import TRACKERS, TrackingConfig, register_tracker
from muppet_core.tracking import Tracker
from tests.faults.killswitch import pause_at


class HoldTracking(TrackingConfig):
    """The ``hold`` tracker's settings."""

    tracker: ClassVar[str] = f"{__name__}:HoldTracker"
    kind: Literal["hold"] = "hold"
    paused: str
    """The file created when a fine-tune is held."""
    release: str
    """The file that lets it go on."""
    only: str = ""
    """Hold only the fine-tunes whose name holds this (``seed1``; empty: every one)."""


class HoldTracker(Tracker):
    """Holds every fine-tune at update 1 until ``release`` exists."""

    def __init__(self, paused: str, release: str, only: str = ""):
        self.paused, self.release, self.only, self.held = paused, release, only, False

    @classmethod
    def open(cls, settings: HoldTracking, pipeline: str, flow_run: str) -> HoldTracker:
        return cls(settings.paused, settings.release, settings.only)

    def options(self) -> dict[str, Any]:
        return {"paused": self.paused, "release": self.release, "only": self.only}

    def on_stage_start(self, name: str, key: str, settings: dict[str, Any]) -> None:
        self.held = name.startswith("fine-tune ") and self.only in name

    def loop_callbacks(self) -> list[CallbackSpec]:
        return [pause_at(1, self.paused, self.release)] if self.held else []


if "hold" not in TRACKERS:
    register_tracker(HoldTracking)
