"""Readers, normalizers and carving on the real files of the mirror."""

from __future__ import annotations

import pytest

from muppet_core.data.prepare import load_split, prepare_task
from muppet_core.families.classification import ClassificationRecord
from muppet_core.families.multiple_choice import MultipleChoiceRecord
from muppet_core.families.span import SpanRecord
from muppet_core.data.splits import bucket, carve, complete_splits, subsample
from muppet_core.registry import resolve
from muppet_core.tasks.catalog import load_catalog
from muppet_core.tasks.readers import READERS

# Rows per split as counted in shared/data/SOURCES.md (before any carving).
SOURCE_ROWS = {
    "sst2": {"train": 6920, "validation": 872, "test": 1821},
    "rte": {"train": 2490, "validation": 277},
    "cb": {"train": 250, "validation": 56},
    "commonsenseqa": {"train": 9741, "validation": 1221},
    "arc_easy": {"train": 2251, "validation": 570},
    "arc_challenge": {"train": 1119, "validation": 299},
    "openbookqa": {"train": 4957, "validation": 500, "test": 500},
}
# Datasets with a carved split: the total over the carved splits.
CARVED_TOTAL = {"mrpc": 4076, "qnli": 5463, "snli": 9842, "trec": 5452, "rotten_tomatoes": 10662, "squad": 10570}


def test_catalog_entries_point_at_real_readers_and_normalizers():
    for spec in load_catalog().values():
        if spec.mirror:
            assert spec.reader in READERS
            assert callable(resolve(spec.normalizer))
        assert callable(resolve(spec.hub_normalizer()))


@pytest.mark.parametrize("task", sorted({*SOURCE_ROWS, *CARVED_TOTAL}))
def test_every_catalog_dataset_normalizes_from_the_mirror(task, mirror, tmp_path):
    spec = load_catalog()[task]
    stats = prepare_task(spec, mirror, 0.1, 0, tmp_path)
    assert stats["source"] == "mirror"
    if task in SOURCE_ROWS:
        assert stats["rows"] == SOURCE_ROWS[task]
        assert stats["carved"] == {}
    else:
        dropped = sum(d["dropped"] for d in stats["normalization"].values())
        assert stats["rows"]["train"] + stats["rows"]["validation"] == CARVED_TOTAL[task] - dropped
        assert 0.07 < stats["rows"]["validation"] / CARVED_TOTAL[task] < 0.13
        assert "validation" in stats["carved"]
    train = load_split(tmp_path, spec.family, "train")
    valid = load_split(tmp_path, spec.family, "validation")
    assert not {r.id for r in train} & {r.id for r in valid}, "an example is both trained and evaluated on"
    record_type = {"classification": ClassificationRecord, "multiple_choice": MultipleChoiceRecord, "span": SpanRecord}[spec.family]
    assert all(isinstance(r, record_type) for r in train[:50])
    if spec.family == "classification":
        assert {r.label for r in train} == set(range(len(spec.labels)))
    if spec.family == "span":
        assert all(r.context[r.answer_start : r.answer_start + len(r.answer_text)] == r.answer_text for r in train)


def test_quirks_of_the_original_files(mirror, tmp_path):
    catalog = load_catalog()
    # MRPC: UTF-8 BOM and CRLF must not leak into the header or the text.
    prepare_task(catalog["mrpc"], mirror, 0.1, 0, tmp_path / "mrpc")
    mrpc = load_split(tmp_path / "mrpc", "classification", "train")
    assert not any(r.text_b.endswith("\r") for r in mrpc)
    # Rotten Tomatoes: Latin-1 with 0x85 bytes, split on '\n' only: exactly 5,331 lines per class.
    stats = prepare_task(catalog["rotten_tomatoes"], mirror, 0.1, 0, tmp_path / "rt")
    assert sum(stats["labels"]["train"].values()) + sum(stats["labels"]["validation"].values()) == 10662
    assert stats["labels"]["train"]["0"] + stats["labels"]["validation"]["0"] == 5331
    # TREC: coarse label of 'DESC:manner How did serfdom ...'.
    prepare_task(catalog["trec"], mirror, 0.1, 0, tmp_path / "trec")
    trec = load_split(tmp_path / "trec", "classification", "train")
    first = next(r for r in trec if r.text_a.startswith("How did serfdom"))
    assert catalog["trec"].labels[first.label] == "DESC"
    # ARC: answer keys given as digits map to the right choice.
    prepare_task(catalog["arc_easy"], mirror, 0.1, 0, tmp_path / "arc")
    arc = load_split(tmp_path / "arc", "multiple_choice", "train")
    assert len(arc) == 2251 and all(0 <= r.label < len(r.choices) for r in arc)


def test_carving_is_deterministic_disjoint_and_seeded():
    ids = [f"ex-{i}" for i in range(5000)]
    rest, carved = carve(ids, 0.1, 0, ids)
    assert (rest, carved) == carve(ids, 0.1, 0, ids)
    assert not set(rest) & set(carved) and len(rest) + len(carved) == 5000
    assert 400 < len(carved) < 600
    assert carve(ids, 0.1, 1, ids)[1] != carved
    assert bucket("ex-1", 0) == bucket("ex-1", 0) != bucket("ex-2", 0)


def test_complete_splits_policy():
    ids = {s: [f"{s}-{i}" for i in range(1000)] for s in ("train", "validation", "test")}
    both, notes = complete_splits({"train": ids["train"], "validation": ids["validation"]}, ids, 0.1, 0)
    assert both == {"train": ids["train"], "validation": ids["validation"]} and notes == {}
    only_val, notes = complete_splits({"validation": ids["validation"], "test": ids["test"]}, ids, 0.1, 0)
    assert set(notes) == {"train", "validation"} and only_val["test"] == ids["test"]
    assert sorted(only_val["train"] + only_val["validation"]) == sorted(ids["validation"])


def test_subsample_is_seeded_and_keeps_order():
    items = list(range(100))
    assert subsample(items, None, 0) is items
    picked = subsample(items, 10, 3)
    assert picked == sorted(picked) and picked == subsample(items, 10, 3) and len(picked) == 10
