"""Turning tracking on and off, the tracker kinds, and holding mlflow off where nothing is tracked."""

from __future__ import annotations

import sys

import pytest

from muppet_core.callbacks import build_stage_callbacks
from muppet_core.config import MlflowTracking, PipelineConfig, TrackingConfig, parse_pipelines
from muppet_core.errors import ConfigError
from muppet_core.schema import EXECUTION, key_role
from muppet_core.tracking import MlflowTracker, flatten, open_tracker, tracker_class, without_mlflow

PIPELINE = {"backbone": "x", "prefinetune": {"tasks": ["snli"], "steps": 1}, "finetune": {"benchmarks": ["rte"]}}


def tracking_of(section) -> TrackingConfig:
    return parse_pipelines({"pipelines": {"demo": {**PIPELINE, "tracking": section}}}).pipelines["demo"].tracking


def test_the_mlflow_fields_parse_as_before_and_mlflow_is_the_default_kind():
    assert PipelineConfig.model_validate(PIPELINE).tracking == MlflowTracking()
    assert tracking_of({"mlflow_uri": "http://mlflow:5000", "experiment": "study"}) == MlflowTracking(mlflow_uri="http://mlflow:5000", experiment="study")
    assert tracking_of({"kind": "mlflow"}) == MlflowTracking()
    assert tracker_class(MlflowTracking()) is MlflowTracker


def test_an_unknown_tracker_kind_or_key_is_refused_in_one_line_each():
    with pytest.raises(ConfigError) as err:
        tracking_of({"kind": "mlfow"})
    assert err.value.problems == ["pipelines.demo.tracking: unknown tracker 'mlfow' (did you mean 'mlflow'?); the trackers are mlflow"]
    with pytest.raises(ConfigError) as err:
        tracking_of({"mlfow_uri": "http://mlflow:5000"})
    assert err.value.problems == ["pipelines.demo.tracking.mlfow_uri: unknown key (did you mean 'mlflow_uri'?)"]


def test_tracking_is_off_unless_a_uri_is_given(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert open_tracker(MlflowTracking(), "demo", "run-1") is None
    # URIs that are not http(s) are not asked for their health (an http server is, below)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////srv/mlflow.db")
    assert MlflowTracker.server(MlflowTracking()) == "sqlite:////srv/mlflow.db"
    assert MlflowTracker.server(MlflowTracking(mlflow_uri="file:///srv/mlruns")) == "file:///srv/mlruns"


def test_a_tracker_travels_as_a_stage_callback_of_plain_values():
    tracker = MlflowTracker("http://mlflow:5000", "muppet-demo", "7", "demo", "run-1", "parent-run")
    spec = tracker.spec()
    assert spec.stage and spec.model_validate_json(spec.model_dump_json()) == spec  # a flow parameter, a job file's field
    (rebuilt,) = build_stage_callbacks([spec])
    assert isinstance(rebuilt, MlflowTracker) and rebuilt.options() == tracker.options() and rebuilt.loop_callbacks() == []


def test_tracking_is_an_execution_setting():
    assert key_role(PipelineConfig, "tracking") == EXECUTION


def test_settings_become_flat_params():
    assert flatten({"steps": 3, "tasks": ["snli", "rte"], "mixing": {"loss_scaling": True}}) == {
        "steps": "3", "tasks": "snli,rte", "mixing.loss_scaling": "True",
    }


def test_without_mlflow_makes_a_library_import_fail_and_restores_after(monkeypatch):
    monkeypatch.delitem(sys.modules, "mlflow", raising=False)
    with without_mlflow():
        with pytest.raises(ImportError):
            import mlflow  # noqa: F401  (what DeepSpeed's autotuner does at import time)
    assert "mlflow" not in sys.modules


def test_a_tracking_server_that_does_not_answer_is_refused_before_any_work():
    from muppet_core.tracking import TrackingError
    from tests.servers.seaweed import free_ports

    (port,) = free_ports(1)
    with pytest.raises(TrackingError) as caught:
        open_tracker(MlflowTracking(mlflow_uri=f"http://127.0.0.1:{port}"), "demo", "run-1")
    message = str(caught.value)
    assert "\n" not in message and f"http://127.0.0.1:{port} does not answer" in message and "MLFLOW_TRACKING_URI" in message
