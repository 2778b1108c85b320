"""Renderings: the CSV (stable columns, one header, unformatted numbers), Markdown and JSON."""

import csv
import io
import math

from muppet_core.leaderboard.aggregate import aggregate
from muppet_core.leaderboard.render import flat_columns, from_csv, table_rows, to_csv, to_json, to_markdown
from muppet_core.leaderboard.schema import Leaderboard
from tests.unit.leaderboard.conftest import make_record

BENCHMARKS = ["sst2", "rte", "copa"]


def test_csv_has_one_header_row_and_a_stable_column_order(records):
    board = aggregate(records, BENCHMARKS, "p")
    text = to_csv(board)
    header, *rows = list(csv.reader(io.StringIO(text)))
    assert header == flat_columns(board) == [
        "model", "backbone", "variant", "variant_key", "selection", "own", "computed_at", "run", "code_version", "older_code",
        *[f"{b}{s}" for b in BENCHMARKS for s in ("", ".n", ".min", ".max", ".std", ".failed", ".note", ".scored")],
        "avg.classification", "avg.classification.note", "avg.multiple_choice", "avg.multiple_choice.note", "average", "average.note",
    ]
    assert [r[0] for r in rows] == ["minilm / base", "minilm / prefinetuned", "minilm / prefinetuned - base"]
    assert to_csv(aggregate(list(reversed(records)), BENCHMARKS, "p")) == text


def test_csv_numbers_are_unformatted_and_a_missing_cell_is_empty_with_its_reason():
    records = [make_record("base", "sst2", 0, 0.123456789012345), make_record("base", "rte", 0, None)]
    text = to_csv(aggregate(records, ["sst2", "rte"], "p"))
    assert "0.123456789012345" in text
    table = from_csv(text)
    assert table.loc["minilm / base", "sst2"] == 0.123456789012345
    assert table.loc["minilm / base", "sst2.n"] == 1
    assert math.isnan(table.loc["minilm / base", "rte"]) and table.loc["minilm / base", "rte.failed"] == 1
    assert table.loc["minilm / base", "rte.note"] == "1 of 1 runs failed: RuntimeError: CUDA out of memory"
    assert math.isnan(table.loc["minilm / base", "average"])


def test_markdown_shows_selection_runs_spread_and_missing_cells_with_reasons(records):
    md = to_markdown(aggregate(records, BENCHMARKS, "p"))
    assert "median over seeds" in md
    assert "| model | sst2 (accuracy) | rte (accuracy) | copa (accuracy) | avg.classification | avg.multiple_choice | average |" in md
    assert "| minilm / base | 84.0 (n=3, 80.0–90.0) | 60.0 (n=3, 50.0–70.0) |" in md
    line = next(l for l in md.splitlines() if l.startswith("| minilm / prefinetuned |"))
    assert "| — [1] |" in line and "0.0" not in line.split("|")[3]
    assert "1. minilm / prefinetuned, rte: 3 of 3 runs failed: RuntimeError: CUDA out of memory" in md
    assert "### Pre-finetuned minus base (points)" in md and "| minilm / prefinetuned - base | +3.0 |" in md


def test_table_rows_match_the_csv_and_json_round_trips(records):
    board = aggregate(records, BENCHMARKS, "p")
    frame = from_csv(to_csv(board))
    for row in table_rows(board):
        for name, value in row.items():
            if name != "model" and isinstance(value, float):
                assert math.isclose(frame.loc[row["model"], name], value)
            elif value is None and name != "model":
                assert frame.loc[row["model"], name] != frame.loc[row["model"], name]  # NaN
    assert Leaderboard.model_validate_json(to_json(board)) == board
