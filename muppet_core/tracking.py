"""Experiment tracking: the tracker a pipeline's ``tracking:`` section names (a registered kind,
``muppet_core.config.TRACKERS``), fed through the stage and loop callbacks.

A pipeline run opens its tracker (``open_tracker``); the tracker travels to every stage as a stage
callback (``Tracker.spec``), to the processes and machines that run them too. A stage that computes
tells it that it starts (its name, key and settings) and ends (its final values); the loop callbacks
it hands the stage log each update. A stage taken from the store tells it nothing.

MLflow is the first member (``MlflowTracker``): a run for each pipeline run and, nested under it, one
run per pre-finetune and per fine-tune that the pipeline run computes; a pipeline run that computes
nothing leaves no run. Each stage's run holds its settings as params, the artifact key and the
Prefect flow run as tags, the loss of each task at every update (rank 0 only), examples per second and
the final scores; the pipeline's run holds the leaderboard's CSV and chart.

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
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from muppet_core.callbacks import Callback, CallbackSpec, build_stage_callbacks
from muppet_core.config import MlflowTracking, TrackingConfig
from muppet_core.errors import MuppetError, first_line
from muppet_core.registry import resolve

log = logging.getLogger(__name__)

URI_ENV = "MLFLOW_TRACKING_URI"
FLOW_RUN_TAG = "prefect.flow_run_id"
KEY_TAG = "muppet.artifact_key"
LEVEL_TAG = "muppet.level"
PARENT_TAG = "mlflow.parentRunId"
BATCH = 100  # params per request (MLflow accepts at most 100 params, 1000 metrics in one batch)


class TrackingError(MuppetError):
    """The tracking server cannot be reached, or its client is not installed."""


class Tracker(Callback):
    """An experiment tracker, the member a ``tracking.kind`` names (its settings model names the class).

    Opened once per pipeline run (``open``), it travels to the stages as a stage callback (``spec``):
    a tracker is rebuilt from plain values wherever a stage runs, so it holds no state beyond them
    and the stage it follows. It hears each computing stage through the ``Callback`` stage hooks
    (``on_stage_start``, ``loop_callbacks``, ``on_stage_end``); the pipeline's own files come
    through ``attach``, and ``close`` ends the pipeline run.
    """

    @classmethod
    def check(cls, settings: TrackingConfig) -> None:
        """Refuse, before any work, settings that cannot track (a server that does not answer).

        Raises:
            TrackingError: one line, what to start or change.
        """

    @classmethod
    def open(cls, settings: TrackingConfig, pipeline: str, flow_run: str) -> Tracker | None:
        """The tracker of a pipeline run (``flow_run``: its Prefect flow run), or None when these settings track nothing.

        Raises:
            TrackingError: as ``check``.
        """
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """The plain values that rebuild this tracker (its class called with them)."""
        raise NotImplementedError

    def spec(self) -> CallbackSpec:
        """The stage callback that carries this tracker to every stage, wherever it runs."""
        return CallbackSpec(target=f"{type(self).__module__}:{type(self).__qualname__}", options=self.options(), stage=True)

    def attach(self, files: list[Path]) -> None:
        """Keep files with the pipeline run (the leaderboard's CSV and chart)."""

    def close(self, failed: bool = False) -> None:
        """End the pipeline run (``failed``: it raised)."""


def tracker_class(settings: TrackingConfig) -> type[Tracker]:
    """The tracker class that ``settings`` name."""
    return resolve(settings.tracker)


def check_tracking(settings: TrackingConfig) -> None:
    """Refuse, before any work, tracking that cannot work (``Tracker.check``). Raises TrackingError."""
    tracker_class(settings).check(settings)


def open_tracker(settings: TrackingConfig, pipeline: str, flow_run: str) -> Tracker | None:
    """The tracker of a pipeline run, or None when tracking is off (``Tracker.open``). Raises TrackingError."""
    return tracker_class(settings).open(settings, pipeline, flow_run)


def attach_files(callbacks: list[CallbackSpec], files: list[Path]) -> None:
    """Give ``files`` to the trackers among ``callbacks`` (``Tracker.attach``)."""
    for callback in build_stage_callbacks(callbacks):
        if isinstance(callback, Tracker):
            callback.attach(files)


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


def flatten(settings: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested settings as MLflow params: ``{"a": {"b": 1}}`` -> ``{"a.b": "1"}``; lists joined by commas."""
    out: dict[str, str] = {}
    for name, value in settings.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return out


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


class MlflowTracker(Tracker):
    """Tracking in MLflow (kind ``mlflow``): the pipeline run's MLflow run is made when the pipeline
    run opens its tracker, and deleted at the end if no stage computed under it.

    Args:
        uri: the MLflow tracking server.
        experiment: the MLflow experiment's name.
        experiment_id: its id.
        pipeline: the pipeline's name.
        flow_run: the Prefect flow run of the pipeline run.
        parent: the pipeline run's MLflow run.
    """

    def __init__(self, uri: str, experiment: str, experiment_id: str, pipeline: str, flow_run: str, parent: str):
        self.uri, self.experiment, self.experiment_id = uri, experiment, experiment_id
        self.pipeline, self.flow_run, self.parent = pipeline, flow_run, parent
        self.run_id: str | None = None
        """The MLflow run of the stage this tracker follows, once it starts."""

    @classmethod
    def server(cls, settings: MlflowTracking) -> str | None:
        """The tracking server: the settings', else ``MLFLOW_TRACKING_URI``; None: tracking is off."""
        return settings.mlflow_uri or os.environ.get(URI_ENV) or None

    @classmethod
    def check(cls, settings: MlflowTracking) -> None:
        """Refuse a tracking server when mlflow is not installed, or an http(s) one that does not answer its health check."""
        uri = cls.server(settings)
        if not uri:
            return
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

    @classmethod
    def open(cls, settings: MlflowTracking, pipeline: str, flow_run: str) -> MlflowTracker | None:
        """Checked (``check``), then the pipeline run's MLflow run made; None when tracking is off, or
        (with a warning) when the server fails once checked: the work never waits on tracking."""
        cls.check(settings)
        uri = cls.server(settings)
        if not uri:
            return None
        experiment = settings.experiment or f"muppet-{pipeline}"
        with _best_effort("starting the pipeline's run"):
            server = client(uri)
            experiment_id = _experiment_id(server, experiment)
            tags = {FLOW_RUN_TAG: flow_run, LEVEL_TAG: "pipeline", "muppet.pipeline": pipeline}
            parent = server.create_run(experiment_id, run_name=pipeline, tags=tags).info.run_id
            return cls(uri, experiment, experiment_id, pipeline, flow_run, parent)
        return None

    def options(self) -> dict[str, Any]:
        return {"uri": self.uri, "experiment": self.experiment, "experiment_id": self.experiment_id, "pipeline": self.pipeline,
                "flow_run": self.flow_run, "parent": self.parent}

    def on_stage_start(self, name: str, key: str, settings: dict[str, Any]) -> None:
        """An MLflow run nested under the pipeline's: ``settings`` as params, the artifact ``key`` and
        the flow run as tags. A server that fails costs a warning, never the stage."""
        with _best_effort(f"starting the run of {name}"):
            param = _mlflow("entities").Param
            server = client(self.uri)
            tags = {PARENT_TAG: self.parent, KEY_TAG: key, FLOW_RUN_TAG: self.flow_run, LEVEL_TAG: "stage", "muppet.pipeline": self.pipeline}
            run_id = server.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id
            params = [param(k, v[:6000]) for k, v in flatten(settings).items()]
            for i in range(0, len(params), BATCH):
                server.log_batch(run_id, params=params[i : i + BATCH])
            self.run_id = run_id

    def loop_callbacks(self) -> list[CallbackSpec]:
        """``MlflowMetrics`` on rank 0, logging each update's losses into the stage's run."""
        if self.run_id is None:
            return []
        return [CallbackSpec(target=f"{__name__}:MlflowMetrics", options={"uri": self.uri, "run_id": self.run_id}, rank_zero=True)]

    def on_stage_end(self, metrics: dict[str, float], error: BaseException | None = None) -> None:
        """The final values logged, the stage's run marked FINISHED (FAILED with an ``error``)."""
        if self.run_id is None:
            return
        with _best_effort("closing a stage's run"):
            server = client(self.uri)
            if metrics:
                metric, stamp = _mlflow("entities").Metric, int(time.time() * 1000)
                server.log_batch(self.run_id, metrics=[metric(k, float(v), stamp, 0) for k, v in metrics.items()])
            server.set_terminated(self.run_id, "FAILED" if error is not None else "FINISHED")

    def attach(self, files: list[Path]) -> None:
        """The files as artifacts of the pipeline's run."""
        with _best_effort("attaching the leaderboard"):
            server = client(self.uri)
            for path in files:
                if path.is_file():
                    server.log_artifact(self.parent, str(path))

    def close(self, failed: bool = False) -> None:
        """The pipeline's run marked FINISHED or FAILED; deleted when nothing was computed under it
        (no stage's run, no file), so a run that computes nothing leaves none."""
        with _best_effort("closing the pipeline's run"):
            server = client(self.uri)
            children = server.search_runs([self.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{self.parent}'", max_results=1)
            if not children and not server.list_artifacts(self.parent):
                server.delete_run(self.parent)
            else:
                server.set_terminated(self.parent, "FAILED" if failed else "FINISHED")
