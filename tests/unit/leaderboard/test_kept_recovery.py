"""Issue 29: the kept index and the table survive damage, and backbones whose folders share a name
stay apart. A corrupt or deleted ``kept.json`` is rebuilt from the history's copy of it (the results
it names are content-addressed), with a warning; `muppet results` rebuilds a deleted
``leaderboard.csv`` from the kept results; two folders named alike get labels from their paths and
entries of their own, and pruning one leaves the other."""

from __future__ import annotations

import json
import logging

import pandas as pd

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.leaderboard.history import read_history
from muppet_core.leaderboard.kept import index_path, read_index
from muppet_core.leaderboard.read import results_text
from muppet_core.leaderboard.render import from_csv
from muppet_core.leaderboard.stage import leaderboard_stage, prune_backbone
from tests.faults.report import Outcome, record
from tests.unit.leaderboard.conftest import make_record, stored
from tests.unit.leaderboard.test_kept import OWN_SPEC, SETTINGS, SPECS, evaluate

TWINS = ["/runs/a/tiny", "/runs/b/tiny"]
"""Two backbones in folders of one name."""


def twin_records(spec: str, score: float) -> list:
    """A run of ``spec``: its records carry the label its fine-tunes gave them ('tiny', as the other's)."""
    return [make_record("base", b, seed, score + 0.01 * seed, backbone="tiny").model_copy(update={"variant_key": f"key-{spec}"})
            for b in SETTINGS.benchmarks for seed in SETTINGS.seeds]


def test_folders_of_one_name_get_labels_from_their_paths_and_prune_apart(tmp_path, capsys):
    from flows.cli import main

    store = ArtifactStore(str(tmp_path / "store"))
    for spec, score, run in [(TWINS[0], 0.6, "r1"), (TWINS[1], 0.8, "r2")]:  # evaluated one after the other
        records = twin_records(spec, score)
        board = leaderboard_stage("p", [spec], SETTINGS.benchmarks, stored(store, records), records, store, run=run, finetune=SETTINGS,
                                  own=TWINS[0]).board
    index = read_index(store, "p")
    assert list(index.entries) == TWINS and [e.label for e in index.entries.values()] == ["tiny", "b-tiny"]
    assert board.backbones == {"tiny": TWINS[0], "b-tiny": TWINS[1]}  # the header names each one's own path
    assert {r.backbone: r.own for r in board.rows} == {"tiny": True, "b-tiny": False}
    scores = {r.backbone: r.cells["rte"].value for r in board.rows}
    assert scores["tiny"] < scores["b-tiny"]  # each row holds its own backbone's records

    assert main(["results", "p", "--store", store.root, "--prune", "b-tiny"]) == 0
    assert "pruned 'b-tiny'" in capsys.readouterr().out
    assert list(read_index(store, "p").entries) == [TWINS[0]]
    assert set(from_csv(results_text(store, "p", "csv"))["backbone"]) == {"tiny"}

    records = twin_records(TWINS[0], 0.6) + twin_records(TWINS[1], 0.8)  # both in one run: the flow says whose each record is
    board = leaderboard_stage("p", TWINS, SETTINGS.benchmarks, stored(store, records), records, store, run="r3", finetune=SETTINGS,
                              own=TWINS[0], owners={f"key-{spec}": spec for spec in TWINS}).board
    assert {r.backbone: r.cells["rte"].value for r in board.rows} == scores
    record(Outcome("bad input", "two backbones in folders of one name (/runs/a/tiny, /runs/b/tiny), evaluated one after the other and in one run",
                   "labels 'tiny' and 'b-tiny', an entry each in kept.json, each row its own records and path; `--prune b-tiny` removes that one only"))


def test_a_corrupt_kept_json_is_rebuilt_from_the_history_with_a_warning(tmp_path, caplog, capsys):
    from flows.cli import main

    store = ArtifactStore(str(tmp_path / "store"))
    evaluate(store, "minilm", 0.70, "r1")
    evaluate(store, "distil-tiny", 0.60, "r2")
    kept = store.local_path(index_path("p"))
    good = read_index(store, "p")
    kept.write_text(kept.read_text()[:200])  # cut short, as a full disk or a crash mid-write would leave it

    with caplog.at_level(logging.WARNING):
        board = evaluate(store, "roberta-tiny", 0.80, "r3").board
    assert "kept.json is damaged" in caplog.text and "rebuilt it from the results history (2 backbone(s)" in caplog.text
    assert [r.backbone for r in board.rows] == ["minilm", "minilm", "distil-tiny", "distil-tiny", "roberta-tiny", "roberta-tiny"]
    assert {k: e.results for k, e in read_index(store, "p").entries.items() if k in good.entries} == {k: e.results for k, e in good.entries.items()}
    assert list(kept.parent.glob("kept.json.damaged-*"))  # the damaged file is kept aside, not overwritten

    kept.write_text("{not json")  # --prune rebuilds it too, instead of a traceback
    assert main(["results", "p", "--store", store.root, "--prune", "distil-tiny"]) == 0
    assert "pruned 'distil-tiny'" in capsys.readouterr().out
    kept.unlink()  # deleted: rebuilt all the same, every backbone's rows kept
    board = evaluate(store, "distil-tiny", 0.65, "r4").board
    assert {r.backbone for r in board.rows} == {"minilm", "distil-tiny", "roberta-tiny"}
    assert read_history(store, "p")[-1].kept.entries.keys() == read_index(store, "p").entries.keys()
    record(Outcome("fault", "kept.json cut short, then not JSON, then deleted, before a run and before `--prune`",
                   "rebuilt from the results history with a warning (the damaged file kept aside); `--prune` works; every backbone's rows kept"))


def test_results_rebuilds_a_deleted_leaderboard_csv_from_the_records(tmp_path, capsys, caplog):
    from flows.cli import main

    store = ArtifactStore(str(tmp_path / "store"))
    evaluate(store, "minilm", 0.70, "r1")
    evaluate(store, "distil-tiny", 0.60, "r2")
    csv = store.local_path("pipelines/p/leaderboard.csv")
    published = csv.read_text()
    history = len(read_history(store, "p"))
    csv.unlink()
    with caplog.at_level(logging.WARNING):
        assert main(["results", "p", "--store", store.root, "--format", "csv"]) == 0
    assert capsys.readouterr().out == published == csv.read_text()  # the same table, from the kept records
    assert "leaderboard.csv of 'p' missing from" in caplog.text and len(read_history(store, "p")) == history
    assert list(pd.read_csv(csv)["backbone"].unique()) == ["minilm", "distil-tiny"]
    assert json.loads(results_text(store, "p", "json"))["backbones"] == {"minilm": OWN_SPEC, "distil-tiny": SPECS["distil-tiny"]}
