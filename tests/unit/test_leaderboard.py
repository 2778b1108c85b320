"""Leaderboard aggregation and rendering."""

import math

from muppet_core.evaluation.results import ResultRecord
from muppet_core.leaderboard.table import from_csv, leaderboard, to_csv, to_json, to_markdown


def _record(variant, benchmark, seed, score):
    return ResultRecord(
        pipeline="p", variant=variant, variant_key="k", benchmark=benchmark, seed=seed, learning_rate=1e-5,
        metrics={"accuracy": score}, main_metric="accuracy", train_examples=1, examples_seen=1, eval_examples=1,
        wall_seconds=0.1, code_version="c",
    )


def test_rows_variants_columns_benchmarks_mean_over_seeds_and_missing_is_not_zero():
    records = [
        _record("prefinetuned", "rte", 0, 0.6), _record("base", "rte", 0, 0.5), _record("base", "rte", 1, 0.7),
        _record("base", "sst2", 0, 0.9),
    ]
    table = leaderboard(records, ["sst2", "rte"])
    assert list(table.index) == ["base", "prefinetuned"]
    assert list(table.columns) == ["sst2", "rte", "average"]
    assert math.isclose(table.loc["base", "rte"], 0.6)
    assert math.isclose(table.loc["base", "average"], 0.75)
    assert math.isnan(table.loc["prefinetuned", "sst2"]) and math.isnan(table.loc["prefinetuned", "average"])
    back = from_csv(to_csv(table))
    assert math.isclose(back.loc["base", "sst2"], 0.9) and math.isnan(back.loc["prefinetuned", "sst2"])
    assert "| prefinetuned | — | 60.0 | — |" in to_markdown(table)
    assert '"sst2": null' in to_json(table)
