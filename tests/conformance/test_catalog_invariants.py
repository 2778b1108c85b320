"""Invariants of every catalog entry on its real prepared splits: train, selection slice and validation
share no content, the selection slice is large enough, gold predictions score the metric's best, a
constant prediction scores the majority floor, identical inputs carry one label, and n(i) is the count
of labels or choices found in the data.

The expected values are computed here, from the records; the project's metrics are what is checked.
Where the real data falls short of an invariant, the entry is listed below with what was measured and why.
"""

from __future__ import annotations

import collections
import functools
import math
import re
import string
import unicodedata
import warnings
from dataclasses import dataclass

import numpy as np
import pytest

from muppet_core.config import FinetuneConfig
from muppet_core.data.splits import carve_selection
from muppet_core.errors import SelectionError
from muppet_core.evaluation.metrics import METRICS, compute
from muppet_core.families import FAMILIES, get_family
from muppet_core.tasks.catalog import load_catalog

CATALOG = sorted(load_catalog())
SELECTION_FRACTION = FinetuneConfig.model_fields["selection_fraction"].default
MAX_LENGTH = 128  # a run-time sequence length, for the families whose n(i) is one

# The record fields a model reads, per family: what "the same example" means for content.
INPUTS = {
    "classification": ("text_a", "text_b"),
    "regression": ("text_a", "text_b"),
    "multiple_choice": ("passage", "context", "choices"),
    "span": ("question", "context"),
    "summarization": ("document",),
}


@dataclass(frozen=True)
class Shared:
    """Records of a later split whose content a former split also holds, as measured, and why."""

    selection: int
    """Selection-slice records whose content is also in the rest of train."""
    validation: int
    """Validation records whose content is also in train (selection slice included)."""
    reason: str


# Genuine duplicates of the sources (the same text under two ids), measured on the mirror's files.
SHARED_CONTENT = {
    "sst2": Shared(1, 0, "stsa.binary.train lists '... a pretentious mess ...' twice"),
    "ax_b": Shared(1, 0, "AX-b lists one sentence pair twice, under two sets of diagnostic tags (idx 535, 537)"),
    "cola": Shared(4, 18, "CoLA's sources repeat sentences within train ('I hit the ball.') and between train and dev "
                          "('He could not have been working.')"),
    "imdb": Shared(0, 1, "the TextFooler subset holds one review twice"),
    "multirc": Shared(15, 0, "a question lists the same answer text twice as two options ('When was Kayla Rolland shot? "
                             "February 17', 1-26-168 and 1-26-172)"),
    "openbookqa": Shared(10, 7, "one question stem with the same four choices, reordered, under two ids (9-723, 14-1340)"),
    "race": Shared(6, 5, "one article with its questions under two file names, tokenized apart (high11110.txt, high15327.txt)"),
    "squad": Shared(5, 3, "one question asked twice about a paragraph under two ids ('How old was Newton during Super Bowl 50?')"),
    "stsb": Shared(7, 6, "STS repeats pairs across years and files ('A woman peels a potato.' in sts-train and sts-dev)"),
    "trec": Shared(9, 15, "TREC.train repeats questions ('What is the speed of the Mississippi River ?' three times)"),
    "aeslc": Shared(149, 8, "one Enron email delivered to several mailboxes (the 'Welcome to UBS' email in 12 inboxes): "
                            "an 11% share of the selection slice, 0.4% of validation"),
}

# Identical inputs with different labels in the source itself (annotators disagreeing), as measured.
CONFLICTING_LABELS = {
    "cola": (16, "CoLA judges a repeated sentence differently in different source papers"),
    "multirc": (11, "an answer text listed twice as options of one question, once correct and once not"),
    "openbookqa": (1, "'Wax is on some plant leaves for what purpose?' asked twice (9-616, 12-272) with different answers"),
    "trec": (1, "'What are the twin cities ?' is DESC in TREC.train and LOC in TREC.test"),
}

# Entries too small for the invariants that need a selection slice or a validation split.
TOO_SMALL = {
    "cnn_dailymail": "the mirror holds a 6-article sample (SOURCES.md): a 10% carve leaves validation empty and the "
    "selection slice empty, which carve_selection refuses",
}


def _spec(name: str):
    return load_catalog()[name]


@functools.lru_cache(maxsize=None)
def normalized(text: str) -> str:
    """Casefolded NFKC text as word and punctuation tokens one space apart (spacing and case ignored)."""
    return " ".join(re.findall(r"\w+|[^\w\s]", unicodedata.normalize("NFKC", text).casefold()))


def content(record, family: str) -> tuple:
    """The normalized text a model reads for ``record`` (a list of choices as a sorted tuple)."""
    out = []
    for field in INPUTS[family]:
        value = getattr(record, field)
        out.append(tuple(sorted(normalized(v) for v in value)) if isinstance(value, list) else normalized(value or ""))
    return tuple(out)


def _selection(name: str, train: list) -> tuple[list, list]:
    return carve_selection(train, SELECTION_FRACTION, name)


def test_every_family_has_its_inputs_listed():
    assert set(INPUTS) == set(FAMILIES.names())


@pytest.mark.parametrize("name", CATALOG)
def test_train_selection_and_validation_share_no_content(name, entry_splits):
    spec, splits = _spec(name), entry_splits(name)
    if name in TOO_SMALL:
        pytest.skip(f"{name}: {TOO_SMALL[name]}")
    rest, selection = _selection(name, splits["train"])
    keys = {split: [content(r, spec.family) for r in records] for split, records in
            (("rest", rest), ("selection", selection), ("validation", splits["validation"]))}
    in_rest, in_train = set(keys["rest"]), set(keys["rest"]) | set(keys["selection"])
    shared_selection = [k for k in keys["selection"] if k in in_rest]
    shared_validation = [k for k in keys["validation"] if k in in_train]
    known = SHARED_CONTENT.get(name, Shared(0, 0, "no duplicates"))
    assert len(shared_selection) <= known.selection, (
        f"{name}: {len(shared_selection)} of {len(selection)} selection records repeat train content "
        f"(documented: {known.selection}, {known.reason}); first: {shared_selection[:2]}"
    )
    assert len(shared_validation) <= known.validation, (
        f"{name}: {len(shared_validation)} of {len(keys['validation'])} validation records repeat train content "
        f"(documented: {known.validation}, {known.reason}); first: {shared_validation[:2]}"
    )


@pytest.mark.parametrize("name", CATALOG)
def test_the_selection_slice_holds_the_floor(name, entry_splits):
    train = entry_splits(name)["train"]
    floor = max(1, min(50, math.ceil(0.05 * len(train))))  # 50 examples, or 5% of a smaller train
    if name in TOO_SMALL:
        with pytest.raises(SelectionError, match=f"below the floor of {floor}"):
            _selection(name, train)
        return
    rest, selection = _selection(name, train)
    assert len(selection) >= floor, f"{name}: {len(selection)} of {len(train)} in the selection slice, floor {floor}"
    assert len(rest) + len(selection) == len(train) and {id(r) for r in rest}.isdisjoint(id(r) for r in selection)
    assert abs(len(selection) - SELECTION_FRACTION * len(train)) <= 4 * math.sqrt(len(train) * 0.09) + 1  # binomial, 4 sigma


def _validation(name: str, entry_splits) -> list:
    records = entry_splits(name)["validation"]
    if name in TOO_SMALL:
        assert not records, f"{name} has validation records now: drop it from TOO_SMALL"
        pytest.skip(f"{name}: {TOO_SMALL[name]}")
    return records


def _rouge_tokens(text: str) -> int:
    """Tokens of ``text`` as ROUGE counts them: runs of ASCII letters and digits, case ignored."""
    return len(re.findall(r"[a-z0-9]+", text.lower()))


def _gold(spec, records: list) -> tuple:
    """(gold predictions, references) of the family's metrics."""
    if spec.family == "span":
        return [r.answer_text for r in records], [list(r.answers) or [r.answer_text] for r in records]
    if spec.family == "summarization":
        return [r.summary for r in records], [r.summary for r in records]
    labels = np.array([r.label for r in records])
    return labels, labels


@pytest.mark.parametrize("name", CATALOG)
def test_gold_predictions_score_the_metric_best(name, entry_splits):
    spec = _spec(name)
    records = _validation(name, entry_splits)
    names = [spec.metric, *spec.secondary_metrics]
    assert all(METRICS.get(m).higher_is_better for m in names)
    scores = compute(names, *_gold(spec, records))
    if spec.family == "summarization":
        # A reference with no n-gram of ROUGE-n has nothing to match: even the gold summary scores 0 there.
        tokens = [_rouge_tokens(r.summary) for r in records]
        best = {m: float(np.mean([t >= (2 if m == "rouge2" else 1) for t in tokens])) for m in names}
    else:
        best = dict.fromkeys(names, 1.0)
    assert scores == pytest.approx(best, abs=1e-9), name


def _squad_normalized(text: str) -> list[str]:
    """SQuAD v1.1's evaluation tokens: lowercase, no punctuation, no articles."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    return re.sub(r"\b(a|an|the)\b", " ", text).split()


def _squad_f1(prediction: str, gold: str) -> float:
    pred, ref = _squad_normalized(prediction), _squad_normalized(gold)
    same = sum((collections.Counter(pred) & collections.Counter(ref)).values())
    return 0.0 if not same else 2 * same / (len(pred) + len(ref))


def _label_floor(metric: str, references: list[int], constant: int) -> float:
    """The score of predicting ``constant`` everywhere, from the label counts (sklearn's conventions:
    an F1 with no predicted positive is 0; macro F1 averages over the classes present)."""
    share = collections.Counter(references)[constant] / len(references)
    f1_of_constant = 2 * share / (1 + share)
    return {
        "accuracy": share,
        "f1": f1_of_constant if constant == 1 else 0.0,
        "f1_macro": f1_of_constant / len(set(references) | {constant}),
        "matthews": 0.0,
    }[metric]


@pytest.mark.parametrize("name", CATALOG)
def test_a_constant_prediction_scores_the_majority_floor(name, entry_splits):
    spec = _spec(name)
    records = _validation(name, entry_splits)
    names = [spec.metric, *spec.secondary_metrics]
    if spec.family == "summarization":
        pytest.skip("a constant summary's ROUGE has no floor countable without a second ROUGE implementation")
    if spec.family == "regression":  # the mean score: a constant carries no correlation
        predictions = np.full(len(records), np.mean([r.label for r in records]))
        references, expected = np.array([r.label for r in records]), dict.fromkeys(names, 0.0)
    elif spec.family == "span":  # the most frequent answer
        counts = collections.Counter(" ".join(_squad_normalized(r.answer_text)) for r in records)
        answer = next(r.answer_text for r in records if " ".join(_squad_normalized(r.answer_text)) == counts.most_common(1)[0][0])
        predictions, references = [answer] * len(records), [list(r.answers) or [r.answer_text] for r in records]
        expected = {
            "exact_match": np.mean([any(_squad_normalized(answer) == _squad_normalized(g) for g in golds) for golds in references]),
            "squad_f1": np.mean([max(_squad_f1(answer, g) for g in golds) for golds in references]),
        }
    else:
        labels = [r.label for r in records]
        # classification: the majority label; multiple choice: the first choice
        constant = collections.Counter(labels).most_common(1)[0][0] if spec.family == "classification" else 0
        predictions, references = np.full(len(labels), constant), np.array(labels)
        expected = {m: _label_floor(m, labels, constant) for m in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns that an F1 with no predicted positive is 0
        scores = compute(names, predictions, references)
    assert scores == pytest.approx(expected, abs=1e-9), name


@pytest.mark.parametrize("name", CATALOG)
def test_identical_inputs_carry_one_label(name, entry_splits):
    spec, splits = _spec(name), entry_splits(name)
    if spec.family not in ("classification", "multiple_choice"):
        pytest.skip(f"{spec.family}: a repeated input may have several golds (scores, answer spans, summaries)")
    golds = collections.defaultdict(set)
    for records in splits.values():
        for r in records:
            gold = normalized(r.choices[r.label]) if spec.family == "multiple_choice" else r.label
            golds[content(r, spec.family)].add(gold)
    conflicting = [key for key, labels in golds.items() if len(labels) > 1]
    allowed, reason = CONFLICTING_LABELS.get(name, (0, "none known"))
    assert len(conflicting) <= allowed, (
        f"{name}: {len(conflicting)} inputs appear with different labels (documented: {allowed}, {reason}); first: {conflicting[:2]}"
    )


@pytest.mark.parametrize("name", CATALOG)
def test_n_i_is_the_count_found_in_the_data(name, entry_splits):
    spec, splits = _spec(name), entry_splits(name)
    family = get_family(spec.family).for_task(spec)
    records = [r for split in splits.values() for r in split]
    n = spec.loss_n_value(MAX_LENGTH, vocab_size=30522)
    if spec.family == "classification":
        labels = {r.label for r in records}
        assert labels == set(range(len(labels))) and n == len(labels) == family.head_shape(spec)["outputs"]
        assert spec.loss_scale(MAX_LENGTH) == pytest.approx(1 / math.log(len(labels)))
    elif spec.family == "multiple_choice":
        choices = collections.Counter(len(r.choices) for r in records)
        assert min(choices) >= 2 and n == max(choices), f"{name}: choices per question {dict(choices)}, n(i) {n}"
    elif spec.family == "regression":
        assert n is None and spec.loss_scale(MAX_LENGTH) == 1.0 and family.head_shape(spec)["outputs"] == 1
    else:  # candidate positions, or the vocabulary: sizes known at run time, not counts in the data
        assert n == {"span": MAX_LENGTH, "summarization": 30522}[spec.family]
