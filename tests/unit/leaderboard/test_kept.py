"""The table keeps every backbone evaluated on the pipeline: merged run by run, left out when its
results no longer match the settings, marked when an older code version computed them, pruned
on request."""

from __future__ import annotations

import pytest

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.config import FinetuneConfig
from muppet_core.errors import MuppetError
from muppet_core.leaderboard.history import read_history, render_history
from muppet_core.leaderboard.kept import read_index
from muppet_core.leaderboard.read import results_text
from muppet_core.leaderboard.render import OWN, from_csv
from muppet_core.leaderboard.stage import leaderboard_stage, prune_backbone
from tests.unit.leaderboard.conftest import make_record, stored

SETTINGS = FinetuneConfig(benchmarks=["sst2", "rte"], seeds=[0, 1])
OWN_SPEC = "package:minilm"
SPECS = {"minilm": OWN_SPEC, "distil-tiny": "/models/distil-tiny", "roberta-tiny": "/models/roberta-tiny"}


def evaluate(store: ArtifactStore, label: str, score: float, run: str, settings: FinetuneConfig = SETTINGS, code: str = "c", **kwargs):
    """One leaderboard run that evaluated one backbone: base and pre-finetuned, every benchmark and seed."""
    records = [
        make_record(variant, b, seed, score + bonus + 0.01 * seed, backbone=label).model_copy(update={"code_version": code})
        for variant, bonus in (("base", 0.0), ("prefinetuned", 0.05)) for b in settings.benchmarks for seed in settings.seeds
    ]
    outputs = stored(store, records)
    return leaderboard_stage(
        "p", [SPECS[label]], settings.benchmarks, outputs, records, store, selection=settings.selection, run=run,
        finetune=settings, own=OWN_SPEC, **kwargs,
    )


def cells(board, backbone: str) -> dict:
    return {r.model: {k: c.model_dump() for k, c in r.cells.items()} for r in board.rows if r.backbone == backbone}


def test_each_run_adds_its_backbones_and_keeps_the_others_unchanged(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    first = evaluate(store, "minilm", 0.70, "r1").board
    second = evaluate(store, "distil-tiny", 0.60, "r2").board
    third = evaluate(store, "roberta-tiny", 0.80, "r3").board
    assert [r.backbone for r in third.rows] == ["minilm", "minilm", "distil-tiny", "distil-tiny", "roberta-tiny", "roberta-tiny"]
    assert cells(third, "minilm") == cells(first, "minilm") and cells(third, "distil-tiny") == cells(second, "distil-tiny")
    assert {r.backbone: r.run for r in third.rows} == {"minilm": "r1", "distil-tiny": "r2", "roberta-tiny": "r3"}
    assert all(r.computed_at for r in third.rows) and [r.own for r in third.rows] == [True, True, False, False, False, False]
    assert [d.backbone for d in third.deltas] == ["minilm", "distil-tiny", "roberta-tiny"] and third.left_out == []
    table = from_csv(results_text(store, "p", "csv"))
    assert table.loc["distil-tiny / base", "run"] == "r2" and table.loc["minilm / base", "own"]
    md = results_text(store, "p", "md")
    ranked = [line.split(" | ")[0].strip("| ") for line in md.splitlines() if line.startswith("| ") and " / " in line and " - base" not in line]
    assert ranked[:6] == ["roberta-tiny / prefinetuned", "roberta-tiny / base", f"minilm / prefinetuned {OWN}", f"minilm / base {OWN}",
                          "distil-tiny / prefinetuned", "distil-tiny / base"]
    assert "ranked by the average, best first" in md and ", run r2 |" in md
    history = from_csv(render_history(read_history(store, "p"), "csv")).reset_index()
    assert list(zip(history["run"], history["backbone"])) == [("r1", "minilm")] * 2 + [("r2", "distil-tiny")] * 2 + [("r3", "roberta-tiny")] * 2
    assert results_text(store, "p", "csv", backbone="distil-tiny").count("distil-tiny / ") == 3


def test_an_unchanged_evaluation_keeps_its_time_and_run_and_the_table(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    first = evaluate(store, "minilm", 0.70, "r1")
    again = evaluate(store, "minilm", 0.70, "r2")
    assert again.board.key == first.board.key and again.output.cache_hit
    assert {r.run for r in again.board.rows} == {"r1"}
    changed = evaluate(store, "minilm", 0.75, "r3").board
    assert {r.run for r in changed.rows} == {"r3"} and changed.rows[0].computed_at >= first.board.rows[0].computed_at


def test_other_settings_leave_rows_out_and_the_markdown_says_how_many_and_why(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    evaluate(store, "minilm", 0.70, "r1")
    evaluate(store, "distil-tiny", 0.60, "r2")
    shaped = SETTINGS.model_copy(update={"concurrency": 4, "checkpoint_every": 7, "selection": "mean", "train_fractions": [0.5]})
    assert len(evaluate(store, "roberta-tiny", 0.80, "r3", settings=shaped).board.rows) == 6  # no cell changes with these
    longer = SETTINGS.model_copy(update={"epochs": 2.0})
    board = evaluate(store, "roberta-tiny", 0.80, "r4", settings=longer).board
    assert {r.backbone for r in board.rows} == {"roberta-tiny"}
    assert [(x.backbone, x.rows, x.run) for x in board.left_out] == [("minilm", 2, "r1"), ("distil-tiny", 2, "r2")]
    assert board.left_out[0].reason == "computed with other fine-tune settings: epochs 1.0, now 2.0"
    md = results_text(store, "p", "md")
    assert "**4 row(s) of 2 backbone(s) left out**" in md and "### Left out" in md
    assert "- `minilm` (2 row(s), " in md and "run r1): computed with other fine-tune settings: epochs 1.0, now 2.0" in md
    more = SETTINGS.model_copy(update={"benchmarks": ["sst2", "rte", "mrpc"]})
    board = evaluate(store, "distil-tiny", 0.60, "r5", settings=more).board
    assert {x.backbone: x.reason for x in board.left_out} == {
        "minilm": "computed with other benchmarks: benchmarks rte, sst2, now mrpc, rte, sst2",
        "roberta-tiny": "computed with other benchmarks: benchmarks rte, sst2, now mrpc, rte, sst2; epochs 2.0, now 1.0",
    }
    back = evaluate(store, "distil-tiny", 0.60, "r6").board  # the first settings again: minilm's rows come back
    assert {r.backbone for r in back.rows} == {"minilm", "distil-tiny"} and [x.backbone for x in back.left_out] == ["roberta-tiny"]


def test_rows_of_an_older_code_version_stay_marked(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    evaluate(store, "minilm", 0.70, "r1", code="old")
    board = evaluate(store, "distil-tiny", 0.60, "r2", code="new").board
    assert {r.backbone: r.older_code for r in board.rows} == {"minilm": True, "distil-tiny": False}
    assert {r.backbone: r.code_version for r in board.rows} == {"minilm": "old", "distil-tiny": "new"}
    md = results_text(store, "p", "md")
    assert "2 row(s) were computed by an older version of the fine-tuning code" in md
    assert sum(", run r1, older code |" in line for line in md.splitlines()) == 2


def test_kept_results_that_cannot_be_read_are_left_out_with_why(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    evaluate(store, "minilm", 0.70, "r1")
    for ref in read_index(store, "p").entries[OWN_SPEC].results[:1]:
        store.discard(ref.stage, ref.key)
    board = evaluate(store, "distil-tiny", 0.60, "r2").board
    assert [r.backbone for r in board.rows] == ["distil-tiny", "distil-tiny"]
    assert board.left_out[0].backbone == "minilm" and board.left_out[0].reason.startswith("its results can no longer be read from the store")


def test_prune_drops_a_backbone_records_it_in_the_history_and_keeps_its_results(tmp_path, capsys):
    from flows.cli import main

    store = ArtifactStore(str(tmp_path / "store"))
    evaluate(store, "minilm", 0.70, "r1")
    evaluate(store, "distil-tiny", 0.60, "r2")
    refs = read_index(store, "p").entries[SPECS["distil-tiny"]].results
    assert main(["results", "p", "--store", store.root, "--prune", "distil-tiny"]) == 0
    assert "pruned 'distil-tiny' (2 row(s)) from the leaderboard of 'p'" in capsys.readouterr().out
    table = from_csv(results_text(store, "p", "csv"))
    assert sorted(set(table["backbone"])) == ["minilm"]
    assert all(store.has(ref.stage, ref.key) for ref in refs)
    entries = read_history(store, "p")
    assert entries[-1].pruned == "distil-tiny" and [r.backbone for r in entries[-1].board.rows] == ["minilm", "minilm"]
    assert "| distil-tiny (pruned) |" in render_history(entries, "md")
    with pytest.raises(MuppetError, match="no backbone 'distil-tiny' on the leaderboard of 'p'; known: minilm"):
        prune_backbone(store, "p", "distil-tiny")
    assert main(["results", "p", "--store", store.root, "--prune", "bert"]) == 2
    assert "known: minilm" in capsys.readouterr().err
    board = evaluate(store, "distil-tiny", 0.60, "r3").board
    assert {r.backbone for r in board.rows} == {"minilm", "distil-tiny"}


def test_prune_before_any_run_says_how_to_get_a_table(tmp_path):
    with pytest.raises(MuppetError, match="run `muppet run p` first"):
        prune_backbone(ArtifactStore(str(tmp_path)), "p", "minilm")
