"""pipelines.yaml validation: every problem named by its YAML path."""

from __future__ import annotations

import copy

import pytest
import yaml

from muppet_core.config import parse_pipelines
from muppet_core.errors import ConfigError
from muppet_core.pipelines import load_pipeline, load_validated
from tests.conftest import REPO

BASE = yaml.safe_load((REPO / "pipelines.yaml").read_text())


def _problems(doc) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_pipelines(doc)
    return info.value.problems


def test_repository_pipelines_file_is_valid():
    pipelines = load_validated(REPO / "pipelines.yaml")
    assert "demo" in pipelines.pipelines
    demo = pipelines.pipelines["demo"]
    assert {"sst2", "rte"} <= set(demo.finetune.benchmarks)
    assert len(demo.prefinetune.tasks) >= 6


def test_wrong_type_is_reported_with_its_yaml_path():
    doc = copy.deepcopy(BASE)
    doc["pipelines"]["demo"]["finetune"]["seeds"] = [0, "one"]
    (problem,) = _problems(doc)
    assert problem.startswith("pipelines.demo.finetune.seeds[1]: ")
    assert "integer" in problem


def test_misspelled_key_is_reported_with_a_suggestion():
    doc = copy.deepcopy(BASE)
    doc["pipelines"]["demo"]["finetune"]["lerning_rate"] = 1e-5
    (problem,) = _problems(doc)
    assert problem == "pipelines.demo.finetune.lerning_rate: unknown key (did you mean 'learning_rates'?)"


def test_negative_budget_and_missing_key_are_refused():
    doc = copy.deepcopy(BASE)
    doc["pipelines"]["demo"]["prefinetune"]["steps"] = -5
    del doc["pipelines"]["demo"]["backbone"]
    problems = _problems(doc)
    assert any(p.startswith("pipelines.demo.prefinetune.steps: ") for p in problems)
    assert "pipelines.demo.backbone: required key is missing" in problems


def test_unsafe_pipeline_name_is_refused():
    doc = {"pipelines": {"../escape": copy.deepcopy(BASE["pipelines"]["demo"])}}
    (problem,) = _problems(doc)
    assert problem.startswith("pipelines: ") and "../escape" in problem


def test_unknown_task_is_named_with_its_path(tmp_path):
    doc = copy.deepcopy(BASE)
    doc["pipelines"]["demo"]["prefinetune"]["tasks"][1] = "trek"
    path = tmp_path / "pipelines.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as info:
        load_validated(path)
    assert info.value.problems == ["pipelines.demo.prefinetune.tasks[1]: unknown task 'trek' (did you mean 'trec'?)"]


def test_yaml_tags_that_construct_objects_are_refused(tmp_path):
    path = tmp_path / "pipelines.yaml"
    path.write_text("pipelines: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError) as info:
        load_validated(path)
    assert "not valid YAML" in info.value.problems[0]


def test_unknown_pipeline_lists_known_names():
    with pytest.raises(ConfigError) as info:
        load_pipeline("dmeo", REPO / "pipelines.yaml")
    assert "no pipeline named 'dmeo' (did you mean 'demo'?)" in str(info.value)


def test_relative_paths_are_anchored_and_env_overrides_win(tmp_path, monkeypatch):
    monkeypatch.delenv("MUPPET_DATA_MIRROR", raising=False)
    monkeypatch.delenv("MUPPET_STORE", raising=False)
    pipe = load_pipeline("demo", REPO / "pipelines.yaml")
    assert pipe.store == str(REPO / "muppet-store")
    assert pipe.data.mirror == str((REPO / "../shared/data").resolve())
    monkeypatch.setenv("MUPPET_DATA_MIRROR", str(tmp_path))
    assert load_pipeline("demo", REPO / "pipelines.yaml").data.mirror == str(tmp_path)


def test_staged_pipeline_names_every_dataset_directory_of_the_mirror(mirror):
    from pathlib import Path

    from muppet_core.tasks.catalog import load_catalog

    pipeline = load_pipeline("staged", REPO / "pipelines.yaml")
    catalog = load_catalog()
    covered = set()
    for task in pipeline.data_tasks():
        for files in catalog[task].mirror.values():
            values = files.values() if isinstance(files, dict) else [files] if isinstance(files, str) else files
            covered.update(str(f).split("/", 1)[0] for f in values)
    directories = {p.name for p in Path(mirror).iterdir() if p.is_dir()}
    assert directories <= covered, f"not prepared by the staged pipeline: {sorted(directories - covered)}"


def test_executor_settings_written_beside_the_executor_are_still_read_as_its_own():
    doc = copy.deepcopy(BASE)
    doc["pipelines"]["demo"]["finetune"].update({"executor": "deployment", "work_pool": "gpu", "chunk": 3, "retries": 2, "threads": 1})
    executor = parse_pipelines(doc).pipelines["demo"].finetune.executor
    assert executor.model_dump() == {"kind": "deployment", "threads": 1, "retries": 2, "work_pool": "gpu", "chunk": 3}
    doc["pipelines"]["demo"]["finetune"] = {**BASE["pipelines"]["demo"]["finetune"], "executor": "thread", "retries": 2}
    assert parse_pipelines(doc).pipelines["demo"].finetune.executor.model_dump() == {"kind": "thread", "threads": None}  # ignored, as it was
    doc["pipelines"]["demo"]["finetune"] = {**BASE["pipelines"]["demo"]["finetune"], "executor": {"kind": "process", "retries": 1}, "retries": 2}
    (problem,) = _problems(doc)
    assert problem == "pipelines.demo.finetune: retries: given both beside executor and in its settings; keep the one under executor"


def test_a_setting_another_executor_kind_takes_names_the_kinds_that_take_it():
    doc = copy.deepcopy(BASE)
    doc["pipelines"]["demo"]["finetune"]["executor"] = {"kind": "thread", "retries": 2}
    assert _problems(doc) == ["pipelines.demo.finetune.executor.retries: not a setting of this executor kind; "
                              "the executors that take it: auto, deployment, process"]
    doc["pipelines"]["demo"]["finetune"]["executor"] = {"kind": "thread", "retires": 2}
    assert _problems(doc) == ["pipelines.demo.finetune.executor.retires: unknown key (did you mean 'retries'?)"]
