"""An executor of one's own takes one file: this one defines a toy executor with a setting of its
own, registers it, runs a real fan-out of the tiny BERT through it from a pipelines file that names
it, and takes it back; an executor nobody registered is refused in one line, by the config and by
the library."""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import pytest
import yaml

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.config import DataConfig, ExecutorSettings, PipelinesFile, parse_pipelines
from muppet_core.data.stage import data_stage
from muppet_core.errors import ConfigError, MuppetError
from muppet_core.evaluation.results import read_result
from muppet_core.models.backbone import Variant
from muppet_core.schema import reference_rows
from muppet_core.training.executor import Executor, register_executor, run_finetune, unregister_executor
from muppet_core.training.finetune import finetune_key, finetune_stage, plan_runs
from tests.conftest import REPO

DEMO = yaml.safe_load((REPO / "pipelines.yaml").read_text())["pipelines"]["demo"]


class ToySettings(ExecutorSettings):
    """The toy's settings: its kind, and a label of its own."""

    kind: Literal["toy"] = "toy"
    label: str
    """Written beside each run the toy is given."""


class Toy(Executor):
    """Records each fine-tune it is given, with its label, and runs it here."""

    settings = ToySettings

    def __init__(self):
        self.given: list[tuple[str, str]] = []

    def run(self, pipeline, run, data, config, store, log_line, callbacks=()):
        self.given.append((config.executor.label, run.name))
        return finetune_stage(pipeline, run, data, config, store, callbacks)


@pytest.fixture
def toy():
    """The toy, registered for one test."""
    executor = register_executor(Toy())
    try:
        yield executor
    finally:
        unregister_executor("toy")


def _pipelines(finetune: dict) -> dict:
    """pipelines.yaml's demo pipeline, its fine-tune settings updated with ``finetune``."""
    demo = copy.deepcopy(DEMO)
    demo["finetune"].update(finetune)
    return {"pipelines": {"demo": demo}}


def test_a_fan_out_runs_on_an_executor_registered_in_one_file(toy, tiny_backbone, mirror, tmp_path):
    settings = {"benchmarks": ["rte"], "seeds": [0, 1], "batch_size": 8, "max_length": 48, "max_train_examples": 16, "max_eval_examples": 16,
                "concurrency": 2, "executor": {"kind": "toy", "label": "seen"}}
    config = parse_pipelines(_pipelines(settings)).pipelines["demo"].finetune
    assert isinstance(config.executor, ToySettings) and config.executor.label == "seen"
    rows = {path: meaning for path, _, _, _, meaning in reference_rows(PipelinesFile)}
    assert rows["pipelines.<name>.finetune.executor.label"] == "(toy) Written beside each run the toy is given."

    store = ArtifactStore(str(tmp_path / "store"))
    data = data_stage("rte", DataConfig(mirror=mirror), store)
    runs = plan_runs(config, [Variant("base", "tiny", tiny_backbone)])
    with ThreadPoolExecutor(config.concurrency) as pool:  # as the fan-out's tasks call it, two at once
        outputs = list(pool.map(lambda run: run_finetune("toy", run, data, config, store, lambda line: None), runs))

    assert len(runs) == 2 and sorted(toy.given) == sorted(("seen", run.name) for run in runs)
    records = [read_result(store, output) for output in outputs]
    assert [(r.status, r.seed) for r in records] == [("ok", 0), ("ok", 1)] and all(0 <= r.score <= 1 for r in records)
    threads = parse_pipelines(_pipelines({**settings, "executor": "thread"})).pipelines["demo"].finetune
    assert [o.key for o in outputs] == [finetune_key(run, data, threads) for run in runs]  # the executor is in no key


def test_an_unknown_executor_is_refused_in_one_line(toy):
    (problem,) = pytest.raises(ConfigError, parse_pipelines, _pipelines({"executor": "proces"})).value.problems
    assert problem == ("pipelines.demo.finetune.executor: unknown executor 'proces' (did you mean 'process'?); "
                       "the executors are auto, deployment, process, thread, toy (got 'proces')")
    (problem,) = pytest.raises(ConfigError, parse_pipelines, _pipelines({"executor": {"kind": "toy", "lable": "x"}})).value.problems
    assert problem == "pipelines.demo.finetune.executor.lable: unknown key (did you mean 'label'?)"

    config = parse_pipelines(_pipelines({"executor": {"kind": "toy", "label": "gone"}})).pipelines["demo"].finetune
    unregister_executor("toy")  # the config still holds the toy's settings; the library no longer runs them
    with pytest.raises(MuppetError) as refused:
        run_finetune("toy", plan_runs(config, [Variant("base", "k", "/nowhere")])[0], None, config, None)
    assert str(refused.value).startswith("finetune.executor 'toy' is not registered in this process; the executors here: ")
    assert "process, thread" in str(refused.value) and "\n" not in str(refused.value)
    assert toy.given == []


LATE_PLUGIN = '''
from typing import Literal

from muppet_core.config import ExecutorSettings, Retries
from muppet_core.training.executor import Executor, register_executor


class LateSettings(Retries, ExecutorSettings):
    kind: Literal["late"] = "late"


class Late(Executor):
    settings = LateSettings

    def run(self, *args, **kwargs):
        raise NotImplementedError


register_executor(Late())
'''


def test_a_setting_beside_a_plugin_s_executor_moves_into_its_settings_before_the_plugin_is_imported(tmp_path, monkeypatch, plugins_undone):
    """``retries`` written beside ``executor: late``, an executor a plugin registers that no code has
    imported yet: validating the file imports the plugin and moves the setting into the executor's
    settings, as for a built-in executor (not the executor's default); a kind that is not a name is one
    line, not a TypeError."""
    from muppet_core.config import FinetuneConfig
    from muppet_core.plugins import PLUGINS_ENV

    (tmp_path / "late_executor.py").write_text(LATE_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(PLUGINS_ENV, "late_executor")
    assert "late" not in ExecutorSettings.MEMBERS
    config = FinetuneConfig.model_validate({"benchmarks": ["rte"], "executor": "late", "retries": 3})
    assert (config.executor.kind, config.executor.retries) == ("late", 3)
    with pytest.raises(ValueError, match="executor") as refused:
        FinetuneConfig.model_validate({"benchmarks": ["rte"], "executor": {"kind": ["late"]}, "retries": 3})
    assert "TypeError" not in str(refused.value)
