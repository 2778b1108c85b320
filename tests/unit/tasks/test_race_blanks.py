"""RACE's fill-in-the-blank questions are read with each option in the blank, as fairseq's RACE preprocessing writes them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from muppet_core.data.prepare import normalize_rows
from muppet_core.data.records import problem
from muppet_core.data.sources import raw_splits
from muppet_core.families import get_family
from muppet_core.families.multiple_choice import MultipleChoiceRecord
from muppet_core.registry import resolve
from muppet_core.tasks.catalog import get_task
from muppet_core.tasks.normalizers.multiple_choice import race, race_question


def fairseq_text(question: str, option: str) -> str:
    """The question-option text of fairseq's examples/roberta/preprocess_RACE.py."""
    text = question.replace("_", option) if "_" in question else " ".join([question, option])
    return re.sub(r"\s+", " ", text)


def _passage(mirror: str, path: str) -> dict:
    return json.loads(Path(mirror, "race", "RACE", path).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tokenizer(minilm_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path)


def test_blanks_are_filled_by_each_option_and_other_questions_are_kept(mirror, tokenizer):
    spec, family = get_task("race"), get_family("multiple_choice")
    row = _passage(mirror, "dev/middle/1584.txt")
    records = race(row, spec)
    opening, middle, plain = records[0], records[1], records[3]
    assert row["questions"][0] == "_  works every day in summer."
    assert opening.context == "" and opening.choices == [f"{o} works every day in summer." for o in row["options"][0]]
    assert row["questions"][1] == "In summer the monkey   _   every day."
    assert middle.context == "In summer the monkey" and middle.choices[1] == "plays in the tree every day."
    label = "ABCD".index(row["answers"][3])
    assert plain == MultipleChoiceRecord("Which is TRUE?", row["options"][3], label, "middle1584.txt-3", row["article"])
    for record in records:
        assert problem(record, family, spec) is None
    # the model reads (article, question with the option), as fairseq does
    features, _ = family.encode(records, tokenizer, 512)
    for question, options, feature in zip(row["questions"], row["options"], features):
        for option, choice in zip(options, feature["choices"]):
            text = tokenizer(fairseq_text(question, option).strip(), add_special_tokens=False)["input_ids"]
            assert choice["input_ids"][-len(text) - 1 : -1] == text, (question, option)
    # several blanks take one ';'-separated part each
    homework = race(_passage(mirror, "dev/middle/2333.txt"), spec)
    assert [r.choices for r in homework if r.context == "I do my homework from"] == [
        ["seven to eight every evening.", "six to eight every evening.", "seven to nine every evening.", "six to eight every evening."]
    ]
    # the one-question layout (RACE-M test) too
    row = {"article": "...", "question": "The first kite was born when   _  .", "options": ["a", "b", "c", "d"], "answer": "B"}
    kite = race_question(row, spec)
    assert kite.context == "The first kite was born when" and kite.choices == ["a .", "b .", "c .", "d ."] and kite.label == 1


def test_every_validation_question_leaves_no_blank(mirror):
    spec = get_task("race")
    _, splits = raw_splits(spec, mirror)
    rows = list(splits["validation"])
    records, report = normalize_rows(spec, "validation", rows, resolve(spec.normalizer))
    assert report["dropped"] == 0 and len(records) == 3451 + 1436
    questions = [(q, opts) for row in rows for q, opts in zip(row["questions"], row["options"], strict=True)]
    blanks = 0
    for (question, options), record in zip(questions, records, strict=True):
        assert "_" not in record.context
        assert ["_" in c for c in record.choices] == ["_" in o for o in options]  # a blank only where an option has one
        if question.count("_") == 1:
            blanks += 1
            joined = [" ".join(filter(None, [record.context, c])) for c in record.choices]
            # fairseq's text, but a blank glued to the word before it ('because_.') is a word of its own
            assert joined == [fairseq_text(question.replace("_", " _"), o).strip() for o in options], question
        elif "_" not in question:
            assert record.context == question and record.choices == options
    assert blanks > 2000


def test_an_empty_context_needs_a_passage():
    spec, family = get_task("race"), get_family("multiple_choice")
    assert problem(MultipleChoiceRecord("", ["a b", "c d"], 0, passage="An article."), family, spec) is None
    assert problem(MultipleChoiceRecord(" ", ["a b", "c d"], 0), family, spec) == "empty context"
