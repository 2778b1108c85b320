"""Experiment tracking in MLflow, opt-in: a run for each pipeline run and, nested under it, one run
per pre-finetune and per fine-tune that the pipeline run computes. A stage taken from the store
logs nothing, so a pipeline run that computes nothing creates no run at all.

Each stage's run holds its settings as params, the artifact key and the Prefect flow run as tags,
the loss of each task at every update (from a training callback, on rank 0 only), examples per
second and the final scores; the pipeline's run holds the leaderboard's CSV and chart.

``mlflow`` is imported only where a run is tracked. DeepSpeed imports it whenever it is installed
(its autotuner, reached as soon as transformers builds a model), seconds per process for nothing:
a pipeline run without tracking, and every worker, hold it off with ``without_mlflow``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import logging
import os
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from muppet_core.callbacks import Callback, CallbackSpec
from muppet_core.config import TrackingConfig
from muppet_core.errors import MuppetError, first_line

log = logging.getLogger(__name__)

URI_ENV = "MLFLOW_TRACKING_URI"
FLOW_RUN_TAG = "prefect.flow_run_id"
KEY_TAG = "muppet.artifact_key"
LEVEL_TAG = "muppet.level"
PARENT_TAG = "mlflow.parentRunId"
BATCH = 100  # params per request (MLflow accepts at most 100 params, 1000 metrics in one batch)

_parents: dict[tuple[str, str, str], str] = {}
_parents_lock = threading.Lock()


@dataclass(frozen=True)
class Tracker:
    """Where a pipeline run is tracked; plain values, so it travels as a flow parameter."""

    uri: str
    experiment: str
    pipeline: str
    flow_run: str
    """The Prefect flow run of the pipeline run."""


class TrackingError(MuppetError):
    """The MLflow tracking server cannot be reached."""


def pipeline_tracker(config: TrackingConfig, pipeline: str, flow_run: str) -> Tracker | None:
    """The tracker of a pipeline run, or None when tracking is off (no URI in the config nor in
    ``MLFLOW_TRACKING_URI``). An http(s) server is asked for its health first.

    Raises:
        TrackingError: mlflow is not installed, or the server does not answer (before any work starts).
    """
    uri = config.mlflow_uri or os.environ.get(URI_ENV)
    if not uri:
        return None
    try:
        importlib.metadata.version("mlflow")
    except importlib.metadata.PackageNotFoundError:
        raise TrackingError(f"tracking is on ({uri}) but mlflow is not installed: pip install -e '.[tracking]'") from None
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=10):
                pass
        except OSError as exc:
            raise TrackingError(
                f"the MLflow tracking server {uri} does not answer ({first_line(exc)}): start it, or unset "
                f"tracking.mlflow_uri and {URI_ENV} to run untracked"
            ) from None
    return Tracker(uri, config.experiment or f"muppet-{pipeline}", pipeline, flow_run)


@contextlib.contextmanager
def _best_effort(what: str) -> Iterator[None]:
    """Once the work has started, a tracking failure is a warning: the work is never lost to it."""
    try:
        yield
    except Exception as exc:
        log.warning("MLflow: %s failed; the work goes on: %s", what, first_line(exc))


@contextlib.contextmanager
def without_mlflow() -> Iterator[None]:
    """Within the block, a library's ``import mlflow`` fails as if it were not installed (unless it is
    loaded already); this module's own imports still load it, for a run that is tracked."""
    mark = "mlflow" not in sys.modules
    if mark:
        sys.modules["mlflow"] = None
    try:
        yield
    finally:
        if mark and "mlflow" in sys.modules and sys.modules["mlflow"] is None:
            del sys.modules["mlflow"]


def _mlflow(module: str):
    """Import ``mlflow.<module>``, lifting ``without_mlflow``'s mark."""
    if "mlflow" in sys.modules and sys.modules["mlflow"] is None:
        del sys.modules["mlflow"]
    return importlib.import_module(f"mlflow.{module}")


def client(uri: str):
    """An ``MlflowClient`` of the tracking server at ``uri``."""
    return _mlflow("tracking").MlflowClient(tracking_uri=uri)


def _experiment_id(server, name: str) -> str:
    found = server.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return server.create_experiment(name)
    except Exception:  # created meanwhile by another process
        return server.get_experiment_by_name(name).experiment_id


def _pipeline_run(tracker: Tracker) -> tuple[str, str]:
    """(experiment id, run id) of the pipeline run's MLflow run, created by the first stage that logs."""
    key = (tracker.uri, tracker.experiment, tracker.flow_run)
    with _parents_lock:
        server = client(tracker.uri)
        experiment = _experiment_id(server, tracker.experiment)
        if key not in _parents:
            tags = {FLOW_RUN_TAG: tracker.flow_run, LEVEL_TAG: "pipeline", "muppet.pipeline": tracker.pipeline}
            _parents[key] = server.create_run(experiment, run_name=tracker.pipeline, tags=tags).info.run_id
        return experiment, _parents[key]


def end_pipeline_run(tracker: Tracker | None, failed: bool = False) -> None:
    """Close the pipeline run's MLflow run, if a stage of this run opened it."""
    if tracker is None:
        return
    with _parents_lock:
        run_id = _parents.pop((tracker.uri, tracker.experiment, tracker.flow_run), None)
    if run_id:
        with _best_effort("closing the pipeline's run"):
            client(tracker.uri).set_terminated(run_id, "FAILED" if failed else "FINISHED")


def flatten(settings: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested settings as MLflow params: ``{"a": {"b": 1}}`` -> ``{"a.b": "1"}``; lists joined by commas."""
    out: dict[str, str] = {}
    for name, value in settings.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return out


@dataclass(frozen=True)
class StageRun:
    """The MLflow run of one computed stage; with ``run_id`` None (tracking off) it logs nothing."""

    uri: str | None = None
    run_id: str | None = None

    def callbacks(self) -> list[CallbackSpec]:
        """The training callback that logs each update's losses into this run (rank 0 only)."""
        if self.run_id is None:
            return []
        return [CallbackSpec(target="muppet_core.tracking:MlflowMetrics", options={"uri": self.uri, "run_id": self.run_id}, rank_zero=True)]

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        """Log final values (scores, examples per second)."""
        if self.run_id is not None and metrics:
            metric = _mlflow("entities").Metric
            stamp = int(time.time() * 1000)
            with _best_effort("logging final metrics"):
                client(self.uri).log_batch(self.run_id, metrics=[metric(k, float(v), stamp, step) for k, v in metrics.items()])


@contextlib.contextmanager
def stage_run(tracker: Tracker | None, name: str, key: str, settings: dict[str, Any]) -> Iterator[StageRun]:
    """An MLflow run nested under the pipeline's, for a stage being computed: ``settings`` as params,
    the artifact ``key`` and the flow run as tags; marked FAILED if the stage raises. A server that
    fails meanwhile costs a warning, never the stage."""
    run = StageRun()
    if tracker is not None:
        with _best_effort(f"starting the run of {name}"):
            param = _mlflow("entities").Param
            experiment, parent = _pipeline_run(tracker)
            server = client(tracker.uri)
            tags = {PARENT_TAG: parent, KEY_TAG: key, FLOW_RUN_TAG: tracker.flow_run, LEVEL_TAG: "stage", "muppet.pipeline": tracker.pipeline}
            run_id = server.create_run(experiment, run_name=name, tags=tags).info.run_id
            params = [param(k, v[:6000]) for k, v in flatten(settings).items()]
            for i in range(0, len(params), BATCH):
                server.log_batch(run_id, params=params[i : i + BATCH])
            run = StageRun(tracker.uri, run_id)
    try:
        yield run
    except BaseException:
        _end(run, "FAILED")
        raise
    _end(run, "FINISHED")


def _end(run: StageRun, status: str) -> None:
    if run.run_id is not None:
        with _best_effort("closing a stage's run"):
            client(run.uri).set_terminated(run.run_id, status)


def log_pipeline_files(tracker: Tracker | None, files: list[Path]) -> None:
    """Attach files (the leaderboard's CSV and chart) to the pipeline run's MLflow run."""
    if tracker is None:
        return
    with _best_effort("attaching the leaderboard"):
        _, run_id = _pipeline_run(tracker)
        server = client(tracker.uri)
        for path in files:
            if path.is_file():
                server.log_artifact(run_id, str(path))


class MlflowMetrics(Callback):
    """Logs the mean loss and each task's loss at every update, then examples per second and the
    final loss; batched, sent every ``flush_seconds`` and at the end.

    Args:
        uri: the MLflow tracking server.
        run_id: the stage's MLflow run.
        flush_seconds: longest wait before buffered metrics are sent.
    """

    def __init__(self, uri: str, run_id: str, flush_seconds: float = 10.0):
        self.metric, self.client, self.run_id, self.flush_seconds = _mlflow("entities").Metric, client(uri), run_id, flush_seconds
        self.buffer: list = []
        self.sent = time.monotonic()

    def _add(self, values: dict[str, float], step: int) -> None:
        stamp = int(time.time() * 1000)
        self.buffer += [self.metric(k, float(v), stamp, step) for k, v in values.items()]

    def _flush(self) -> None:
        with _best_effort(f"logging {len(self.buffer)} metric values"):
            for i in range(0, len(self.buffer), 1000):
                self.client.log_batch(self.run_id, metrics=self.buffer[i : i + 1000])
        self.buffer, self.sent = [], time.monotonic()

    def on_step_end(self, step: int, logs: dict) -> None:
        self._add({"loss": logs["loss"], **{f"loss/{task}": v for task, v in logs["tasks"].items()}}, step + 1)
        if time.monotonic() - self.sent >= self.flush_seconds:
            self._flush()

    def on_train_end(self, summary: dict) -> None:
        keys = ("examples_per_second", "final_loss", "padding_efficiency", "wall_seconds")
        self._add({k: summary[k] for k in keys}, summary["steps"])
        self._flush()
