"""Readers turn a dataset's original files into raw rows (dicts), one file format each.

A reader takes the split's mirror entry, already resolved to openable paths (a path, a list of
paths, or a mapping of names to paths), plus the options of the catalog entry. Files are opened
through fsspec, so a mirror may be a local directory or an s3:// prefix; ``.bz2`` and ``.gz``
files are decompressed. Every row carries ``_where`` (file and line, or file) for error reports;
a row that cannot even be parsed is yielded as ``{"_error": reason, "_where": ...}`` so that it
is counted as malformed rather than aborting the split. A file that is missing, truncated or
undecodable raises DataSourceError naming the path.
"""

from __future__ import annotations

import bz2
import csv
import fnmatch
import gzip
import io
import json
import sys
import zipfile
from collections.abc import Iterator
from typing import Any

import fsspec

from muppet_core.errors import DataSourceError
from muppet_core.registry import Registry

READERS = Registry("reader")
for _name in ("jsonl", "json", "json_files", "text_files", "tsv", "csv", "lines", "labelled_files", "parallel", "zip_json", "squad_zip", "zip_json_members", "by_suffix"):
    READERS.register(_name, f"muppet_core.tasks.readers:read_{_name}")

csv.field_size_limit(sys.maxsize)
DECOMPRESS = {".bz2": bz2.decompress, ".gz": gzip.decompress}


def _as_list(files: Any) -> list[str]:
    if isinstance(files, str):
        return [files]
    if isinstance(files, dict):
        return list(files.values())
    return list(files)


def read_bytes(path: str) -> bytes:
    """A file's bytes, decompressed by suffix; any failure names the path."""
    try:
        with fsspec.open(path, "rb") as fh:
            data = fh.read()
        for suffix, decompress in DECOMPRESS.items():
            if path.endswith(suffix):
                data = decompress(data)
        return data
    except (OSError, EOFError, ValueError) as exc:
        raise DataSourceError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None


def read_text(path: str, encoding: str = "utf-8") -> str:
    """A file's text; an undecodable file names the path and the byte offset."""
    data = read_bytes(path)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DataSourceError(f"cannot decode {path} as {encoding} at byte {exc.start}: {exc.reason}") from None


def _text_lines(path: str, encoding: str) -> list[str]:
    """Lines split on '\\n' only (some corpora hold 0x85 or form feeds inside a line)."""
    lines = read_text(path, encoding).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def _json_line(line: str, where: str) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        return {"_error": f"invalid JSON ({exc.msg})", "_where": where}
    if not isinstance(row, dict):
        return {"_error": "JSON line is not an object", "_where": where}
    return {**row, "_where": where}


def read_jsonl(files: Any, encoding: str = "utf-8") -> Iterator[dict]:
    """One JSON object per non-empty line."""
    for path in _as_list(files):
        for n, line in enumerate(_text_lines(path, encoding), 1):
            if line.strip():
                yield _json_line(line, f"{path}:{n}")


def _parse_json(path: str, encoding: str = "utf-8") -> Any:
    try:
        return json.loads(read_text(path, encoding))
    except json.JSONDecodeError as exc:
        raise DataSourceError(f"cannot parse {path} as JSON (line {exc.lineno}: {exc.msg}); is it truncated?") from None


def read_json(files: Any, encoding: str = "utf-8") -> Iterator[dict]:
    """A file holding a JSON list of objects: one row per element."""
    for path in _as_list(files):
        doc = _parse_json(path, encoding)
        if not isinstance(doc, list):
            raise DataSourceError(f"{path}: expected a JSON list, found {type(doc).__name__}")
        for i, row in enumerate(doc):
            yield {**row, "_where": f"{path}[{i}]"} if isinstance(row, dict) else {"_error": "not an object", "_where": f"{path}[{i}]"}


def read_json_files(files: Any, encoding: str = "utf-8") -> Iterator[dict]:
    """One JSON object per file (RACE's one passage per file)."""
    for path in sorted(_as_list(files)):
        text = read_text(path, encoding)
        yield _json_line(text, path) if text.strip() else {"_error": "empty file", "_where": path}


def read_text_files(files: Any, encoding: str = "utf-8") -> Iterator[dict]:
    """One row per file: ``{"text": content, "name": file name}`` (AESLC's one email per file)."""
    for path in sorted(_as_list(files)):
        yield {"text": read_text(path, encoding), "name": path.rsplit("/", 1)[-1], "_where": path}


def _table(files: Any, encoding: str, header: bool, columns: list[str] | None, **csv_args) -> Iterator[dict]:
    for path in _as_list(files):
        rows = csv.reader(io.StringIO("\n".join(_text_lines(path, encoding))), **csv_args)
        names = columns
        for n, cells in enumerate(rows, 1):
            if header and n == 1:
                names = names or [c.strip() for c in cells]
                continue
            if not cells:
                continue
            names = names or [f"col{j}" for j in range(len(cells))]
            if len(cells) < len(names):
                yield {"_error": f"{len(cells)} cells where {len(names)} columns were expected", "_where": f"{path}:{n}"}
                continue
            yield {**dict(zip(names, cells)), "_extra": cells[len(names):], "_where": f"{path}:{n}"}


def read_tsv(files: Any, encoding: str = "utf-8-sig", header: bool = True, columns: list[str] | None = None) -> Iterator[dict]:
    """Tab-separated rows without quoting, named by the header row or by ``columns``.

    Cells beyond the named columns are kept under ``_extra``; rows with too few cells are malformed.
    """
    yield from _table(files, encoding, header, columns, delimiter="\t", quoting=csv.QUOTE_NONE)


def read_csv(files: Any, encoding: str = "utf-8-sig", header: bool = True, columns: list[str] | None = None) -> Iterator[dict]:
    """Comma-separated rows with standard double-quote quoting."""
    yield from _table(files, encoding, header, columns, delimiter=",")


def read_lines(files: Any, encoding: str = "utf-8", group: int = 1) -> Iterator[dict]:
    """Each non-empty line as ``{"line": text}``; with ``group`` > 1, blocks of that many lines
    (empty lines included) as ``{"lines": [...]}``; an incomplete last block is malformed."""
    for path in _as_list(files):
        lines = _text_lines(path, encoding)
        if group == 1:
            for n, line in enumerate(lines, 1):
                if line.strip():
                    yield {"line": line, "_where": f"{path}:{n}"}
            continue
        for start in range(0, len(lines), group):
            block = lines[start : start + group]
            where = f"{path}:{start + 1}"
            yield {"lines": block, "_where": where} if len(block) == group else {"_error": f"last block has {len(block)} of {group} lines", "_where": where}


def read_labelled_files(files: dict[str, str], encoding: str = "utf-8") -> Iterator[dict]:
    """One file per class: ``{"line": text, "source": <key of the file in the mirror entry>}``."""
    for source, path in files.items():
        for n, line in enumerate(_text_lines(path, encoding), 1):
            if line.strip():
                yield {"line": line, "source": source, "_where": f"{path}:{n}"}


def read_parallel(files: dict[str, str], encoding: str = "utf-8") -> Iterator[dict]:
    """Line-aligned parallel files: row i holds line i of every file, under the file's key."""
    columns = {key: _text_lines(path, encoding) for key, path in files.items()}
    lengths = {key: len(lines) for key, lines in columns.items()}
    if len(set(lengths.values())) > 1:
        raise DataSourceError(f"parallel files are not line-aligned: {lengths} lines in {files}")
    first = next(iter(files.values()))
    for n, values in enumerate(zip(*columns.values()), 1):
        yield {**dict(zip(columns, values)), "_where": f"{first}:{n}"}


def _zip_member(path: str, member: str) -> Any:
    """The JSON document stored in a zip member (a glob pattern; ``__MACOSX/`` entries skipped)."""
    try:
        with zipfile.ZipFile(io.BytesIO(read_bytes(path))) as zf:
            names = [n for n in zf.namelist() if not n.startswith("__MACOSX/") and fnmatch.fnmatch(n, member)]
            if len(names) != 1:
                raise DataSourceError(f"{path}: expected one member matching '{member}', found {names or 'none'}")
            return json.loads(zf.read(names[0]).decode("utf-8")), f"{path}!{names[0]}"
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, EOFError) as exc:
        raise DataSourceError(f"cannot read {path} (member {member}): {type(exc).__name__}: {exc}") from None


def read_zip_json(files: Any, member: str) -> Iterator[dict]:
    """A JSON list stored in a zip member: one row per element (SciQ)."""
    for path in _as_list(files):
        doc, where = _zip_member(path, member)
        for i, row in enumerate(doc):
            yield {**row, "_where": f"{where}[{i}]"}


def read_squad_zip(files: Any, member: str) -> Iterator[dict]:
    """SQuAD v1.1 JSON inside a zip: one row per question, with its gold answers."""
    for path in _as_list(files):
        doc, where = _zip_member(path, member)
        for article in doc["data"]:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    yield {
                        "id": qa["id"],
                        "title": article.get("title", ""),
                        "context": paragraph["context"],
                        "question": qa["question"],
                        "answers": qa.get("answers", []),
                        "_where": f"{where} id {qa['id']}",
                    }


def read_zip_json_members(files: dict[str, str]) -> Iterator[dict]:
    """JSON lists in zip members; the mirror entry maps each member glob to its zip, so that
    each split reads its own member of one zip (SciQ's ``*/train.json``, ``*/valid.json``)."""
    for member, path in files.items():
        yield from read_zip_json(path, member)


def read_by_suffix(files: Any) -> Iterator[dict]:
    """Each file with the reader its suffix names (jsonl, json, tsv, csv; before .bz2/.gz), at that
    reader's defaults: one task may mix formats across splits (OpenBookQA's jsonl and tsv)."""
    for path in _as_list(files):
        suffix = path.removesuffix(".bz2").removesuffix(".gz").rsplit(".", 1)[-1]
        if suffix not in ("jsonl", "json", "tsv", "csv"):
            raise DataSourceError(f"{path}: no reader for .{suffix} files")
        yield from READERS.get(suffix)(path)
