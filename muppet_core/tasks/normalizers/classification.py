"""Normalizers of classification datasets (single sentence and sentence pair)."""

from __future__ import annotations

from muppet_core.data.records import ClassificationRecord
from muppet_core.tasks.catalog import TaskSpec


def _label(spec: TaskSpec, value: str) -> int:
    return (spec.labels or []).index(value)


def label_prefixed_line(row: dict, spec: TaskSpec) -> ClassificationRecord:
    """``'<label index> <text>'`` per line (SST-2 stsa.binary, IMDB/Yelp TextFooler subsets)."""
    label, text = row["line"].split(" ", 1)
    return ClassificationRecord(text_a=text.strip(), text_b=None, label=int(label))


def trec(row: dict, spec: TaskSpec) -> ClassificationRecord:
    """``'COARSE:fine question'``; the label is the coarse class."""
    label, text = row["line"].split(" ", 1)
    return ClassificationRecord(text_a=text.strip(), text_b=None, label=_label(spec, label.split(":")[0]))


def file_labelled_line(row: dict, spec: TaskSpec) -> ClassificationRecord:
    """One file per class; the mirror entry's key names the class (Rotten Tomatoes)."""
    return ClassificationRecord(text_a=row["line"].strip(), text_b=None, label=_label(spec, row["source"]))


def premise_hypothesis(row: dict, spec: TaskSpec) -> ClassificationRecord:
    """SuperGLUE-style jsonl/parallel rows with premise, hypothesis and a label name (RTE, CB, SNLI)."""
    return ClassificationRecord(text_a=row["premise"].strip(), text_b=row["hypothesis"].strip(), label=_label(spec, row["label"].strip()))


def mrpc(row: dict, spec: TaskSpec) -> ClassificationRecord:
    """MSR paraphrase TSV: Quality (1 = paraphrase), #1 String, #2 String."""
    return ClassificationRecord(
        text_a=row["#1 String"], text_b=row["#2 String"], label=int(row["Quality"]), id=f"{row['#1 ID']}-{row['#2 ID']}"
    )


def qnli(row: dict, spec: TaskSpec) -> ClassificationRecord:
    """GLUE QNLI TSV: question, sentence, label name."""
    return ClassificationRecord(text_a=row["question"], text_b=row["sentence"], label=_label(spec, row["label"]))


def from_hub_fields(row: dict, spec: TaskSpec) -> ClassificationRecord | None:
    """Hub rows mapped through ``hub.fields`` (text_a, text_b, label); label -1 (unlabelled) is dropped."""
    fields = spec.hub.fields
    label = row[fields.get("label", "label")]
    if isinstance(label, str):
        label = _label(spec, label)
    if label is None or int(label) < 0:
        return None
    text_b = row[fields["text_b"]] if "text_b" in fields else None
    return ClassificationRecord(text_a=row[fields.get("text_a", "sentence")], text_b=text_b, label=int(label))
