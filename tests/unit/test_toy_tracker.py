"""A tracker defined and registered in this one file (it records what it is given), chosen by a
pipeline's ``tracking: {kind: toy}``, follows a real fine-tune through the stage and loop callbacks:
the stage's start, each update's loss, the final scores; a stage taken from the store tells it
nothing; and a kind nobody registered is refused in one line."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import pytest

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.callbacks import Callback, CallbackSpec
from muppet_core.config import DataConfig, FinetuneConfig, TrackingConfig, parse_pipelines, register_tracker, unregister_tracker
from muppet_core.data.stage import data_stage
from muppet_core.errors import ConfigError
from muppet_core.models.backbone import Variant
from muppet_core.tracking import Tracker, open_tracker
from muppet_core.training.finetune import FinetuneRun, finetune_stage

RECEIVED: list[tuple] = []
"""What every toy tracker and its loop callback were given, in order."""


class ToyTracking(TrackingConfig):
    """The toy tracker's settings."""

    tracker: ClassVar[str] = f"{__name__}:ToyTracker"
    kind: Literal["toy"] = "toy"
    label: str = "toy"
    """A name it records with everything."""


class ToyTracker(Tracker):
    """Records the stage hooks it hears; its loop callback records each update."""

    def __init__(self, label: str, pipeline: str, flow_run: str):
        self.label, self.pipeline, self.flow_run = label, pipeline, flow_run

    @classmethod
    def open(cls, settings: ToyTracking, pipeline: str, flow_run: str) -> ToyTracker:
        RECEIVED.append(("open", settings.label, pipeline, flow_run))
        return cls(settings.label, pipeline, flow_run)

    def options(self) -> dict[str, Any]:
        return {"label": self.label, "pipeline": self.pipeline, "flow_run": self.flow_run}

    def on_stage_start(self, name: str, key: str, settings: dict[str, Any]) -> None:
        RECEIVED.append(("start", self.label, name, key, settings))

    def loop_callbacks(self) -> list[CallbackSpec]:
        return [CallbackSpec(target=f"{__name__}:ToyLoop", options={"label": self.label}, rank_zero=True)]

    def on_stage_end(self, metrics: dict[str, float], error: BaseException | None = None) -> None:
        RECEIVED.append(("end", self.label, metrics, error))

    def close(self, failed: bool = False) -> None:
        RECEIVED.append(("close", self.label, failed))


class ToyLoop(Callback):
    """The toy tracker's loop callback."""

    def __init__(self, label: str):
        self.label = label

    def on_step_end(self, step: int, logs: dict) -> None:
        RECEIVED.append(("update", self.label, step + 1, logs["loss"]))

    def on_train_end(self, summary: dict) -> None:
        RECEIVED.append(("trained", self.label, summary["steps"]))


@pytest.fixture
def toy() -> Iterator[None]:
    register_tracker(ToyTracking)
    RECEIVED.clear()
    try:
        yield
    finally:
        unregister_tracker("toy")


def tracking_of(section: dict) -> TrackingConfig:
    pipeline = {"backbone": "x", "prefinetune": {"tasks": ["snli"], "steps": 1}, "finetune": {"benchmarks": ["rte"]}, "tracking": section}
    return parse_pipelines({"pipelines": {"demo": pipeline}}).pipelines["demo"].tracking


def test_a_registered_tracker_chosen_by_config_hears_a_real_fine_tune(toy, tiny_backbone, mirror, tmp_path):
    settings = tracking_of({"kind": "toy", "label": "mine"})
    assert isinstance(settings, ToyTracking) and settings.label == "mine"
    tracker = open_tracker(settings, "demo", "run-1")
    store = ArtifactStore(str(tmp_path / "store"))
    data = data_stage("rte", DataConfig(mirror=mirror), store)
    config = FinetuneConfig(benchmarks=["rte"], batch_size=8, max_length=48, max_train_examples=24, max_eval_examples=20)
    run = FinetuneRun(Variant("base", "tiny", tiny_backbone), "rte", 0, 3e-5)

    output = finetune_stage("demo", run, data, config, store, [tracker.spec()])
    record = json.loads((store.fetch("finetune", output.key) / "record.json").read_text())
    opened, start, *updates, trained, end = RECEIVED
    assert opened == ("open", "mine", "demo", "run-1")
    assert start[:4] == ("start", "mine", f"fine-tune {run.name}", output.key)
    assert start[4]["benchmark"] == "rte" and start[4]["seed"] == 0 and start[4]["batch_size"] == 8
    assert [u[2] for u in updates] == [1, 2, 3] and all(u[1] == "mine" and math.isfinite(u[3]) for u in updates)  # 24 examples, 8 a batch
    assert trained == ("trained", "mine", 3)
    assert end == ("end", "mine", {"score/accuracy": record["metrics"]["accuracy"], "wall_seconds": record["wall_seconds"]}, None)

    RECEIVED.clear()
    again = finetune_stage("demo", run, data, config, store, [tracker.spec()])
    assert again.cache_hit and RECEIVED == []  # taken from the store: nothing to track


def test_a_tracker_kind_nobody_registered_is_refused_in_one_line():
    with pytest.raises(ConfigError) as err:
        tracking_of({"kind": "toy", "label": "mine"})
    assert err.value.problems == ["pipelines.demo.tracking: unknown tracker 'toy'; the trackers are mlflow"]
