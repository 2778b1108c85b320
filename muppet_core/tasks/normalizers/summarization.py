"""Normalizers of summarization datasets (targets of the seq2seq decoder itself)."""

from __future__ import annotations

from muppet_core.families.summarization import SummarizationRecord
from muppet_core.tasks.catalog import TaskSpec


def aeslc(row: dict, spec: TaskSpec) -> SummarizationRecord:
    """One AESLC email file: the body, a line '@subject', the subject line.

    Dev and test files go on with '@ann0'..'@ann2' human-written subjects; they are not kept.
    """
    lines = row["text"].split("\n")
    at = lines.index("@subject")  # ValueError: no subject marker
    return SummarizationRecord(
        document="\n".join(lines[:at]).strip(), summary=lines[at + 1].strip(), id=row["name"].rsplit(".", 1)[0]
    )


def _sentences(sentences: list[list[str]]) -> str:
    return " ".join(" ".join(tokens) for tokens in sentences)


def presumm(row: dict, spec: TaskSpec) -> SummarizationRecord:
    """PreSumm json (CNN/DailyMail): src and tgt are lists of tokenized sentences; no id in the file."""
    return SummarizationRecord(document=_sentences(row["src"]), summary=_sentences(row["tgt"]))


def document_summary(row: dict, spec: TaskSpec) -> SummarizationRecord:
    """Rows in the hub's XSum layout: document, summary, id."""
    return SummarizationRecord(document=row["document"], summary=row["summary"], id=str(row.get("id", "")))


def from_hub_fields(row: dict, spec: TaskSpec) -> SummarizationRecord:
    """Hub rows mapped through ``hub.fields``: document and summary (default: the same names)."""
    fields = spec.hub.fields
    return SummarizationRecord(document=row[fields.get("document", "document")], summary=row[fields.get("summary", "summary")])
