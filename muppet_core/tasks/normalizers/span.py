"""Normalizers of extractive reading-comprehension datasets (one shared span head)."""

from __future__ import annotations

from muppet_core.families.span import SpanRecord
from muppet_core.tasks.catalog import TaskSpec


def squad(row: dict, spec: TaskSpec) -> SpanRecord | None:
    """SQuAD v1.1 question rows; the first gold answer is the training target, and every gold
    answer is kept in ``answers`` for scoring (the best match counts, as in the official script).

    Rows without an answer are dropped; an answer that is not at its stated offset is caught by
    the record check.
    """
    answers = row["answers"]
    if not answers:
        return None
    text, start = answers[0]["text"], int(answers[0]["answer_start"])
    golds = [a["text"] for a in answers]
    return SpanRecord(question=row["question"], context=row["context"], answer_text=text, answer_start=start, id=row["id"], answers=golds)


def from_hub_fields(row: dict, spec: TaskSpec) -> SpanRecord | None:
    """Hub rows in the SQuAD layout: question, context, answers{text[], answer_start[]}."""
    answers = row["answers"]
    if not answers["text"]:
        return None
    golds = [{"text": t, "answer_start": a} for t, a in zip(answers["text"], answers["answer_start"])]
    return squad({**row, "answers": golds}, spec)
