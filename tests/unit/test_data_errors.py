"""Bad input to the data stage: counted and reported, or refused with the dataset, path and reason."""

from __future__ import annotations

import bz2
import json
import shutil
import zipfile

import pytest

from muppet_core.data.prepare import prepare_task
from muppet_core.errors import DataSourceError
from muppet_core.tasks.catalog import get_task


def _rte_mirror(mirror: str, tmp_path, extra_lines: list[str]):
    (tmp_path / "rte").mkdir()
    shutil.copy(f"{mirror}/rte/val.jsonl", tmp_path / "rte" / "val.jsonl")
    lines = open(f"{mirror}/rte/train.jsonl", encoding="utf-8").read().splitlines()
    (tmp_path / "rte" / "train.jsonl").write_text("\n".join(lines[:100] + extra_lines + lines[100:]) + "\n")
    return str(tmp_path)


def test_a_few_malformed_rows_are_dropped_and_reported_with_file_and_line(mirror, tmp_path):
    bad = json.dumps({"premise": "A cat.", "hypothesis": "An animal.", "label": "maybe", "idx": 9999})
    stats = prepare_task(get_task("rte"), _rte_mirror(mirror, tmp_path, [bad]), 0.1, 0, tmp_path / "out")
    report = stats["normalization"]["train"]
    assert report["rows"] == 2491 and report["dropped"] == 1
    assert report["drop_reasons"] == {"ValueError": 1}
    assert report["drop_examples"][0].startswith(f"{tmp_path}/rte/train.jsonl:101: ValueError")
    assert stats["rows"] == {"train": 2490, "validation": 277}


def test_too_many_malformed_rows_fail_the_stage_with_a_report(mirror, tmp_path):
    bad = ['{"premise": "x", "hypothesis": "y"}', "{not json", json.dumps({"premise": " ", "hypothesis": "y", "label": "entailment"})] * 2
    with pytest.raises(DataSourceError) as info:
        prepare_task(get_task("rte"), _rte_mirror(mirror, tmp_path, bad), 0.1, 0, tmp_path / "out")
    message = str(info.value)
    assert message.startswith("dataset 'rte' split 'train': 6 of 2496 rows are malformed (more than max_bad_fraction=0.001)")
    assert "KeyError" in message and "invalid JSON" in message and "empty text_a" in message
    assert f"{tmp_path}/rte/train.jsonl:101" in message


def test_bad_span_offsets_are_caught(mirror, tmp_path):
    with zipfile.ZipFile(f"{mirror}/squad/dev-v1.1.json.zip") as zf:
        doc = json.loads(zf.read("dev-v1.1.json"))
    qas = doc["data"][0]["paragraphs"][0]["qas"][:5]
    for qa in qas:
        for answer in qa["answers"]:
            answer["answer_start"] += 3
    (tmp_path / "squad").mkdir()
    with zipfile.ZipFile(tmp_path / "squad" / "dev-v1.1.json.zip", "w") as zf:
        zf.writestr("dev-v1.1.json", json.dumps(doc))
    stats = prepare_task(get_task("squad"), str(tmp_path), 0.1, 0, tmp_path / "out")
    report = stats["normalization"]["validation"]
    assert report["dropped"] == len(qas) and report["rows"] == 10570
    assert report["drop_reasons"] == {"answer not at its offset in the context": 5}
    assert report["drop_examples"][0].endswith(f"dev-v1.1.json id {qas[0]['id']}: answer not at its offset in the context")


def test_truncated_compressed_file_names_dataset_path_and_reason(tmp_path):
    (tmp_path / "rte").mkdir()
    data = bz2.compress(b'{"premise": "a", "hypothesis": "b", "label": "entailment"}\n' * 50)
    (tmp_path / "rte" / "train.jsonl.bz2").write_bytes(data[: len(data) // 2])
    from muppet_core.tasks.readers import read_jsonl

    with pytest.raises(DataSourceError, match=r"cannot read .*rte/train\.jsonl\.bz2: .*ended before the end-of-stream marker"):
        list(read_jsonl(str(tmp_path / "rte" / "train.jsonl.bz2")))


def test_truncated_zip_and_undecodable_file_fail_with_the_path(mirror, tmp_path):
    (tmp_path / "squad").mkdir()
    raw = open(f"{mirror}/squad/dev-v1.1.json.zip", "rb").read()
    (tmp_path / "squad" / "dev-v1.1.json.zip").write_bytes(raw[: len(raw) // 3])
    with pytest.raises(DataSourceError) as info:
        prepare_task(get_task("squad"), str(tmp_path), 0.1, 0, tmp_path / "out")
    assert str(info.value).startswith("dataset 'squad': cannot read ") and "dev-v1.1.json.zip" in str(info.value)

    (tmp_path / "rte").mkdir()
    (tmp_path / "rte" / "train.jsonl").write_bytes(b'{"premise": "caf\xe9"}\n')
    shutil.copy(f"{mirror}/rte/val.jsonl", tmp_path / "rte" / "val.jsonl")
    with pytest.raises(DataSourceError) as info:
        prepare_task(get_task("rte"), str(tmp_path), 0.1, 0, tmp_path / "out2")
    assert str(info.value) == f"dataset 'rte': cannot decode {tmp_path}/rte/train.jsonl as utf-8 at byte 16: invalid continuation byte"


def test_unknown_task_suggests_the_closest_names():
    with pytest.raises(KeyError, match="unknown task 'sst-2' \\(did you mean 'sst2'\\?\\)"):
        get_task("sst-2")
