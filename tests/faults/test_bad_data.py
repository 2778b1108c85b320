"""Bad dataset files through the real readers and normalizers of the data stage: each ends in a
clear DataSourceError naming the dataset, file and place, or in a reported drop bounded by
max_bad_fraction; never a library traceback, never unbounded memory, never a file written
outside the stage's output folder (archives are read in memory, never extracted)."""

from __future__ import annotations

import bz2
import codecs
import gzip
import io
import json
import re
import shutil
import tarfile
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from muppet_core.data.prepare import prepare_task
from muppet_core.data.sources import raw_splits, source_fingerprint
from muppet_core.errors import DataSourceError
from muppet_core.tasks import readers
from muppet_core.tasks.catalog import get_task

HUGE = 50_000_000


def _files(task: str) -> list[str]:
    paths = []
    for entry in get_task(task).mirror.values():
        paths += list(entry.values()) if isinstance(entry, dict) else [entry] if isinstance(entry, str) else entry
    return paths


def _mirror(source: str, root: Path, task: str, replace: dict[str, bytes]) -> str:
    """A mirror holding the task's real files (those its entry names; a pattern's matches only as
    ``replace`` gives them), some of them replaced by ``replace``."""
    for rel in (rel for rel in _files(task) if "*" not in rel):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f"{source}/{rel}", root / rel)
    for rel, data in replace.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return str(root)


def _inserted(source: str, rel: str, line: str, at: int = 100) -> bytes:
    """The real file with ``line`` inserted after line ``at`` (so it is line at + 1)."""
    lines = Path(source, rel).read_bytes().split(b"\n")
    return b"\n".join(lines[:at] + [line.encode("utf-8")] + lines[at:])


def _snapshot(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def _prepare(task: str, mirror: str, out: Path):
    return prepare_task(get_task(task), mirror, 0.1, 0, out)


def _refused(task: str, mirror: str, tmp_path: Path) -> str:
    """The DataSourceError message; nothing was written outside ``tmp_path/out``."""
    before = _snapshot(tmp_path)
    with pytest.raises(DataSourceError) as info:
        _prepare(task, mirror, tmp_path / "out")
    assert all(p.is_relative_to(tmp_path / "out") for p in _snapshot(tmp_path) - before)
    return str(info.value)


RTE = {"premise": "A cat sat.", "hypothesis": "An animal sat.", "label": "entailment"}
# (id, task, file, the bad line, the reported reason); each is one bad row among the real ones
BAD_ROWS = [
    ("invalid JSON", "rte", "rte/train.jsonl", '{"premise": "a", "hypo', "invalid JSON (Unterminated string starting at)"),
    ("JSON array", "rte", "rte/train.jsonl", "[1, 2]", "JSON line is not an object"),
    ("missing field", "rte", "rte/train.jsonl", json.dumps({"premise": "a", "label": "entailment"}), "KeyError: 'hypothesis'"),
    ("number for text", "rte", "rte/train.jsonl", json.dumps({**RTE, "premise": 5}), "AttributeError: 'int' object has no attribute 'strip'"),
    ("null label", "rte", "rte/train.jsonl", json.dumps({**RTE, "label": None}), "AttributeError: 'NoneType' object has no attribute 'strip'"),
    ("label outside the label set", "rte", "rte/train.jsonl", json.dumps({**RTE, "label": "maybe"}),
     "ValueError: label 'maybe' is not one of ['entailment', 'not_entailment']"),
    ("lone surrogate", "rte", "rte/train.jsonl", json.dumps({**RTE, "premise": "caf\ud800"}), "text_a is not valid Unicode (a lone surrogate)"),
    ("nested 100000 deep", "rte", "rte/train.jsonl", "[" * 100_000, "invalid JSON (nested too deeply)"),
    ("infinite label", "wic", "wic/train.jsonl",
     json.dumps({"word": "w", "sentence1": "a", "sentence2": "b", "label": float("inf")}), "OverflowError: cannot convert float infinity to integer"),
    ("number for text (no strip)", "wic", "wic/train.jsonl",
     json.dumps({"word": "w", "sentence1": 5, "sentence2": "b", "label": 1}), "text_a should be str, got int"),
    ("label 7 of 2 classes", "sst2", "sst2/stsa.binary.train", "7 a fine film", "unknown label 7 (the task has 2 labels)"),
    ("unknown TREC class", "trec", "trec/TREC.train", "FOO:bar what is it ?",
     "ValueError: label 'FOO' is not one of ['ABBR', 'ENTY', 'DESC', 'HUM', 'LOC', 'NUM']"),
    ("MNLI label outside the label set", "mnli", "mnli/textfooler_subsets/mnli_matched", "maybe\ta premise\ta hypothesis",
     "ValueError: label 'maybe' is not one of ['entailment', 'neutral', 'contradiction']"),
    ("too few cells", "mrpc", "mrpc/msr_paraphrase_train.txt", "1\t2", "2 cells where 5 columns were expected"),
    ("number among the choices", "commonsenseqa", "commonsenseqa/train_rand_split.jsonl",
     json.dumps({"id": "x", "answerKey": "A", "question": {"stem": "q?", "choices": [{"label": "A", "text": "a"}, {"label": "B", "text": 5}]}}),
     "choices should be list[str], got int"),
    ("score outside the entry's range", "stsb", "stsb/sts-train.csv", "main-captions\tMSRvid\t2012test\t9999\t50.000\tA man.\tA woman.",
     "score 50 outside label_range [0, 5]"),
    ("more choices than the entry's", "commonsenseqa", "commonsenseqa/train_rand_split.jsonl",
     json.dumps({"id": "x", "answerKey": "c0", "question": {"stem": "q?", "choices": [{"label": f"c{i}", "text": f"t{i}"} for i in range(50)]}}),
     "50 choices where the entry has at most 5 (num_choices)"),
]


@pytest.mark.parametrize("case, task, rel, line, reason", BAD_ROWS, ids=[c[0] for c in BAD_ROWS])
def test_a_malformed_row_is_dropped_and_reported_with_file_and_line(case, task, rel, line, reason, mirror, tmp_path, fault_report):
    root = _mirror(mirror, tmp_path / "mirror", task, {rel: _inserted(mirror, rel, line)})
    stats = _prepare(task, root, tmp_path / "out")
    split = next(s for s, files in get_task(task).mirror.items() if files == rel)
    report = stats["normalization"][split]
    assert report["dropped"] == 1, report
    (example,) = report["drop_examples"]
    assert example.startswith(f"{root}/{rel}:101: {reason}"), example
    fault_report("bad input", f"{task}: {case} at line 101 of {rel}", f"dropped and reported: '{example.removeprefix(root + '/')[:150]}'")


def test_a_label_outside_the_choices_is_dropped(mirror, tmp_path, fault_report):
    labels = Path(mirror, "piqa/valid-labels.lst").read_text().split("\n")
    labels[100] = "5"
    root = _mirror(mirror, tmp_path / "mirror", "piqa", {"piqa/valid-labels.lst": "\n".join(labels).encode()})
    report = _prepare("piqa", root, tmp_path / "out")["normalization"]["validation"]
    assert report["dropped"] == 1 and report["drop_examples"] == [f"{root}/piqa/valid.jsonl:101: answer index 5 outside 2 choices"]
    fault_report("bad input", "piqa: label 5 for a two-choice question", "dropped and reported: 'piqa/valid.jsonl:101: answer index 5 outside 2 choices'")


@pytest.mark.parametrize("task, rel, bad", [
    ("rte", "rte/train.jsonl", lambda line: line.replace(b'"label": "', b'"label": "maybe-')),
    ("sst2", "sst2/stsa.binary.train", lambda line: b"9" + line[1:]),
])
def test_a_split_with_wrong_labels_throughout_is_refused(task, rel, bad, mirror, tmp_path, fault_report):
    lines = Path(mirror, rel).read_bytes().rstrip(b"\n").split(b"\n")
    root = _mirror(mirror, tmp_path / "mirror", task, {rel: b"\n".join(bad(line) for line in lines) + b"\n"})
    message = _refused(task, root, tmp_path)
    assert message.startswith(f"dataset '{task}' split 'train': {len(lines)} of {len(lines)} rows are malformed (more than max_bad_fraction=0.001)")
    assert f"first: {root}/{rel}:1: " in message
    fault_report("bad input", f"{task}: every label of {rel} outside the label set", f"DataSourceError: '{message[:160]}...'")


EMPTY = [
    ("rte", "rte/train.jsonl", b"", "dataset 'rte' split 'train' has no rows (is {root}/rte/train.jsonl empty?)"),
    ("mrpc", "mrpc/msr_paraphrase_train.txt", b"", "dataset 'mrpc' split 'train' has no rows (is {root}/mrpc/msr_paraphrase_train.txt empty?)"),
    ("hellaswag", "hellaswag/hellaswag_val_full.txt.bz2", bz2.compress(b""),
     "dataset 'hellaswag' split 'validation' has no rows (is {root}/hellaswag/hellaswag_val_full.txt.bz2 empty?)"),
    ("squad", "squad/dev-v1.1.json.zip", b"",
     "dataset 'squad': cannot read {root}/squad/dev-v1.1.json.zip (member dev-v1.1.json): BadZipFile: File is not a zip file"),
    ("cnn_dailymail", "cnn_dailymail/cnndm_sample.train.0.json", b"",
     "dataset 'cnn_dailymail': cannot parse {root}/cnn_dailymail/cnndm_sample.train.0.json as JSON (line 1: Expecting value); is it truncated?"),
]


@pytest.mark.parametrize("task, rel, data, expected", EMPTY, ids=[e[1] for e in EMPTY])
def test_an_empty_file_is_refused_with_its_path(task, rel, data, expected, mirror, tmp_path, fault_report):
    root = _mirror(mirror, tmp_path / "mirror", task, {rel: data})
    message = _refused(task, root, tmp_path)
    assert message == expected.format(root=root)
    fault_report("bad input", f"{task}: empty {rel}", f"DataSourceError: '{message.replace(root + '/', '')}'")


def _utf16(mirror: str, rel: str, codec: str, source: str = "utf-8") -> bytes:
    return Path(mirror, rel).read_bytes().decode(source).encode(codec)


ENCODINGS = [
    ("Latin-1 bytes in a UTF-8 file", "rte", "rte/train.jsonl", lambda m: _inserted(m, "rte/train.jsonl", "x").replace(b"\nx\n", b'\n{"premise": "caf\xe9"}\n'),
     r"dataset 'rte': cannot decode {root}/rte/train\.jsonl as utf-8 at byte \d+: invalid continuation byte"),
    ("UTF-16 with a byte-order mark", "rte", "rte/train.jsonl", lambda m: _utf16(m, "rte/train.jsonl", "utf-16"),
     r"dataset 'rte': cannot decode {root}/rte/train\.jsonl as utf-8: it is UTF-16 text \(it starts with a UTF-16 byte-order mark\)"),
    ("UTF-32 with a byte-order mark", "wic", "wic/train.jsonl", lambda m: _utf16(m, "wic/train.jsonl", "utf-32"),
     r"dataset 'wic': cannot decode {root}/wic/train\.jsonl as utf-8: it is UTF-32 text \(it starts with a UTF-32 byte-order mark\)"),
    ("UTF-16 in a Latin-1 file", "trec", "trec/TREC.train", lambda m: _utf16(m, "trec/TREC.train", "utf-16", "latin-1"),
     r"dataset 'trec': cannot decode {root}/trec/TREC\.train as latin-1: it is UTF-16 text \(it starts with a UTF-16 byte-order mark\)"),
    ("UTF-16 without a byte-order mark", "rte", "rte/train.jsonl", lambda m: _utf16(m, "rte/train.jsonl", "utf-16-le"),
     r"dataset 'rte' split 'train': 249\d of 249\d rows are malformed \(more than max_bad_fraction=0\.001\): .*'invalid JSON \(Expecting value\)': 24\d\d"),
    ("random bytes", "rte", "rte/train.jsonl", lambda m: bytes(range(128, 256)) * 100,
     r"dataset 'rte': cannot decode {root}/rte/train\.jsonl as utf-8 at byte 0: invalid start byte"),
]


@pytest.mark.parametrize("case, task, rel, make, pattern", ENCODINGS, ids=[e[0] for e in ENCODINGS])
def test_a_file_in_the_wrong_encoding_is_refused_with_its_path(case, task, rel, make, pattern, mirror, tmp_path, fault_report):
    root = _mirror(mirror, tmp_path / "mirror", task, {rel: make(mirror)})
    message = _refused(task, root, tmp_path)
    assert re.match(pattern.format(root=re.escape(root)), message), message
    fault_report("bad input", f"{task}: {case} ({rel})", f"DataSourceError: '{message.replace(root + '/', '')[:170]}'")


@pytest.mark.parametrize("task, rel, reason", [
    ("rte", "rte/train.jsonl", "line too long: 50000000 characters (MAX_LINE_CHARS=1048576)"),
    ("rotten_tomatoes", "rotten_tomatoes/rt-polarity.pos", "line too long: 50000000 characters (MAX_LINE_CHARS=1048576)"),
    ("mrpc", "mrpc/msr_paraphrase_train.txt", "unparseable row (field larger than field limit (1048576))"),
])
def test_a_50mb_line_without_newline_is_dropped_in_bounded_memory(task, rel, reason, mirror, tmp_path, fault_report):
    original = Path(mirror, rel).read_bytes()
    prefix = b"1\t1\t2\t" if task == "mrpc" else b""
    root = _mirror(mirror, tmp_path / "mirror", task, {rel: original + prefix + b"a" * HUGE})
    line = len(original.split(b"\n"))
    tracemalloc.start()
    try:
        stats = _prepare(task, root, tmp_path / "out")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    report = stats["normalization"]["train"]
    assert report["dropped"] == 1 and report["drop_examples"] == [f"{root}/{rel}:{line}: {reason}"]
    assert peak < 8 * HUGE, f"peak {peak / 1e6:.0f} MB for a 50 MB line"
    fault_report("bad input", f"{task}: a 50 MB line without newline at the end of {rel}",
                 f"dropped and reported ('{reason}'), peak Python memory {peak / 1e6:.0f} MB")


def _zip(members: dict[str, bytes | str], links: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if name in links:
                info.external_attr = 0o120777 << 16
            zf.writestr(info, data)
    return buffer.getvalue()


SCIQ_ROW = {"question": "q?", "support": "", "correct_answer": "a", "distractor1": "b", "distractor2": "c", "distractor3": "d"}
SCIQ_OK = json.dumps([SCIQ_ROW])
ESCAPES = [
    ("parent-relative member", "../../evil/train.json", (), "a path climbing out of the archive ('..')"),
    ("backslash parent-relative member", "..\\..\\evil\\train.json", (), "a path climbing out of the archive ('..')"),
    ("absolute member", "{tmp}/evil/train.json", (), "an absolute path"),
    ("drive-letter member", "C:/evil/train.json", (), "an absolute path"),
    ("symbolic-link member", "SciQ/train.json", ("SciQ/train.json",), "a symbolic link"),
]


@pytest.mark.parametrize("case, member, links, reason", ESCAPES, ids=[e[0] for e in ESCAPES])
def test_an_archive_member_escaping_the_folder_is_refused_and_nothing_is_written(case, member, links, reason, mirror, tmp_path, fault_report):
    member = member.format(tmp=tmp_path)
    data = "/etc/passwd" if links else SCIQ_OK
    archive = _zip({member: data, "SciQ/valid.json": SCIQ_OK, "SciQ/test.json": SCIQ_OK}, links)
    root = _mirror(mirror, tmp_path / "mirror", "sciq", {"sciq/SciQ.zip": archive})
    message = _refused("sciq", root, tmp_path)
    assert message == f"dataset 'sciq': {root}/sciq/SciQ.zip: member '{member}' is {reason}; refusing the archive"
    escaped = [tmp_path / "evil", tmp_path / "mirror" / "evil", tmp_path.parent / "evil", Path("C:"), tmp_path / "out" / "evil"]
    assert not any(p.exists() for p in escaped)
    fault_report("security", f"sciq: SciQ.zip with a {case} {member!r}", f"DataSourceError: '...SciQ.zip: member ... is {reason}; refusing the archive'; nothing written")


def test_a_squad_member_escaping_the_folder_is_refused(mirror, tmp_path, fault_report):
    root = _mirror(mirror, tmp_path / "mirror", "squad", {"squad/dev-v1.1.json.zip": _zip({"../dev-v1.1.json": json.dumps({"data": []})})})
    message = _refused("squad", root, tmp_path)
    assert message.endswith("member '../dev-v1.1.json' is a path climbing out of the archive ('..'); refusing the archive")
    assert not (tmp_path / "mirror" / "dev-v1.1.json").exists() and not (tmp_path / "dev-v1.1.json").exists()
    fault_report("security", "squad: zip member '../dev-v1.1.json'", "DataSourceError: refusing the archive; nothing written")


def test_a_tar_archive_is_never_extracted(mirror, tmp_path, fault_report):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tf:
        payload = (json.dumps(RTE) + "\n").encode()
        info = tarfile.TarInfo("../../evil.jsonl")
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    root = _mirror(mirror, tmp_path / "mirror", "rte", {"rte/train.jsonl": buffer.getvalue()})
    message = _refused("rte", root, tmp_path)
    assert message.startswith("dataset 'rte' split 'train': ") and "rows are malformed" in message
    assert not (tmp_path / "evil.jsonl").exists() and not (tmp_path / "mirror" / "evil.jsonl").exists()
    assert not (tmp_path / "mirror" / "rte" / "link").exists()
    fault_report("security", "rte: a tar archive (member '../../evil.jsonl', a symlink member) as train.jsonl",
                 f"read as text, never extracted: '{message[:90]}...'")


def test_a_decompression_bomb_is_refused_at_the_size_limit(mirror, tmp_path, monkeypatch, fault_report):
    monkeypatch.setattr(readers, "MAX_FILE_BYTES", 8 << 20)
    root = _mirror(mirror, tmp_path / "mirror", "hellaswag", {"hellaswag/hellaswag_val_full.txt.bz2": bz2.compress(b"a\n" * (16 << 20))})
    message = _refused("hellaswag", root, tmp_path)
    assert message == f"dataset 'hellaswag': {root}/hellaswag/hellaswag_val_full.txt.bz2 (decompressed) holds more than 8388608 bytes (MAX_FILE_BYTES); refusing to read it into memory"

    archive = _zip({"SciQ/train.json": " " * (16 << 20) + SCIQ_OK, "SciQ/valid.json": SCIQ_OK, "SciQ/test.json": SCIQ_OK})
    assert len(archive) < 1 << 20
    root = _mirror(mirror, tmp_path / "mirror2", "sciq", {"sciq/SciQ.zip": archive})
    message = _refused("sciq", root, tmp_path)
    assert message == f"dataset 'sciq': {root}/sciq/SciQ.zip!SciQ/train.json holds more than 8388608 bytes (MAX_FILE_BYTES); refusing to read it into memory"
    fault_report("bad input", "hellaswag .bz2 and SciQ.zip member decompressing to 32 MiB (limit set to 8 MiB)",
                 "DataSourceError: '... holds more than 8388608 bytes (MAX_FILE_BYTES); refusing to read it into memory'")


def test_a_corrupt_compressed_file_names_its_path(mirror, tmp_path, fault_report):
    data = bz2.compress(b"x\n" * 1000)
    corrupt = data[:10] + b"\x00" * 40 + data[50:]
    root = _mirror(mirror, tmp_path / "mirror", "hellaswag", {"hellaswag/hellaswag_val_full.txt.bz2": corrupt})
    message = _refused("hellaswag", root, tmp_path)
    assert message == f"dataset 'hellaswag': cannot read {root}/hellaswag/hellaswag_val_full.txt.bz2: OSError: Invalid data stream"

    gz = gzip.compress(b'{"a": 1}\n' * 1000)
    (tmp_path / "rows.jsonl.gz").write_bytes(gz[:20] + bytes(range(256)) + gz[276:])
    with pytest.raises(DataSourceError, match=r"cannot read .*rows\.jsonl\.gz: error: Error -3 while decompressing data"):
        list(readers.read_jsonl(str(tmp_path / "rows.jsonl.gz")))
    fault_report("bad input", "corrupt .bz2 (hellaswag) and corrupt .gz (jsonl reader)", f"DataSourceError: '{message.replace(root + '/', '')}'; zlib error named with the path")


def test_documents_not_in_the_expected_layout_are_refused(mirror, tmp_path, fault_report):
    root = _mirror(mirror, tmp_path / "m1", "squad", {"squad/dev-v1.1.json.zip": _zip({"dev-v1.1.json": json.dumps({"data": 5})})})
    assert _refused("squad", root, tmp_path) == (
        f"dataset 'squad': {root}/squad/dev-v1.1.json.zip!dev-v1.1.json: not SQuAD JSON (expected an object whose 'data' is a list of articles)"
    )
    archive = _zip({"SciQ/train.json": json.dumps({"rows": []}), "SciQ/valid.json": SCIQ_OK, "SciQ/test.json": SCIQ_OK})
    root = _mirror(mirror, tmp_path / "m2", "sciq", {"sciq/SciQ.zip": archive})
    assert _refused("sciq", root, tmp_path) == f"dataset 'sciq': {root}/sciq/SciQ.zip!SciQ/train.json: expected a JSON list, found dict"
    root = _mirror(mirror, tmp_path / "m3", "cnn_dailymail", {"cnn_dailymail/cnndm_sample.train.0.json": b'{"src": []}'})
    assert _refused("cnn_dailymail", root, tmp_path) == f"dataset 'cnn_dailymail': {root}/cnn_dailymail/cnndm_sample.train.0.json: expected a JSON list, found dict"
    fault_report("bad input", "SQuAD zip whose 'data' is 5; SciQ member and CNN/DM json holding an object, not a list",
                 "DataSourceError naming the file and member: 'not SQuAD JSON ...', 'expected a JSON list, found dict'")


def test_a_squad_question_missing_its_text_is_dropped(mirror, tmp_path, fault_report):
    with zipfile.ZipFile(f"{mirror}/squad/dev-v1.1.json.zip") as zf:
        doc = json.loads(zf.read("dev-v1.1.json"))
    del doc["data"][0]["paragraphs"][0]["qas"][0]["question"]
    root = _mirror(mirror, tmp_path / "mirror", "squad", {"squad/dev-v1.1.json.zip": _zip({"dev-v1.1.json": json.dumps(doc)})})
    report = _prepare("squad", root, tmp_path / "out")["normalization"]["validation"]
    assert report["dropped"] == 1 and report["drop_examples"] == [
        f"{root}/squad/dev-v1.1.json.zip!dev-v1.1.json data[0].paragraphs[0].qas[0]: not a SQuAD question (KeyError: 'question')"
    ]
    fault_report("bad input", "squad: a question without 'question'", "dropped and reported: '...dev-v1.1.json data[0].paragraphs[0].qas[0]: not a SQuAD question (KeyError: 'question')'")


def test_a_utf8_byte_order_mark_costs_no_row(mirror, tmp_path, fault_report):
    rel = "copa/train.jsonl"
    root = _mirror(mirror, tmp_path / "mirror", "copa", {rel: codecs.BOM_UTF8 + Path(mirror, rel).read_bytes()})
    report = _prepare("copa", root, tmp_path / "out")["normalization"]["train"]
    assert report["dropped"] == 0 and report["rows"] == 400, report
    assert _frames(tmp_path / "out", "train").equals(_frames(_reference("copa", mirror, tmp_path), "train"))
    fault_report("bad input", f"copa: {rel} starting with a UTF-8 byte-order mark", "read as utf-8-sig: all 400 rows kept, records identical to the file without it")


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _frames(folder: Path, split: str):
    import pandas as pd

    return pd.read_parquet(folder / f"{split}.parquet")


def _reference(task: str, mirror: str, tmp_path: Path) -> Path:
    """``task`` prepared from the real files, as written."""
    _prepare(task, mirror, tmp_path / "lf-out")
    return tmp_path / "lf-out"


def _aeslc_sample(mirror: str) -> list[str]:
    """Three emails of each AESLC split (a reader of one file per row, and a normalizer that splits lines)."""
    return [str(p.relative_to(mirror)) for split in ("train", "dev", "test")
            for p in sorted(Path(mirror, "aeslc/enron_subject_line", split).glob("*.subject"))[:3]]


def _rows(task: str, root: str) -> dict[str, list[dict]]:
    """The reader's raw rows of every split, without where they were read."""
    return {split: [{k: v for k, v in row.items() if k != "_where"} for row in rows] for split, rows in raw_splits(get_task(task), root)[1].items()}


@pytest.mark.parametrize("task, reader", [("aeslc", "text_files"), ("rotten_tomatoes", "labelled_files"), ("trec", "lines (latin-1)")])
def test_crlf_line_ends_give_the_rows_and_records_lf_gives(task, reader, mirror, tmp_path, fault_report):
    files = _aeslc_sample(mirror) if task == "aeslc" else _files(task)
    crlf = _mirror(mirror, tmp_path / "crlf", task, {rel: _crlf(Path(mirror, rel).read_bytes()) for rel in files})
    lf = _mirror(mirror, tmp_path / "lf", task, {rel: Path(mirror, rel).read_bytes() for rel in files})
    assert _rows(task, crlf) == _rows(task, lf)
    stats = _prepare(task, crlf, tmp_path / "out")
    reference = _reference(task, lf, tmp_path)
    for split in stats["rows"]:
        assert _frames(tmp_path / "out", split).equals(_frames(reference, split)), split
    fault_report("bad input", f"{task}: every file with CRLF line ends ({reader} reader)",
                 f"the reader's rows and the records are those of LF: {stats['rows']}, {sum(r['dropped'] for r in stats['normalization'].values())} dropped")


FAILING_NORMALIZERS = [
    ("raises an unexpected exception", "def norm(row, spec):\n    raise RuntimeError('normalizer exploded')\n", "raised RuntimeError: normalizer exploded"),
    ("calls sys.exit", "import sys\n\ndef norm(row, spec):\n    sys.exit(3)\n", "exited (3)"),
]


@pytest.mark.parametrize("case, source, what", FAILING_NORMALIZERS, ids=[c[0] for c in FAILING_NORMALIZERS])
def test_a_normalizer_that_fails_is_named_with_the_row(case, source, what, mirror, tmp_path, monkeypatch, fault_report):
    module = f"failing_normalizer_{len(case)}"
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = get_task("copa").model_copy(update={"normalizer": f"{module}:norm"})
    with pytest.raises(DataSourceError) as info:
        prepare_task(spec, mirror, 0.1, 0, tmp_path / "out")
    assert str(info.value) == f"dataset 'copa': the normalizer {module}:norm {what} at {mirror}/copa/train.jsonl:1"
    fault_report("bad input", f"a normalizer that {case}", f"DataSourceError: '{str(info.value).replace(mirror + '/', '')}'")


def test_a_mirror_pattern_matching_a_folder_is_refused(mirror, tmp_path, fault_report):
    root = _mirror(mirror, tmp_path / "mirror", "rte", {})
    (Path(root) / "rte" / "extra").mkdir()
    spec = get_task("rte").model_copy(update={"mirror": {"train": "rte/*", "validation": "rte/val.jsonl"}})
    expected = f"dataset 'rte': the mirror pattern 'rte/*' matches the folder {root}/rte/extra; make it match files only (for example '*.jsonl')"
    for step in (lambda: source_fingerprint(spec, root), lambda: prepare_task(spec, root, 0.1, 0, tmp_path / "out")):
        with pytest.raises(DataSourceError) as info:
            step()
        assert str(info.value) == expected
    fault_report("bad input", "a mirror glob 'rte/*' that matches a folder", f"DataSourceError (data key and data stage): '{expected.replace(root + '/', '')}'")
