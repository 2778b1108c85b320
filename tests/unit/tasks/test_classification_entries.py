"""Classification and regression entries on the real mirror files, and the hub-only classification entries."""

from __future__ import annotations

import collections

import pytest

from muppet_core.data.prepare import load_split
from muppet_core.families.classification import ClassificationRecord
from muppet_core.families.regression import RegressionRecord
from muppet_core.registry import resolve
from muppet_core.tasks.catalog import load_catalog

# Rows per split as counted in shared/data/SOURCES.md (MultiRC: answer options, not passages).
SOURCE_ROWS = {
    "cola": {"train": 8551, "validation": 527 + 516},
    "qqp": {"train": 5 * 40, "validation": 100},
    "wnli": {"train": 5 * 40, "validation": 71},
    "multirc": {"train": 27243, "validation": 4848},
    "wic": {"train": 5428, "validation": 638},
    "wsc": {"train": 554, "validation": 104},
    "wikiqa": {"train": 8672, "validation": 1130, "test": 2351},
    "stsb": {"train": 5749, "validation": 1500, "test": 1379},
}
# One labelled split only: train and validation are both carved from its rows.
CARVED_TOTAL = {"mnli": 1000, "boolq": 3270, "ax_b": 1104, "ax_g": 356, "ag_news": 7600, "imdb": 1000, "yelp_polarity": 1000}
HUB_ONLY = ["hans", "scitail", "anli", "eraser_multirc"]
FAMILY_RECORD = {"classification": ClassificationRecord, "regression": RegressionRecord}


@pytest.fixture(scope="module")
def prepared(prepared):
    """Each mirror dataset prepared once: name -> (stats, {split: records})."""

    def get(task):
        stats, out = prepared(task)
        return stats, {s: load_split(out, load_catalog()[task].family, s) for s in stats["rows"]}

    return get


def _all(records: dict, *splits: str) -> list:
    return [r for s in splits for r in records[s]]


@pytest.mark.parametrize("task", [*SOURCE_ROWS, *CARVED_TOTAL])
def test_dataset_normalizes_from_the_mirror(task, prepared):
    spec = load_catalog()[task]
    stats, records = prepared(task)
    assert stats["source"] == "mirror"
    if task in SOURCE_ROWS:
        assert stats["rows"] == SOURCE_ROWS[task] and stats["carved"] == {}
    else:
        dropped = sum(d["dropped"] for d in stats["normalization"].values())
        total = CARVED_TOTAL[task] - dropped
        assert stats["rows"]["train"] + stats["rows"]["validation"] == total
        assert abs(stats["rows"]["validation"] - 0.1 * total) <= 3 * (0.09 * total) ** 0.5 + 1  # binomial, 3 sigma
        assert set(stats["carved"]) == {"train", "validation"}
    train, valid = records["train"], records["validation"]
    assert all(isinstance(r, FAMILY_RECORD[spec.family]) for r in train)
    if spec.family == "classification":
        assert {r.label for r in train} == set(range(len(spec.labels)))
    for split in records.values():
        assert len({r.id for r in split}) == len(split), "ids must be unique within a split"
    shared = {r.id for r in train} & {r.id for r in valid}
    if task == "multirc":  # passage numbering restarts per file: equal ids, different passages
        assert len(shared) == 5 and not {r.text_a for r in train} & {r.text_a for r in valid}
    else:
        assert not shared, "an example is both trained and evaluated on"


def _find(records: list, text: str):
    return next(r for r in records if r.text_a.startswith(text))


def test_glue_content(prepared):
    catalog = load_catalog()
    # CoLA: no header; the first sentence is acceptable; validation holds in- and out-of-domain dev.
    _, cola = prepared("cola")
    first = cola["train"][0]
    assert first.text_a == "Our friends won't buy this analysis, let alone the next one we propose." and first.text_b is None
    assert catalog["cola"].labels[first.label] == "acceptable"
    assert collections.Counter(r.label for r in cola["validation"]) == {1: 365 + 354, 0: 162 + 162}
    # MNLI: label name first, then premise and hypothesis; mismatched passes through as its own split.
    stats, mnli = prepared("mnli")
    temple = _find(_all(mnli, "train", "validation"), "In Temple Bar")
    assert temple.text_b == "There is a bookshop at the gallery ." and temple.label == 0
    assert stats["rows"]["validation_mismatched"] == 1000
    assert collections.Counter(r.label for r in mnli["validation_mismatched"]) == {0: 346, 2: 335, 1: 319}
    # QQP and WNLI: string labels; WNLI's 71 dev examples keep their label balance.
    _, qqp = prepared("qqp")
    assert _find(qqp["validation"], "What is the chemical formula of nitrogen?").label == 0
    assert collections.Counter(r.label for r in qqp["train"]) == {0: 100, 1: 100}
    _, wnli = prepared("wnli")
    assert collections.Counter(catalog["wnli"].labels[r.label] for r in wnli["validation"]) == {"not entailment": 40, "entailment": 31}
    # STS-B: float scores in [0, 5]; rows with trailing source columns are kept.
    stats, stsb = prepared("stsb")
    scores = [r.label for r in _all(stsb, "train", "validation", "test")]
    assert all(isinstance(s, float) for s in scores) and min(scores) == 0.0 and max(scores) == 5.0
    plane = stsb["train"][0]
    assert (plane.text_a, plane.text_b, plane.label) == ("A plane is taking off.", "An air plane is taking off.", 5.0)
    assert _find(stsb["train"], "Driver backs into stroller").text_b == "Driver backs into mom, stroller with child then drives off"
    assert stats["labels"]["train"] == {}


def test_superglue_content(prepared):
    # BoolQ: question first, 'Title -- passage' second, bool labels; ids are the file's idx.
    _, boolq = prepared("boolq")
    ethanol = _find(_all(boolq, "train", "validation"), "does ethanol take more energy")
    assert ethanol.text_b.startswith("Ethanol fuel -- ") and ethanol.label == 0 and ethanol.id == "0"
    assert sum(r.label for r in _all(boolq, "train", "validation")) == 2033
    # MultiRC: one record per answer option, 5,131 questions in train.
    _, multirc = prepared("multirc")
    first = multirc["train"][0]
    assert first.text_b == "What did the high-level effort to persuade Pakistan include? Children, Gerd, or Dorian Popa"
    assert first.label == 0 and first.id == "0-0-0" and first.text_a.startswith("While this process moved along")
    assert len({r.id.rsplit("-", 1)[0] for r in multirc["train"]}) == 5131
    assert collections.Counter(r.label for r in multirc["validation"]) == {0: 2773, 1: 2075}
    # WiC: the target word before sentence 2; WSC: the pronoun and its candidate referent.
    _, wic = prepared("wic")
    assert (wic["train"][0].text_b, wic["train"][0].label) == ("place: A political system with no place for the less prominent groups.", 0)
    _, wsc = prepared("wsc")
    assert (wsc["train"][0].text_b, wsc["train"][0].label) == ("He refers to Mark", 0)
    # AX-b (sentence1/sentence2) and AX-g (premise/hypothesis): same labels, different field names.
    _, axb = prepared("ax_b")
    cat = _find(_all(axb, "train", "validation"), "The cat sat on the mat.")
    assert cat.text_b == "The cat did not sit on the mat." and cat.label == 1
    assert collections.Counter(r.label for r in _all(axb, "train", "validation")) == {1: 644, 0: 460}
    _, axg = prepared("ax_g")
    assert collections.Counter(r.label for r in _all(axg, "train", "validation")) == {1: 178, 0: 178}


def test_other_classification_content(prepared):
    catalog = load_catalog()
    # AG News: 1-based class index -> classes.txt order; title and description joined.
    _, ag = prepared("ag_news")
    pension = _find(_all(ag, "train", "validation"), "Fears for T N pension after talks")
    assert pension.text_a.startswith("Fears for T N pension after talks Unions representing workers at Turner")
    assert catalog["ag_news"].labels[pension.label] == "Business"
    assert set(collections.Counter(r.label for r in _all(ag, "train", "validation")).values()) == {1900}
    # IMDB and Yelp: '<label> <text>' lines.
    for task, counts in (("imdb", {1: 503, 0: 497}), ("yelp_polarity", {0: 518, 1: 482})):
        _, records = prepared(task)
        assert collections.Counter(r.label for r in _all(records, "train", "validation")) == counts
    # WikiQA: line-aligned question / candidate sentence / 0-1 label files.
    _, wikiqa = prepared("wikiqa")
    first = wikiqa["train"][0]
    assert (first.text_a, first.text_b, first.label) == ("how are glacier caves formed ?", "a partly submerged glacier cave on perito moreno glacier .", 0)
    assert collections.Counter(r.label for r in wikiqa["validation"]) == {0: 990, 1: 140}


def test_hub_only_entries_are_complete():
    catalog = load_catalog()
    for name in HUB_ONLY:
        spec = catalog[name]
        assert spec.family == "classification" and not spec.mirror and spec.labels and spec.metric
        assert {"text_a", "text_b", "label"} <= set(spec.hub.fields) and "validation" in spec.hub.splits
        assert callable(resolve(spec.hub_normalizer()))
    assert catalog["anli"].hub.splits["train"] == "train_r1" and catalog["anli"].hub.splits["validation"] == "dev_r1"


def test_hub_normalizers_on_hub_shaped_rows():
    catalog = load_catalog()
    normalize = lambda task, row: resolve(catalog[task].hub_normalizer())(row, catalog[task])  # noqa: E731
    # Regression: a float score and a RegressionRecord; unlabelled (-1) rows are dropped.
    stsb = normalize("stsb", {"sentence1": "a", "sentence2": "b", "label": 3.2, "idx": 0})
    assert stsb == RegressionRecord(text_a="a", text_b="b", label=3.2)
    assert normalize("stsb", {"sentence1": "a", "sentence2": "b", "label": -1.0, "idx": 0}) is None
    # Classification: class indices, class names (SciTail's strings), -1 dropped, ids where mapped.
    assert normalize("cola", {"sentence": "x", "label": 1, "idx": 3}) == ClassificationRecord("x", None, 1)
    assert normalize("scitail", {"premise": "p", "hypothesis": "h", "label": "neutral"}).label == 1
    assert normalize("anli", {"premise": "p", "hypothesis": "h", "label": -1}) is None
    assert normalize("boolq", {"question": "q", "passage": "p", "label": 1, "idx": 7}).id == "7"
    # SuperGLUE tasks whose hub rows need their own shape.
    multirc = {"paragraph": "P", "question": "Q?", "answer": "A", "idx": {"paragraph": 1, "question": 2, "answer": 3}, "label": 1}
    assert normalize("multirc", multirc) == ClassificationRecord("P", "Q? A", 1, "1-2-3")
    wsc = {"text": "Mark said he left", "span1_index": 0, "span2_index": 2, "span1_text": "Mark", "span2_text": "He", "idx": 0, "label": 0}
    assert normalize("wsc", wsc) == ClassificationRecord("Mark said *he* left", "He refers to Mark", 0)
    assert normalize("wic", {"word": "w", "sentence1": "s1", "sentence2": "s2", "label": 1, "idx": 0}).text_b == "w: s2"
