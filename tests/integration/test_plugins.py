"""A task family from a module of the user's own (``plugins:`` in pipelines.yaml, beside it), run
through the tiny pipeline: pre-finetuned on by the DeepSpeed worker process, fine-tuned in a process
of its own and scored on the leaderboard, with no package edit."""

from __future__ import annotations

import json

import pandas as pd
import yaml

from muppet_core.plugins import PLUGINS_ENV
from tests.conftest import REPO
from tests.integration.conftest import muppet

REGISTRATION = """

if "length_bucket" not in FAMILIES:
    register_family(LengthBucketFamily())
"""


def plugin_source() -> str:
    """tests/length_plugin.py, registering its family when imported, as a plugin module does."""
    return (REPO / "tests" / "length_plugin.py").read_text() + "\nfrom muppet_core.families import FAMILIES, register_family\n" + REGISTRATION


ENTRY = {
    "tasks": {
        "sentence_length": {
            "family": "length_bucket",
            "hub": {"path": "example/sentence-length"},
            "mirror": {"train": "sst2/stsa.binary.train", "validation": "sst2/stsa.binary.dev"},
            "reader": "lines",
            "normalizer": "length_plugin:bucket_line",
            "labels": ["short", "long"],
            "metric": "accuracy",
        }
    }
}


def test_a_plugin_family_pre_finetunes_on_the_deepspeed_worker_and_is_scored(
    prefect_harness, tiny_backbone, mirror, tmp_path, plugins_undone,
):
    from flows.reproduce import reproduce

    (tmp_path / "length_plugin.py").write_text(plugin_source())
    (tmp_path / "my-catalog").mkdir()
    (tmp_path / "my-catalog" / "length.yaml").write_text(yaml.safe_dump(ENTRY))
    doc = {
        "plugins": ["length_plugin"],
        "catalog": ["my-catalog"],
        "pipelines": {
            "plugged": {
                "backbone": tiny_backbone, "store": "store", "data": {"mirror": mirror},
                "prefinetune": {"tasks": ["rotten_tomatoes", "sentence_length"], "steps": 2, "micro_batch_size": 4, "tasks_per_step": 2,
                                "max_length": 48, "max_train_examples": 32, "engine": "deepspeed", "launcher": "local"},
                "finetune": {"benchmarks": ["sentence_length"], "batch_size": 8, "max_length": 48, "max_train_examples": 32,
                             "max_eval_examples": 40, "executor": "process"},
            }
        },
    }
    config = tmp_path / "pipelines.yaml"
    config.write_text(yaml.safe_dump(doc))
    validated = muppet("validate", str(config), cwd=tmp_path.parent)  # the plugin is found beside pipelines.yaml, not in the cwd
    assert validated.returncode == 0, validated.stderr

    csv_uri = reproduce(pipeline="plugged", config=str(config))
    table = pd.read_csv(csv_uri, index_col="model")
    rows = table[table["variant"] != "delta"]
    assert sorted(rows["variant"]) == ["base", "prefinetuned"]
    assert rows["sentence_length"].between(0, 1).all() and (rows["sentence_length.n"] == 1).all()
    summaries = list((tmp_path / "store" / "prefinetune").glob("*/train_summary.json"))
    assert len(summaries) == 1
    summary = json.loads(summaries[0].read_text())
    assert summary["tasks"]["sentence_length"]["examples"] > 0 and summary["world_size"] == 1
    heads = json.loads((summaries[0].parent / "heads.json").read_text())
    assert heads["bucket"] == {"kind": "linear", "outputs": 2}  # the plugin's own head, trained by the worker


def test_a_plugin_that_cannot_be_imported_stops_validate_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv(PLUGINS_ENV, "")
    (tmp_path / "broken_plugin.py").write_text("def oops(:\n")
    config = tmp_path / "pipelines.yaml"
    config.write_text(yaml.safe_dump({"plugins": ["broken_plugin"], "pipelines": {"p": {
        "backbone": "org/model", "prefinetune": {"tasks": ["rte"], "steps": 1}, "finetune": {"benchmarks": ["rte"]}}}}))
    result = muppet("validate", str(config))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "plugin 'broken_plugin' cannot be imported: SyntaxError:" in result.stderr
