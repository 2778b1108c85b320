"""Content keys are derived, never listed: every setting but those marked execution or plan is in
a stage's key, the code version follows the imports, and the training libraries' versions count."""

from __future__ import annotations

import pytest

from muppet_core.artifacts.fingerprints import METRIC_LIBRARIES, TRAINING_LIBRARIES, code_version, imported_closure, library_versions
from muppet_core.artifacts.stage import StageOutput
from muppet_core.config import FinetuneConfig, PrefinetuneConfig
from muppet_core.models.backbone import Variant
from muppet_core.schema import EXECUTION, PLAN, execution, key_role, result_settings
from muppet_core.training import finetune as finetune_module
from muppet_core.training import prefinetune as prefinetune_module
from muppet_core.training.finetune import FinetuneRun, finetune_key
from muppet_core.training.prefinetune import prefinetune_key

DATA = StageOutput("data", "rte", "dk", "store/data/dk", False)
RUN = FinetuneRun(Variant("base", "k", "/b"), "rte", 0, 3e-5)
PFT_DATA = {"rte": DATA}


class FinetuneWithKnob(FinetuneConfig):
    """A fine-tune config that gained a setting nobody marked: it must reach the key."""

    new_knob: int = 3


class FinetuneWithWorkers(FinetuneConfig):
    """A fine-tune config that gained an execution-only setting, marked as such."""

    data_workers: int = execution(2)


def test_a_new_unmarked_setting_changes_the_finetune_key():
    config = FinetuneWithKnob(benchmarks=["rte"])
    key = finetune_key(RUN, DATA, config)
    assert finetune_key(RUN, DATA, config.model_copy(update={"new_knob": 4})) != key
    assert "new_knob" in result_settings(config)


def test_a_new_unmarked_setting_changes_the_prefinetune_key():
    class PrefinetuneWithKnob(PrefinetuneConfig):
        mixing_knob: float = 0.5

    config = PrefinetuneWithKnob(tasks=["rte"], steps=2)
    key = prefinetune_key(config, "backbone", PFT_DATA)
    assert prefinetune_key(config.model_copy(update={"mixing_knob": 0.25}), "backbone", PFT_DATA) != key


def test_a_setting_marked_execution_leaves_the_key_as_it_is():
    config = FinetuneWithWorkers(benchmarks=["rte"])
    assert key_role(FinetuneWithWorkers, "data_workers") == EXECUTION
    assert finetune_key(RUN, DATA, config.model_copy(update={"data_workers": 8})) == finetune_key(RUN, DATA, config)


@pytest.mark.parametrize("model", [PrefinetuneConfig, FinetuneConfig])
def test_only_execution_and_plan_fields_are_left_out(model):
    left_out = {name for name in model.model_fields if key_role(model, name)}
    roles = {key_role(model, name) for name in left_out}
    assert roles <= {EXECUTION, PLAN}
    expected = {
        PrefinetuneConfig: {"enabled", "task_counts", "launcher", "nproc_per_node", "hostfile", "nnodes", "rdzv_endpoint", "shared_store", "device",
                            "checkpoint_every", "prefetch"},
        FinetuneConfig: {"benchmarks", "seeds", "learning_rates", "selection", "head_reuse", "head_reuse_control", "train_fractions", "concurrency",
                         "executor", "device", "checkpoint_every", "prefetch"},
    }[model]
    assert left_out == expected


def test_every_result_setting_changes_the_finetune_key():
    config = FinetuneConfig(benchmarks=["rte"])
    key = finetune_key(RUN, DATA, config)
    changes = {"eval_every": 5, "patience": 7, "epochs": 2.0, "batch_size": 8, "warmup_ratio": 0.2, "weight_decay": 0.1,
               "max_length": 64, "max_train_examples": 10, "max_eval_examples": 10, "max_grad_norm": 0.5,
               "group_by_length": False, "max_tokens_per_batch": 512, "r3f_eps": 1e-5, "r3f_lambda": 0.5, "r3f_noise": "normal", "precision": "bf16",
               "optimizer": "adamw_torch", "selection_fraction": 0.2, "pooling": "cls", "num_beams": 4}
    assert set(changes) | {"engine", "zero_stage", "deepspeed_config"} == set(result_settings(config))
    for name, value in changes.items():
        assert finetune_key(RUN, DATA, config.model_copy(update={name: value})) != key, name
    for name, value in {"concurrency": 4, "checkpoint_every": None, "device": "cpu", "seeds": [5], "selection": "mean"}.items():
        assert finetune_key(RUN, DATA, config.model_copy(update={name: value})) == key, name
    for executor in ("thread", {"kind": "process", "threads": 3, "retries": 2}, {"kind": "deployment", "work_pool": "gpu", "chunk": 4}):
        assert finetune_key(RUN, DATA, FinetuneConfig(benchmarks=["rte"], executor=executor)) == key, executor


def test_the_code_version_follows_imports_transitively():
    closure = imported_closure(finetune_module.__name__)
    for module in ("muppet_core.training.loop", "muppet_core.training.engine", "muppet_core.training.checkpoint",
                   "muppet_core.evaluation.metrics", "muppet_core.artifacts.store", "muppet_core.config"):
        assert module in closure, module
    assert "muppet_core.leaderboard.aggregate" not in closure
    assert "flows" not in " ".join(closure)
    assert {"muppet_core.training.worker", "muppet_core.training.loop"} <= set(imported_closure(prefinetune_module.WORKER))
    # One entry (muppet_core.training.__main__) runs both kinds of job: neither key holds the other's code.
    assert "muppet_core.training.finetune" not in imported_closure(prefinetune_module.WORKER, prefinetune_module.__name__)
    assert "muppet_core.training.worker" not in closure


def test_the_code_version_changes_with_a_transitively_imported_module(tmp_path, monkeypatch):
    package = tmp_path / "muppet_core_probe"
    (package / "deep").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "top.py").write_text("from muppet_core_probe.deep import leaf\n")
    (package / "deep" / "__init__.py").write_text("")
    (package / "deep" / "leaf.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("muppet_core.artifacts.fingerprints.PACKAGE", "muppet_core_probe")
    before = code_version.__wrapped__("muppet_core_probe.top")
    (package / "deep" / "leaf.py").write_text("VALUE = 2\n")
    assert code_version.__wrapped__("muppet_core_probe.top") != before


def test_training_keys_hold_the_library_versions(monkeypatch):
    versions = library_versions()
    assert set(versions) == {"torch", "transformers", "deepspeed", "datasets"} and versions["torch"]
    scored = library_versions(TRAINING_LIBRARIES + METRIC_LIBRARIES)
    assert set(scored) == {*versions, "scikit-learn", "scipy", "rouge-score"} and scored["scikit-learn"]
    config = FinetuneConfig(benchmarks=["rte"])
    key, pft_key = finetune_key(RUN, DATA, config), prefinetune_key(PrefinetuneConfig(tasks=["rte"], steps=2), "b", PFT_DATA)

    def changed(library):
        """library_versions as if ``library`` were at another version (where it is asked for)."""
        return lambda names=TRAINING_LIBRARIES: {**library_versions(names), **({library: "0.0"} if library in names else {})}

    for library in ("transformers", "scikit-learn"):  # a training library, and one that computes the metrics
        monkeypatch.setattr(finetune_module, "library_versions", changed(library))
        assert finetune_key(RUN, DATA, config) != key
    monkeypatch.setattr(prefinetune_module, "library_versions", changed("torch"))
    assert prefinetune_key(PrefinetuneConfig(tasks=["rte"], steps=2), "b", PFT_DATA) != pft_key


def test_code_versions_computed_in_many_threads_at_once_agree():
    """The data stage's tasks run in threads: reading the imports must be safe there."""
    import concurrent.futures

    modules = ["muppet_core.data.stage", "muppet_core.training.finetune", "muppet_core.training.worker", "muppet_core.leaderboard.stage"]
    serial = {m: code_version.__wrapped__(m) for m in modules}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        threaded = list(pool.map(lambda m: (m, code_version.__wrapped__(m)), modules * 6))
    assert all(version == serial[m] for m, version in threaded)
