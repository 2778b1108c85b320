"""Normalizers of multiple-choice datasets (scored by the one shared ranking head)."""

from __future__ import annotations

from muppet_core.data.records import MultipleChoiceRecord
from muppet_core.tasks.catalog import TaskSpec


def question_choices(row: dict, spec: TaskSpec) -> MultipleChoiceRecord | None:
    """CommonsenseQA / ARC / OpenBookQA jsonl: question{stem, choices[{label, text}]}, answerKey.

    ARC sometimes labels choices '1'-'4' instead of 'A'-'D'; the key is matched against the
    choices' own labels, so both forms work. Rows whose key matches no choice are dropped.
    """
    choices = row["question"]["choices"]
    keys = [c["label"] for c in choices]
    if row["answerKey"] not in keys:
        return None
    return MultipleChoiceRecord(
        context=row["question"]["stem"],
        choices=[c["text"] for c in choices],
        label=keys.index(row["answerKey"]),
        id=str(row.get("id", "")),
    )


def from_hub_fields(row: dict, spec: TaskSpec) -> MultipleChoiceRecord | None:
    """Hub rows mapped through ``hub.fields``: context, choices and label.

    ``choices`` may be a list of strings or the hub's ``{label: [...], text: [...]}`` mapping; a
    letter label is looked up among the choice labels.
    """
    fields = spec.hub.fields
    choices, label = row[fields.get("choices", "choices")], row[fields.get("label", "label")]
    keys = None
    if isinstance(choices, dict):
        keys, choices = list(choices["label"]), list(choices["text"])
    if isinstance(label, str) and not label.lstrip("-").isdigit():
        if not keys or label not in keys:
            return None
        label = keys.index(label)
    if label is None or label == "" or int(label) < 0:
        return None
    return MultipleChoiceRecord(context=row[fields.get("context", "question")], choices=list(choices), label=int(label))
