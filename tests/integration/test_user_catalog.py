"""A dataset of the user's own catalog folder (``catalog:`` in pipelines.yaml), run through the
tiny pipeline: pre-finetuned on and fine-tuned on, scored on the leaderboard, with no package edit."""

from __future__ import annotations

import pandas as pd
import yaml

from muppet_core.tasks.catalog import CATALOG_ENV
from tests.integration.conftest import muppet

ENTRY = {
    "tasks": {
        "my_reviews": {
            "family": "classification",
            "hub": {"path": "example/reviews"},
            "mirror": {"train": "sst2/stsa.binary.train", "validation": "sst2/stsa.binary.dev"},
            "reader": "lines",
            "normalizer": "muppet_core.tasks.normalizers.classification:label_prefixed_line",
            "labels": ["negative", "positive"],
            "metric": "accuracy",
            "secondary_metrics": ["f1"],
        }
    }
}


def test_a_user_catalog_dataset_runs_through_the_tiny_pipeline(prefect_harness, tiny_backbone, mirror, tmp_path, monkeypatch):
    from flows.reproduce import reproduce

    monkeypatch.setenv(CATALOG_ENV, "")  # restored after the test: the catalog folder stays this test's own
    (tmp_path / "my-catalog").mkdir()
    (tmp_path / "my-catalog" / "reviews.yaml").write_text(yaml.safe_dump(ENTRY))
    doc = {
        "catalog": ["my-catalog"],
        "pipelines": {
            "usercat": {
                "backbone": tiny_backbone, "store": "store", "data": {"mirror": mirror},
                "prefinetune": {"tasks": ["rotten_tomatoes", "my_reviews"], "steps": 2, "micro_batch_size": 4, "tasks_per_step": 2,
                                "max_length": 48, "max_train_examples": 32, "engine": "torch"},
                "finetune": {"benchmarks": ["my_reviews"], "batch_size": 8, "max_length": 48, "max_train_examples": 32, "max_eval_examples": 40},
            }
        },
    }
    config = tmp_path / "pipelines.yaml"
    config.write_text(yaml.safe_dump(doc))
    validated = muppet("validate", str(config))
    assert validated.returncode == 0, validated.stderr
    listed = muppet("tasks", "show", "my_reviews", "--config", str(config))
    assert listed.returncode == 0 and "metric: accuracy" in listed.stdout, listed.stderr

    csv_uri = reproduce(pipeline="usercat", config=str(config))
    table = pd.read_csv(csv_uri, index_col="model")
    assert sorted(table["variant"]) == ["base", "delta", "prefinetuned"]
    rows = table[table["variant"] != "delta"]
    assert rows["my_reviews"].between(0, 1).all() and (rows["my_reviews.n"] == 1).all()
    stats = list((tmp_path / "store" / "data").glob("*/stats.json"))
    assert len(stats) == 2  # rotten_tomatoes and the user's dataset


def test_a_misspelled_metric_in_a_user_catalog_stops_validate(tmp_path, monkeypatch):
    monkeypatch.setenv(CATALOG_ENV, "")
    entry = {"tasks": {"my_reviews": {**ENTRY["tasks"]["my_reviews"], "metric": "acuracy"}}}
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "reviews.yaml").write_text(yaml.safe_dump(entry))
    config = tmp_path / "pipelines.yaml"
    config.write_text(yaml.safe_dump({"catalog": ["cat"], "pipelines": {"p": {
        "backbone": "org/model", "prefinetune": {"tasks": ["my_reviews"], "steps": 1}, "finetune": {"benchmarks": ["my_reviews"]}}}}))
    result = muppet("validate", str(config))
    assert result.returncode == 2
    assert "tasks.my_reviews.metric: unknown metric 'acuracy' (did you mean 'accuracy'?)" in result.stderr
