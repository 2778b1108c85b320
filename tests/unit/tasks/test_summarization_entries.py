"""Summarization entries on the real mirror files, hub-only summarization and span entries."""

from __future__ import annotations

import pytest

from muppet_core.data.prepare import load_split
from muppet_core.families.summarization import SummarizationRecord
from muppet_core.registry import resolve
from muppet_core.tasks.catalog import load_catalog

# Rows per split as counted in shared/data/SOURCES.md (before any carving).
SOURCE_ROWS = {"aeslc": {"train": 14436, "validation": 1960, "test": 1906}}
# Datasets with carved splits: the rows of the one split they have, and the splits carved from it.
CARVED_TOTAL = {"cnn_dailymail": 6, "xsum": 1000}
CARVED = {"cnn_dailymail": {"validation"}, "xsum": {"train", "validation"}}
HUB_ONLY = {
    "summarization": ["billsum", "multi_news", "gigaword", "reddit_tifu"],
    "span": ["record", "drop", "hotpotqa", "triviaqa", "newsqa", "natural_questions"],
}


@pytest.mark.parametrize("task", [*SOURCE_ROWS, *CARVED_TOTAL])
def test_summarization_dataset_normalizes_from_the_mirror(task, prepared):
    stats, out = prepared(task)
    assert stats["source"] == "mirror" and stats["family"] == "summarization"
    dropped = sum(d["dropped"] for d in stats["normalization"].values())
    assert dropped == 0, stats["normalization"]
    if task in SOURCE_ROWS:
        assert stats["rows"] == SOURCE_ROWS[task]
        assert stats["carved"] == {}
    else:
        assert set(stats["rows"]) == {"train", "validation"}
        assert stats["rows"]["train"] + stats["rows"]["validation"] == CARVED_TOTAL[task] - dropped
        assert set(stats["carved"]) == CARVED[task]
    train, valid = load_split(out, "summarization", "train"), load_split(out, "summarization", "validation")
    assert all(isinstance(r, SummarizationRecord) for r in train + valid)
    assert not {r.id for r in train} & {r.id for r in valid}, "an example is both trained and evaluated on"
    assert len({r.id for r in train}) == len(train)
    assert all(r.document.strip() and r.summary.strip() for r in train + valid)


def test_aeslc_keeps_the_subject_and_drops_the_annotations(prepared):
    _, out = prepared("aeslc")
    valid = {r.id: r for r in load_split(out, "summarization", "validation")}
    email = valid["allen-p_inbox_29"]
    assert email.summary == "Confirmation: Risk Management Simulation Meeting 10/30/01"
    assert email.document.endswith("I can be reached at 713-345-6687.\nThanks,")
    assert "meeting confirmed" not in email.document  # @ann2 of that file
    test = load_split(out, "summarization", "test")
    for record in [*valid.values(), *test]:
        assert not any(line.startswith(("@subject", "@ann")) for line in record.document.split("\n"))
        assert "\n" not in record.summary and not record.summary.startswith("@")
    train = {r.id: r for r in load_split(out, "summarization", "train")}
    assert train["allen-p_inbox_20"].summary == "Service Agreement"


def test_presumm_and_xsum_content(prepared):
    _, out = prepared("cnn_dailymail")
    articles = load_split(out, "summarization", "train") + load_split(out, "summarization", "validation")
    juggler = next(r for r in articles if r.document.startswith("( cnn ) -- that chris smith made an inspiring"))
    assert juggler.summary.startswith("pov video has gone viral on youtube juggler chris smith")
    _, out = prepared("xsum")
    docs = {r.id: r for r in load_split(out, "summarization", "train") + load_split(out, "summarization", "validation")}
    assert len(docs) == 1000 and 0.07 < len(load_split(out, "summarization", "validation")) / 1000 < 0.13
    assert docs["34268361"].summary.startswith("Proposals for an indoor water park and a hotel at West Midland Safari Park")


def test_summarization_hub_rows_map_through_the_fields():
    catalog = load_catalog()
    spec = catalog["cnn_dailymail"]
    normalize = resolve(spec.hub_normalizer())
    record = normalize({"article": "The article.", "highlights": "The highlight.", "id": "abc"}, spec)
    assert record == SummarizationRecord(document="The article.", summary="The highlight.")
    tifu = catalog["reddit_tifu"]
    assert resolve(tifu.hub_normalizer())({"documents": "a post", "tldr": "short", "title": "t"}, tifu).summary == "short"
    with pytest.raises(KeyError):
        normalize({"document": "no article column", "summary": "s"}, spec)


def test_catalog_holds_the_new_entries():
    catalog = load_catalog()
    for family, names in HUB_ONLY.items():
        for name in names:
            assert catalog[name].family == family and not catalog[name].mirror
            assert callable(resolve(catalog[name].hub_normalizer()))
    summarization = {n for n, s in catalog.items() if s.family == "summarization"}
    assert summarization == {*SOURCE_ROWS, *CARVED_TOTAL, *HUB_ONLY["summarization"]}
    assert all(catalog[n].metric == "rouge2" and catalog[n].secondary_metrics == ["rouge1", "rougeL", "rougeLsum"] for n in summarization)
