"""The one canonical record type per task family.

Every normalizer emits one of these; encoding, training and evaluation see nothing else.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
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


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) if typing.get_origin(hint) is None else str(hint)


def _unicode(text: str) -> bool:
    """Whether text can be written as UTF-8 (JSON allows lone surrogates; Parquet and tokenizers do not)."""
    try:
        return text.isascii() or bool(text.encode("utf-8"))
    except UnicodeEncodeError:
        return False


def _wrong_type(record: Record) -> str | None:
    """Why a field does not hold its declared type (a number where text belongs, text that is not
    valid Unicode), or None: such a record would fail far later, in Parquet or the tokenizer."""
    for name, hint in _field_types(type(record)).items():
        value = getattr(record, name)
        is_list = typing.get_origin(hint) is list
        if is_list and not isinstance(value, list):
            return f"{name} should be {hint}, got {type(value).__name__}"
        expected = str if is_list else (int, float) if hint is float else hint
        for item in value if is_list else [value]:
            if isinstance(item, bool) or not isinstance(item, expected):  # no field holds a bool
                return f"{name} should be {_type_name(hint)}, got {type(item).__name__}"
            if isinstance(item, str) and not _unicode(item):
                return f"{name} is not valid Unicode (a lone surrogate)"
    return None


def problem(record: Record, num_labels: int | None = None) -> str | None:
    """Why a record is malformed (a field of the wrong type, empty text, unknown label, bad span
    offsets), or None."""
    wrong = _wrong_type(record)
    if wrong:
        return wrong
    for name in ("text_a", "text_b", "context", "question", "document", "summary", "answer_text"):
        value = getattr(record, name, None)
        if isinstance(value, str) and not value.strip():
            return f"empty {name}"
    if isinstance(record, ClassificationRecord) and num_labels and not 0 <= record.label < num_labels:
        return f"unknown label {record.label} (the task has {num_labels} labels)"
    if isinstance(record, RegressionRecord) and not math.isfinite(record.label):
        return "score is not a finite number"
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
