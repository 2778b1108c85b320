"""Selection (a learning-rate grid, early stopping) decides on a slice carved from train, never on
the validation split that is reported; the result record keeps both scores."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from muppet_core.artifacts.stage import StageOutput
from muppet_core.config import FinetuneConfig
from muppet_core.data.prepare import load_split, prepare_task
from muppet_core.data.splits import carve_selection, selection_floor, subsample
from muppet_core.errors import SelectionError
from muppet_core.evaluation.results import ResultRecord
from muppet_core.leaderboard.aggregate import SELECTIONS, benchmark_cell
from muppet_core.models.backbone import Variant
from muppet_core.tasks.catalog import get_task
from muppet_core.training.finetune import FinetuneRun, finetune, finetune_key

CAP = 40


@dataclasses.dataclass
class Record:
    id: str


def test_a_grid_run_selects_on_a_slice_of_train_and_keeps_both_scores(tiny_backbone, mirror, tmp_path):
    prepare_task(get_task("rte"), mirror, 0.1, 0, tmp_path)
    config = FinetuneConfig(benchmarks=["rte"], batch_size=8, max_length=48, max_train_examples=CAP, max_eval_examples=24,
                            learning_rates=[1e-3, 3e-5])
    record = finetune(FinetuneRun(Variant("base", "k", tiny_backbone), "rte", 0, 1e-3), tmp_path, config, "unit")
    # independently: the capped train rows whose sha256("selection:0:<id>") falls in the first 10% are the slice
    train = subsample(load_split(tmp_path, "classification", "train"), CAP, 0)
    held = [r for r in train if int.from_bytes(hashlib.sha256(f"selection:0:{r.id}".encode()).digest()[:8], "big") / 2**64 < 0.1]
    assert held and record.selection_examples == len(held) and record.train_examples == CAP - len(held)
    validation_ids = {r.id for r in load_split(tmp_path, "classification", "validation")}
    assert not {r.id for r in held} & validation_ids
    assert set(record.selection_metrics) == set(record.metrics) == {"accuracy"}
    assert record.eval_examples == 24
    assert record.selection_score == record.selection_metrics["accuracy"] and record.score == record.metrics["accuracy"]
    # one learning rate and no early stopping: nothing is selected, all of train trains
    single = finetune(FinetuneRun(Variant("base", "k", tiny_backbone), "rte", 0, 1e-3), tmp_path,
                      config.model_copy(update={"learning_rates": [1e-3]}), "unit")
    assert single.selection_metrics is None and single.train_examples == CAP


def test_carving_is_in_the_key():
    data = StageOutput("data", "rte", "dk", "store/data/dk", False)
    run = FinetuneRun(Variant("base", "k", "/b"), "rte", 0, 3e-5)
    one = FinetuneConfig(benchmarks=["rte"])
    assert finetune_key(run, data, one) != finetune_key(run, data, one.model_copy(update={"learning_rates": [3e-5, 1e-4]}))
    assert finetune_key(run, data, one) != finetune_key(run, data, one.model_copy(update={"eval_every": 5}))


def _run(lr: float, seed: int, valid: float, select: float | None) -> ResultRecord:
    return ResultRecord(
        pipeline="p", variant="base", variant_key="k", benchmark="rte", seed=seed, learning_rate=lr,
        metrics={"accuracy": valid}, selection_metrics=None if select is None else {"accuracy": select}, main_metric="accuracy",
        train_examples=8, examples_seen=8, eval_examples=8, wall_seconds=0.1, code_version="c",
    )


def test_the_learning_rate_is_chosen_on_the_selection_slice_not_on_validation():
    # 1e-4 is better on validation, 3e-5 on the selection slice: the cell reports 3e-5's validation scores
    runs = [_run(1e-4, s, v, 0.5) for s, v in enumerate([0.9, 0.8, 0.85])] + [_run(3e-5, s, v, 0.7) for s, v in enumerate([0.6, 0.62, 0.64])]
    cell = benchmark_cell(runs, SELECTIONS["median"])
    assert cell.value == pytest.approx(0.62) and cell.n == 3 and (cell.min, cell.max) == (0.6, 0.64)
    assert "learning rate 3e-05, the best of 2 on the selection slice of train" in cell.note
    # runs without a selection score (older code) cannot choose between learning rates: the cell is missing
    old = [_run(1e-4, 0, 0.9, None), _run(3e-5, 0, 0.6, None)]
    missing = benchmark_cell(old, SELECTIONS["median"])
    assert missing.value is None and "no selection score" in missing.note
    # a single learning rate needs no selection
    assert benchmark_cell([_run(1e-4, 0, 0.9, None)], SELECTIONS["median"]).value == 0.9


@pytest.mark.parametrize("benchmark, floor", [("mrpc", 300), ("boolq", 250)])
def test_a_carved_dev_set_leaves_a_full_selection_slice(benchmark, floor, tiny_backbone, mirror, tmp_path):
    """MRPC's and BoolQ's validation is carved from the rows that train then holds; the selection slice
    carved from that train must not be empty (both carves with one hash would leave nothing)."""
    prepare_task(get_task(benchmark), mirror, 0.1, 0, tmp_path)
    train = load_split(tmp_path, get_task(benchmark).family, "train")
    config = FinetuneConfig(benchmarks=[benchmark], batch_size=16, max_length=32, max_eval_examples=8, epochs=0.02,
                            learning_rates=[1e-3, 3e-5], eval_every=5)
    record = finetune(FinetuneRun(Variant("base", "k", tiny_backbone), benchmark, 0, 1e-3), tmp_path, config, "unit")
    assert record.selection_examples >= floor, f"{benchmark}: selection slice of {record.selection_examples}"
    assert record.selection_examples + record.train_examples == len(train)
    assert 0.08 < record.selection_examples / len(train) < 0.12


def test_a_selection_slice_below_the_floor_stops_the_run_in_one_line():
    records = [Record(f"ex-{i}") for i in range(200)]
    train, selection = carve_selection(records, 0.1, "rte")
    assert len(selection) >= selection_floor(200) == 10 and len(train) + len(selection) == 200
    with pytest.raises(SelectionError, match=r"^rte: the selection slice holds \d of 200 training examples, below the floor of 10: ") as caught:
        carve_selection(records, 0.01, "rte")
    assert "\n" not in str(caught.value)
    assert selection_floor(10_000) == 50 and selection_floor(3) == 1
