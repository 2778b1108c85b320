"""Multiple-choice entries on the real mirror files, and the hub-only multiple-choice entries."""

from __future__ import annotations

import collections

import pytest

from muppet_core.data.prepare import load_split
from muppet_core.families.multiple_choice import MultipleChoiceRecord
from muppet_core.registry import resolve
from muppet_core.tasks.catalog import load_catalog

# Rows per split as counted in shared/data/SOURCES.md (RACE: questions, not passages).
SOURCE_ROWS = {
    "copa": {"train": 400, "validation": 100},
    "openbookqa": {"train": 4957, "validation": 500, "test": 500},
    "race": {"train": 50882 + 25421, "validation": 3451 + 1436, "test": 1436},
    "sciq": {"train": 11679, "validation": 1000, "test": 1000},
}
# Datasets with a single (validation) split: its rows; train and validation are carved from it.
CARVED_TOTAL = {"wsc273": 273, "hellaswag": 10042, "piqa": 1838, "cosmosqa": 2985}
# Rows dropped on purpose, per split: two RACE train/high passages hold no questions.
EXPECTED_DROPS = {"race": {"train": {"rejected by normalizer": 2}}}
HUB_ONLY = ["swag", "qasc", "quartz", "mathqa"]


def _records(out, split):
    return load_split(out, "multiple_choice", split)


def _all(task, prepared):
    stats, out = prepared(task)
    return [r for split in stats["rows"] for r in _records(out, split)]


@pytest.mark.parametrize("task", [*SOURCE_ROWS, *CARVED_TOTAL])
def test_multiple_choice_dataset_normalizes_from_the_mirror(task, prepared):
    spec = load_catalog()[task]
    stats, out = prepared(task)
    assert stats["source"] == "mirror" and stats["family"] == "multiple_choice"
    drops = {s: d["drop_reasons"] for s, d in stats["normalization"].items() if d["dropped"]}
    assert drops == EXPECTED_DROPS.get(task, {}), stats["normalization"]
    if task in SOURCE_ROWS:
        assert stats["rows"] == SOURCE_ROWS[task]
        assert stats["carved"] == {}
    else:
        dropped = sum(d["dropped"] for d in stats["normalization"].values())
        assert set(stats["rows"]) == {"train", "validation"} and set(stats["carved"]) == {"train", "validation"}
        assert stats["rows"]["train"] + stats["rows"]["validation"] == CARVED_TOTAL[task] - dropped
        assert 0.07 < stats["rows"]["validation"] / CARVED_TOTAL[task] < 0.13
    for split in stats["rows"]:
        records = _records(out, split)
        assert all(isinstance(r, MultipleChoiceRecord) for r in records)
        assert all(len(r.choices) == spec.num_choices and 0 <= r.label < len(r.choices) for r in records)
        assert len({r.id for r in records}) == len(records), f"duplicate ids in {split}"
    train, valid = _records(out, "train"), _records(out, "validation")
    assert not {r.id for r in train} & {r.id for r in valid}, "an example is both trained and evaluated on"


def test_copa_asks_for_the_cause_or_the_effect(prepared):
    first, *_ = _records(prepared("copa")[1], "train")
    assert first.context == "My body cast a shadow over the grass. What was the cause?"
    assert first.choices[first.label] == "The sun was rising."
    effect = _records(prepared("copa")[1], "validation")[0]
    assert effect.context == "The man turned on the faucet. What happened as a result?"
    assert effect.choices[effect.label] == "Water flowed from the spout."


def test_wsc273_options_are_shuffled_so_the_gold_is_not_always_first(prepared):
    records = _all("wsc273", prepared)
    gold_first = sum(r.label == 0 for r in records)
    assert 0.35 < gold_first / len(records) < 0.65  # the file always lists the gold answer first
    councilmen = next(r for r in records if r.id == "PTQ2OT9WVFOA7MRHO35VOTZZO1YPKP-1")
    assert councilmen.context == "The city councilmen refused the demonstrators a permit because _ feared violence."
    assert councilmen.choices[councilmen.label] == "The city councilmen"
    assert sorted(councilmen.choices) == ["The city councilmen", "The demonstrators"]


def test_hellaswag_reads_six_line_blocks(prepared):
    records = _all("hellaswag", prepared)
    roof = next(r for r in records if r.context == "Roof shingle removal: A man is sitting on a roof. he")
    assert roof.choices[roof.label] == "starts pulling up roofing on a roof." and roof.label == 3
    assert collections.Counter(r.label for r in records) == {2: 2584, 0: 2515, 1: 2485, 3: 2458}


def test_piqa_takes_labels_from_the_aligned_label_file(prepared):
    records = _all("piqa", prepared)
    guinea_pig = next(r for r in records if r.context == "How do I ready a guinea pig cage for it's new occupants?")
    assert guinea_pig.label == 0 and "ripped paper strips" in guinea_pig.choices[0]
    assert collections.Counter(r.label for r in records) == {1: 928, 0: 910}


def test_race_gives_one_record_per_question(prepared):
    stats, out = prepared("race")
    valid = {r.id: r for r in _records(out, "validation")}
    sherman = valid["high10024.txt-0"]
    assert sherman.context == "The Sherman Antitrust Act" and sherman.passage  # "The Sherman Antitrust Act  _  ."
    assert sherman.choices[sherman.label] == "sought to eliminate monopolies in favor of competition in the market-place ."
    # Answer letters of dev high + middle as counted in SOURCES.md.
    assert stats["labels"]["validation"] == {"0": 756 + 311, "1": 907 + 384, "2": 917 + 386, "3": 871 + 355}
    test = _records(out, "test")
    assert test[0].passage.startswith('It is well-known that the "prom"')
    assert stats["labels"]["test"] == {"0": 309, "1": 388, "2": 374, "3": 365}


def test_sciq_shuffles_the_correct_answer_among_the_distractors(prepared):
    stats, out = prepared("sciq")
    evolution = _records(out, "validation")[0]
    assert evolution.context == "Who proposed the theory of evolution by natural selection?" and evolution.passage == ""
    assert evolution.choices[evolution.label] == "darwin"
    for split, counts in stats["labels"].items():
        assert set(counts) == {"0", "1", "2", "3"}
        assert all(0.2 < n / stats["rows"][split] < 0.3 for n in counts.values()), (split, counts)
    with_support = [r for r in _records(out, "train") if r.passage]
    assert len(with_support) >= 10000  # 10,481 train questions have a support paragraph


def test_cosmosqa_keeps_the_question_apart_from_its_passage(prepared):
    records = _all("cosmosqa", prepared)
    divorce = next(r for r in records if r.id.endswith("##Blog_56156##q1_a1##378G7J1SJNCDAAIN46FM2P7T6KZEW2"))
    assert divorce.passage.startswith("Do i need to go for a legal divorce ?")
    assert divorce.context == "Why is this person asking about divorce ?"
    assert divorce.choices[divorce.label] == "He wants to get married to a different person ."
    assert collections.Counter(r.label for r in records) == {2: 761, 3: 751, 0: 744, 1: 729}


def test_openbookqa_reads_the_dev_tsv_choices(prepared):
    _, out = prepared("openbookqa")
    dev = {r.id: r for r in _records(out, "validation")}
    assert dev["8-376"].choices == ["Deep sea animals", "fish", "Long Sea Fish", "Far Sea Animals"] and dev["8-376"].label == 0
    assert dev["7-57"].choices[dev["7-57"].label] == "uses what it needs"
    # Train still comes from the jsonl, whose choices are unambiguous (the tsv's hold a stray '(D)').
    learned = next(r for r in _records(out, "train") if r.id == "12-1145")
    assert learned.choices[2] == "ducks sitting on their eggs (D) baby birds chewing worms"


def test_hub_only_entries_normalize_hub_rows():
    catalog = load_catalog()
    rows = {
        "swag": {"startphrase": "Members of the procession walk down the street. Someone", "ending0": "a", "ending1": "b", "ending2": "c", "ending3": "d", "label": 2},
        "qasc": {"question": "What do plants need?", "choices": {"label": list("ABCDEFGH"), "text": list("abcdefgh")}, "answerKey": "C"},
        "quartz": {"question": "Is it warmer or colder?", "choices": {"label": ["A", "B"], "text": ["warmer", "colder"]}, "answerKey": "B"},
        "mathqa": {"Problem": "what is 1 + 1 ?", "options": "a ) 1 , b ) 2 , c ) 1,000 , d ) 4 , e ) none of these", "correct": "b"},
    }
    expected = {"swag": (2, "c"), "qasc": (2, "c"), "quartz": (1, "colder"), "mathqa": (1, "2")}
    for task in HUB_ONLY:
        spec = catalog[task]
        assert not spec.mirror and spec.family == "multiple_choice" and spec.metric == "accuracy"
        record = resolve(spec.hub_normalizer())(rows[task], spec)
        assert len(record.choices) == spec.num_choices
        assert (record.label, record.choices[record.label]) == expected[task]
    mathqa = resolve(catalog["mathqa"].hub_normalizer())(rows["mathqa"], catalog["mathqa"])
    assert mathqa.choices == ["1", "2", "1,000", "4", "none of these"]
