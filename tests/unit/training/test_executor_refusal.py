"""run_finetune runs one fine-tune on the executor the config names; asked for one that takes the
whole fan-out at once (``deployment``: its runs go to a work pool) or one this process has not
registered, it stops in one line, before any work."""

from __future__ import annotations

from typing import Literal

import pytest

from muppet_core.artifacts.stage import StageOutput
from muppet_core.artifacts.store import ArtifactStore
from muppet_core.config import ExecutorSettings, FinetuneConfig
from muppet_core.errors import MuppetError
from muppet_core.models.backbone import Variant
from muppet_core.training import executor
from muppet_core.training.finetune import FinetuneRun


class FanOutSettings(ExecutorSettings):
    """An executor that takes every fine-tune at once, as ``deployment`` does."""

    kind: Literal["fan-out"] = "fan-out"


class FanOut(executor.Executor):
    settings = FanOutSettings
    whole_fan_out = True


@pytest.fixture
def started(monkeypatch):
    """What the thread and process executors were asked to run (nothing runs)."""
    calls = []
    monkeypatch.setattr(executor, "finetune_stage", lambda *a, **k: calls.append("thread"))
    monkeypatch.setattr(executor, "finetune_in_process", lambda *a, **k: calls.append("process"))
    return calls


def _run_finetune(tmp_path, config: FinetuneConfig) -> StageOutput:
    run = FinetuneRun(Variant("base", "key", str(tmp_path)), "rte", 0, 2e-5)
    data = StageOutput("data", "rte", "data-key", str(tmp_path), True)
    return executor.run_finetune("p", run, data, config, ArtifactStore(str(tmp_path / "store")))


def test_a_whole_fan_out_executor_is_refused_by_run_finetune(tmp_path, started):
    executor.register_executor(FanOut())
    try:
        with pytest.raises(MuppetError) as refused:
            _run_finetune(tmp_path, FinetuneConfig(benchmarks=["rte"], executor="fan-out"))
    finally:
        executor.unregister_executor("fan-out")
    assert str(refused.value).startswith("finetune.executor 'fan-out' does not run one fine-tune at a time")
    assert "\n" not in str(refused.value) and started == []
    _run_finetune(tmp_path, FinetuneConfig(benchmarks=["rte"], executor="thread"))
    assert started == ["thread"]


def test_an_executor_known_to_the_config_but_not_registered_here_is_refused(tmp_path, started):
    ExecutorSettings.register(FanOutSettings)  # its settings validate; no executor runs them in this process
    try:
        with pytest.raises(MuppetError) as refused:
            _run_finetune(tmp_path, FinetuneConfig(benchmarks=["rte"], executor={"kind": "fan-out"}))
    finally:
        ExecutorSettings.MEMBERS.unregister("fan-out")
    message = str(refused.value)
    assert message.startswith("finetune.executor 'fan-out' is not registered in this process; the executors here: ")
    assert "process, thread" in message and "\n" not in message and started == []
