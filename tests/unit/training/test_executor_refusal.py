"""run_finetune runs a fine-tune in a thread or a process of this machine; asked for an executor it
does not run (``deployment``: its runs go to a work pool), it stops in one line, before any work,
instead of running it as a local process."""

from __future__ import annotations

import pytest

from muppet_core.artifacts.stage import StageOutput
from muppet_core.artifacts.store import ArtifactStore
from muppet_core.config import FinetuneConfig
from muppet_core.errors import MuppetError
from muppet_core.models.backbone import Variant
from muppet_core.training import executor
from muppet_core.training.finetune import FinetuneRun


def test_a_deployment_fine_tune_is_refused_by_run_finetune(tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(executor, "finetune_stage", lambda *a, **k: started.append("thread"))
    monkeypatch.setattr(executor, "finetune_in_process", lambda *a, **k: started.append("process"))
    config = FinetuneConfig(benchmarks=["rte"], executor="deployment", work_pool="gpus")
    run = FinetuneRun(Variant("base", "key", str(tmp_path)), "rte", 0, 2e-5)
    data = StageOutput("data", "rte", "data-key", str(tmp_path), True)
    with pytest.raises(MuppetError) as refused:
        executor.run_finetune("p", run, data, config, ArtifactStore(str(tmp_path / "store")))
    assert str(refused.value).startswith("finetune.executor 'deployment' does not run a fine-tune in this process")
    assert "\n" not in str(refused.value) and started == []
    executor.run_finetune("p", run, data, config.model_copy(update={"executor": "thread"}), ArtifactStore(str(tmp_path / "store")))
    assert started == ["thread"]
