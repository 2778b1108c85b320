"""The one canonical record type per task family.

Every normalizer emits one of these; encoding, training and evaluation see nothing else.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Union


@dataclass(frozen=True)
class ClassificationRecord:
    """A single sentence (text_b is None) or a sentence pair with a class index."""

    text_a: str
    text_b: str | None
    label: int
    id: str = ""


@dataclass(frozen=True)
class RegressionRecord:
    """A sentence pair with a real-valued score (STS-B)."""

    text_a: str
    text_b: str | None
    label: float
    id: str = ""


@dataclass(frozen=True)
class MultipleChoiceRecord:
    """A context (question, premise, passage + question) with candidate answers; label indexes choices."""

    context: str
    choices: list[str]
    label: int
    id: str = ""


@dataclass(frozen=True)
class SpanRecord:
    """Extractive reading comprehension: the answer is context[answer_start:answer_start+len(answer_text)]."""

    question: str
    context: str
    answer_text: str
    answer_start: int
    id: str = ""


@dataclass(frozen=True)
class SummarizationRecord:
    """A document and its reference summary (the decoder's target)."""

    document: str
    summary: str
    id: str = ""


Record = Union[ClassificationRecord, RegressionRecord, MultipleChoiceRecord, SpanRecord, SummarizationRecord]

RECORD_TYPES: dict[str, type] = {
    "classification": ClassificationRecord,
    "regression": RegressionRecord,
    "multiple_choice": MultipleChoiceRecord,
    "span": SpanRecord,
    "summarization": SummarizationRecord,
}


def to_row(record: Record) -> dict[str, Any]:
    """A plain dict for Arrow/Parquet storage."""
    return dataclasses.asdict(record)


def from_row(family: str, row: dict[str, Any]) -> Record:
    """Rebuild the family's record from a stored row."""
    cls = RECORD_TYPES[family]
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in row.items() if k in names}
    if "choices" in values:
        values["choices"] = list(values["choices"])
    return cls(**values)


def problem(record: Record, num_labels: int | None = None) -> str | None:
    """Why a record is malformed (empty text, unknown label, bad span offsets), or None."""
    for name in ("text_a", "text_b", "context", "question", "document", "summary", "answer_text"):
        value = getattr(record, name, None)
        if isinstance(value, str) and not value.strip():
            return f"empty {name}"
    if isinstance(record, ClassificationRecord) and num_labels and not 0 <= record.label < num_labels:
        return f"unknown label {record.label}"
    if isinstance(record, RegressionRecord) and record.label != record.label:
        return "score is not a number"
    if isinstance(record, MultipleChoiceRecord):
        if len(record.choices) < 2 or any(not c.strip() for c in record.choices):
            return "fewer than two non-empty choices"
        if not 0 <= record.label < len(record.choices):
            return f"answer index {record.label} outside {len(record.choices)} choices"
    if isinstance(record, SpanRecord):
        end = record.answer_start + len(record.answer_text)
        if record.answer_start < 0 or record.context[record.answer_start : end] != record.answer_text:
            return "answer not at its offset in the context"
    return None
