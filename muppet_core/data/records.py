"""Storage rows and checks of canonical records, whatever their family.

Each family defines its one canonical record type (see muppet_core.families); every normalizer
emits it, and encoding, training and evaluation see nothing else.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from muppet_core.families.base import Family
    from muppet_core.tasks.catalog import TaskSpec

Record = Any
"""A record: an instance of some family's ``record_type`` (a frozen dataclass)."""


def to_row(record: Record) -> dict[str, Any]:
    """A plain dict for Arrow/Parquet storage."""
    return dataclasses.asdict(record)


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


def problem(record: Record, family: Family, spec: TaskSpec) -> str | None:
    """Why a record is malformed (not the family's record type, a field of the wrong type, empty
    text, or the family's own checks: an unknown label, bad span offsets), or None."""
    if not isinstance(record, family.record_type):
        return f"not a {family.record_type.__name__}"
    wrong = _wrong_type(record)
    if wrong:
        return wrong
    for name in family.text_fields:
        value = getattr(record, name, None)
        if isinstance(value, str) and not value.strip():
            return f"empty {name}"
    return family.record_problem(record, spec)
