"""Multiple-choice encoding keeps the question and the choice whole: only the passage is truncated."""

from __future__ import annotations

import pytest

from muppet_core.data.prepare import normalize_rows
from muppet_core.data.sources import raw_splits
from muppet_core.families.multiple_choice import FAMILY
from muppet_core.registry import resolve
from muppet_core.tasks.catalog import load_catalog

MAX_LENGTH = 128


def _contains(seq: list[int], part: list[int]) -> bool:
    return any(seq[i : i + len(part)] == part for i in range(len(seq) - len(part) + 1))


@pytest.mark.parametrize("task", ["race", "sciq", "cosmosqa"])
def test_every_validation_question_and_choice_survive_encoding_at_128_tokens(task, mirror, minilm_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    spec = load_catalog()[task]
    _, splits = raw_splits(spec, mirror)
    records, _ = normalize_rows(spec, "validation", splits["validation"], resolve(spec.normalizer))
    with_passage = [r for r in records if r.passage]
    assert len(with_passage) > 0.8 * len(records)
    features, dropped = FAMILY.encode(records, tokenizer, MAX_LENGTH)
    assert dropped == 0 and len(features) == len(records)
    questions = tokenizer([r.context for r in records], add_special_tokens=False)["input_ids"]
    flat_choices = tokenizer([c for r in records for c in r.choices], add_special_tokens=False)["input_ids"]
    k = 0
    for record, feature, question in zip(records, features, questions):
        for choice in feature["choices"]:
            ids = choice["input_ids"]
            assert len(ids) <= MAX_LENGTH and ids[-1] == tokenizer.sep_token_id
            assert _contains(ids, question), (record.id, record.context)
            assert _contains(ids, flat_choices[k]), (record.id, record.choices)
            k += 1
    full = sum(len(c["input_ids"]) == MAX_LENGTH for f in features for c in f["choices"]) / k
    if task == "race":
        # nearly every RACE sequence is cut; the former encoding, (passage + question, choice)
        # truncated from the end of the longer segment, lost the question in these
        assert full > 0.9
        sample = with_passage[:200]
        old = tokenizer([f"{r.passage}\n{r.context}" for r in sample], [r.choices[0] for r in sample], truncation=True, max_length=MAX_LENGTH)
        lost = sum(not _contains(ids, q) for ids, q in zip(old["input_ids"], tokenizer([r.context for r in sample], add_special_tokens=False)["input_ids"]))
        assert lost > 0.8 * len(sample)
