"""Turning tracking on and off, and holding mlflow off where nothing is tracked."""

from __future__ import annotations

import sys

import pytest

from muppet_core.config import PipelineConfig, TrackingConfig
from muppet_core.schema import EXECUTION, key_role
from muppet_core.tracking import Tracker, flatten, pipeline_tracker, without_mlflow


def test_tracking_is_off_unless_a_uri_is_given(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert pipeline_tracker(TrackingConfig(), "demo", "run-1") is None
    # URIs that are not http(s) are not asked for their health (an http server is, below)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////srv/mlflow.db")
    assert pipeline_tracker(TrackingConfig(), "demo", "run-1") == Tracker("sqlite:////srv/mlflow.db", "muppet-demo", "demo", "run-1")
    own = TrackingConfig(mlflow_uri="file:///srv/mlruns", experiment="study")
    assert pipeline_tracker(own, "demo", "run-1") == Tracker("file:///srv/mlruns", "study", "demo", "run-1")


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
        pipeline_tracker(TrackingConfig(mlflow_uri=f"http://127.0.0.1:{port}"), "demo", "run-1")
    message = str(caught.value)
    assert "\n" not in message and f"http://127.0.0.1:{port} does not answer" in message and "MLFLOW_TRACKING_URI" in message
