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


Record = Union[ClassificationRecord, RegressionRecord, MultipleChoiceRecord, SpanRecord]

RECORD_TYPES: dict[str, type] = {
    "classification": ClassificationRecord,
    "regression": RegressionRecord,
    "multiple_choice": MultipleChoiceRecord,
    "span": SpanRecord,
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
