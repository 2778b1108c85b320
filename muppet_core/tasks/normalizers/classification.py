"""Normalizers of classification datasets (single sentence and sentence pair) and of sentence-pair
regression (STS-B), whose hub rows also go through ``from_hub_fields``."""

from __future__ import annotations

import re

from muppet_core.families import get_family
from muppet_core.families.classification import ClassificationRecord
from muppet_core.families.regression import RegressionRecord
from muppet_core.tasks.catalog import TaskSpec


def _label(spec: TaskSpec, value: str) -> int:
    """The index of a class name; ValueError naming the task's label set for any other value."""
    labels = spec.labels or []
    if value not in labels:
        raise ValueError(f"label {str(value)[:40]!r} is not one of {labels}")
    return labels.index(value)


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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


def ag_news(row: dict, spec: TaskSpec) -> ClassificationRecord:
    """AG News csv: class index 1-4 (classes.txt order), title, description; text joined as on the hub."""
    text = f"{row['title'].strip()} {row['description'].strip()}"
    return ClassificationRecord(text_a=text, text_b=None, label=int(row["class_index"]) - 1)


def wic(row: dict, spec: TaskSpec) -> ClassificationRecord:
    """WiC (mirror jsonl and hub rows): is the target word, made explicit before sentence 2, used in the same sense?"""
    return ClassificationRecord(text_a=row["sentence1"], text_b=f"{row['word']}: {row['sentence2']}", label=int(row["label"]))


def _mark_span(text: str, index: int, span: str) -> str:
    """``text`` with ``span`` in asterisks where it starts at word ``index`` (words split at spaces), or
    at its occurrence nearest that word where the index is off.

    Raises:
        ValueError: ``span`` is not a run of whole words of ``text``.
    """
    words = text.split(" ")
    width = len(span.split(" "))
    pattern = re.compile(rf"(\W*)({re.escape(span)})(\W*)", re.IGNORECASE)
    starts = [i for i in range(len(words) - width + 1) if pattern.fullmatch(" ".join(words[i : i + width]))]
    if not starts:
        raise ValueError(f"span {span[:40]!r} is not in the text")
    start = min(starts, key=lambda i: abs(i - index))
    before, found, after = pattern.fullmatch(" ".join(words[start : start + width])).groups()
    return " ".join([*words[:start], f"{before}*{found}*{after}", *words[start + width :]])


def wsc(row: dict, spec: TaskSpec) -> ClassificationRecord:
    """WSC (mirror jsonl with a ``target`` object, or flat hub rows): does span 2 (the pronoun) refer to span 1?

    The pronoun is marked in the text (``*he*``): a text often holds the same pronoun more than once,
    with a different answer for each occurrence.
    """
    target = row.get("target", row)
    claim = f"{target['span2_text']} refers to {target['span1_text']}"
    text = _mark_span(row["text"], int(target["span2_index"]), target["span2_text"])
    return ClassificationRecord(text_a=text, text_b=claim, label=int(row["label"]))


def multirc(row: dict, spec: TaskSpec) -> list[ClassificationRecord]:
    """SuperGLUE MultiRC jsonl, one passage per line: one record per answer option (question + answer vs. passage).

    Ids are ``<passage>-<question>-<answer>`` indices, unique within a file (the numbering restarts per file).
    """
    passage = row["passage"]
    return [
        ClassificationRecord(passage["text"], f"{q['question']} {a['text']}", int(a["label"]), f"{row['idx']}-{q['idx']}-{a['idx']}")
        for q in passage["questions"]
        for a in q["answers"]
    ]


def multirc_hub(row: dict, spec: TaskSpec) -> ClassificationRecord:
    """Hub MultiRC, already one row per answer option, ids as in ``multirc``."""
    idx = row["idx"]
    example_id = f"{idx['paragraph']}-{idx['question']}-{idx['answer']}"
    return ClassificationRecord(row["paragraph"], f"{row['question']} {row['answer']}", int(row["label"]), example_id)


def from_hub_fields(row: dict, spec: TaskSpec) -> ClassificationRecord | RegressionRecord | None:
    """Rows mapped through ``hub.fields`` (text_a, text_b, label, optional id): hub rows, and mirror files whose
    columns carry the hub's names (the reader's ``columns`` or mapping keys name them where the file has none).

    The label is a class name of ``spec.labels``, a class index, a bool, or a score (family regression);
    a negative label (unlabelled test rows) is dropped. Map ``id`` only to a column unique within a split.
    The record is the task family's, its label converted by the family's ``label_type``.
    """
    fields = spec.hub.fields
    label = row[fields.get("label", "label")]
    if isinstance(label, str) and label.strip() in (spec.labels or []):
        label = spec.labels.index(label.strip())
    elif isinstance(label, str) and spec.labels and not _number(label):
        raise ValueError(f"label {label[:40]!r} is not one of {spec.labels}")
    if label is None or float(label) < 0:
        return None
    text_a = row[fields.get("text_a", "sentence")].strip()
    text_b = row[fields["text_b"]].strip() if "text_b" in fields else None
    example_id = str(row[fields["id"]]) if "id" in fields else ""
    family = get_family(spec.family)
    return family.record_type(text_a=text_a, text_b=text_b, label=family.label_type(label), id=example_id)
