"""Readers turn a dataset's original files into raw rows (dicts), one format each.

A reader takes the split's mirror entry, already resolved to openable paths (a path, a list of
paths, or a mapping of names to paths), plus the options of the catalog entry. Files are opened
through fsspec, so a mirror may be a local directory or an s3:// prefix.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import zipfile
from collections.abc import Iterator
from typing import Any

import fsspec

from muppet_core.registry import Registry

READERS = Registry("reader")
for _name in ("jsonl", "tsv", "lines", "labelled_files", "parallel", "squad_zip"):
    READERS.register(_name, f"muppet_core.tasks.readers:read_{_name}")

csv.field_size_limit(sys.maxsize)


def _as_list(files: Any) -> list[str]:
    if isinstance(files, str):
        return [files]
    if isinstance(files, dict):
        return list(files.values())
    return list(files)


def _text_lines(path: str, encoding: str) -> list[str]:
    """Lines split on '\\n' only (some corpora hold 0x85 or form feeds inside a line)."""
    with fsspec.open(path, "rb") as fh:
        text = fh.read().decode(encoding)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def read_jsonl(files: Any, encoding: str = "utf-8") -> Iterator[dict]:
    """One JSON object per non-empty line."""
    for path in _as_list(files):
        for line in _text_lines(path, encoding):
            if line.strip():
                yield json.loads(line)


def read_tsv(
    files: Any, encoding: str = "utf-8-sig", header: bool = True, columns: list[str] | None = None
) -> Iterator[dict]:
    """Tab-separated rows without quoting; named by the header row or by ``columns``.

    Rows with more cells than names keep the extras under ``_extra``.
    """
    for path in _as_list(files):
        rows = csv.reader(io.StringIO("\n".join(_text_lines(path, encoding))), delimiter="\t", quoting=csv.QUOTE_NONE)
        names = columns
        for i, cells in enumerate(rows):
            if header and i == 0:
                names = names or [c.strip() for c in cells]
                continue
            if not cells:
                continue
            names = names or [f"col{j}" for j in range(len(cells))]
            row = dict(zip(names, cells))
            row["_extra"] = cells[len(names):]
            yield row


def read_lines(files: Any, encoding: str = "utf-8") -> Iterator[dict]:
    """Each non-empty line as ``{"line": text}``."""
    for path in _as_list(files):
        for line in _text_lines(path, encoding):
            if line.strip():
                yield {"line": line}


def read_labelled_files(files: dict[str, str], encoding: str = "utf-8") -> Iterator[dict]:
    """One file per class: ``{"line": text, "source": <key of the file in the mirror entry>}``."""
    for source, path in files.items():
        for line in _text_lines(path, encoding):
            if line.strip():
                yield {"line": line, "source": source}


def read_parallel(files: dict[str, str], encoding: str = "utf-8") -> Iterator[dict]:
    """Line-aligned parallel files: row i holds line i of every file, under the file's key."""
    columns = {key: _text_lines(path, encoding) for key, path in files.items()}
    lengths = {key: len(lines) for key, lines in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"parallel files are not line-aligned: {lengths}")
    for values in zip(*columns.values()):
        yield dict(zip(columns, values))


def read_squad_zip(files: Any, member: str) -> Iterator[dict]:
    """SQuAD v1.1 JSON inside a zip: one row per question, with its first gold answer."""
    for path in _as_list(files):
        with fsspec.open(path, "rb") as fh, zipfile.ZipFile(io.BytesIO(fh.read())) as zf:
            doc = json.loads(zf.read(member).decode("utf-8"))
        for article in doc["data"]:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    yield {
                        "id": qa["id"],
                        "title": article.get("title", ""),
                        "context": paragraph["context"],
                        "question": qa["question"],
                        "answers": qa.get("answers", []),
                    }
