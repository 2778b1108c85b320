"""Readers turn a dataset's original files into raw rows (dicts), one file format each (zip archives in
``muppet_core.tasks.archives``).

A reader takes the split's mirror entry, already resolved to openable paths (a path, a list of
paths, or a mapping of names to paths), plus the options of the catalog entry. Files are opened
through fsspec, so a mirror may be a local directory or an s3:// prefix; ``.bz2`` and ``.gz``
files are decompressed. Every row carries ``_where`` (file and line, or file) for error reports;
a row that cannot even be parsed (or a line longer than ``MAX_LINE_CHARS``) is yielded as
``{"_error": reason, "_where": ...}`` so that it is counted as malformed rather than aborting the
split. A file that is missing, truncated, undecodable, larger than ``MAX_FILE_BYTES`` (decompressed),
or a zip archive with a member whose path is absolute, climbs out with '..' or is a link, raises
DataSourceError naming the path. Archives are read in memory, never extracted to disk.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from typing import Any

import fsspec

from muppet_core.errors import DataSourceError
from muppet_core.registry import Registry

READERS = Registry("reader")
for _name in ("jsonl", "json", "json_files", "text_files", "tsv", "csv", "lines", "labelled_files", "parallel", "by_suffix"):
    READERS.register(_name, f"muppet_core.tasks.readers:read_{_name}")
for _name in ("zip_json", "squad_zip", "zip_json_members"):
    READERS.register(_name, f"muppet_core.tasks.archives:read_{_name}")

MAX_FILE_BYTES = 1 << 30
"""The most bytes a file (after decompression) or a zip member may hold: files are read whole."""
MAX_LINE_CHARS = 1 << 20
"""The most characters a line (or a csv field) may hold before it is dropped as malformed."""
DECOMPRESS = {".bz2": bz2.BZ2File, ".gz": lambda raw: gzip.GzipFile(fileobj=raw)}
BYTE_ORDER_MARKS = {
    codecs.BOM_UTF32_LE: "UTF-32", codecs.BOM_UTF32_BE: "UTF-32", codecs.BOM_UTF16_LE: "UTF-16", codecs.BOM_UTF16_BE: "UTF-16",
}


def _as_list(files: Any) -> list[str]:
    if isinstance(files, str):
        return [files]
    if isinstance(files, dict):
        return list(files.values())
    return list(files)


def _bounded_read(fh: Any, what: str, chunk: int = 1 << 24) -> bytes:
    """All of ``fh``, read in chunks; past ``MAX_FILE_BYTES`` it is refused rather than read on."""
    chunks, size = [], 0
    while data := fh.read(chunk):
        size += len(data)
        if size > MAX_FILE_BYTES:
            raise DataSourceError(f"{what} holds more than {MAX_FILE_BYTES} bytes (MAX_FILE_BYTES); refusing to read it into memory")
        chunks.append(data)
    return b"".join(chunks)


def read_bytes(path: str) -> bytes:
    """A file's bytes, decompressed by suffix (at most ``MAX_FILE_BYTES`` either way); any failure names the path."""
    try:
        with fsspec.open(path, "rb") as fh:
            data = _bounded_read(fh, path)
        for suffix, opener in DECOMPRESS.items():
            if path.endswith(suffix):
                with opener(io.BytesIO(data)) as fh:
                    data = _bounded_read(fh, f"{path} (decompressed)")
        return data
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise DataSourceError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None


def read_text(path: str, encoding: str = "utf-8") -> str:
    """A file's text, its line ends '\\n' whether written '\\n' or '\\r\\n'; UTF-8 is read as ``utf-8-sig``
    (a leading byte-order mark is dropped, not read as part of the first row). An undecodable file
    names the path and the byte offset (or the UTF-16/32 byte-order mark it starts with)."""
    data = read_bytes(path)
    codec = encoding.lower().replace("-", "").replace("_", "")
    if not codec.startswith(("utf16", "utf32")):
        for mark, name in BYTE_ORDER_MARKS.items():
            if data.startswith(mark):
                raise DataSourceError(f"cannot decode {path} as {encoding}: it is {name} text (it starts with a {name} byte-order mark)")
    try:
        text = data.decode("utf-8-sig" if codec == "utf8" else encoding)
    except UnicodeDecodeError as exc:
        raise DataSourceError(f"cannot decode {path} as {encoding} at byte {exc.start}: {exc.reason}") from None
    return text.replace("\r\n", "\n") if "\r" in text else text


def _text_lines(path: str, encoding: str) -> list[str]:
    """Lines split on '\\n' only (some corpora hold 0x85 or form feeds inside a line; ``read_text`` made '\\r\\n' '\\n')."""
    lines = read_text(path, encoding).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _too_long(lines: list[str], where: str) -> dict | None:
    """The malformed row standing for a line over ``MAX_LINE_CHARS`` (never parsed), or None."""
    longest = max((len(line) for line in lines), default=0)
    if longest > MAX_LINE_CHARS:
        return {"_error": f"line too long: {longest} characters (MAX_LINE_CHARS={MAX_LINE_CHARS})", "_where": where}
    return None


def _json_line(line: str, where: str) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        return {"_error": f"invalid JSON ({exc.msg})", "_where": where}
    except RecursionError:
        return {"_error": "invalid JSON (nested too deeply)", "_where": where}
    if not isinstance(row, dict):
        return {"_error": "JSON line is not an object", "_where": where}
    return {**row, "_where": where}


def read_jsonl(files: Any, encoding: str = "utf-8") -> Iterator[dict]:
    """One JSON object per non-empty line."""
    for path in _as_list(files):
        for n, line in enumerate(_text_lines(path, encoding), 1):
            if line.strip():
                where = f"{path}:{n}"
                yield _too_long([line], where) or _json_line(line, where)


def _parse_json(path: str, encoding: str = "utf-8") -> Any:
    try:
        return json.loads(read_text(path, encoding))
    except json.JSONDecodeError as exc:
        raise DataSourceError(f"cannot parse {path} as JSON (line {exc.lineno}: {exc.msg}); is it truncated?") from None
    except RecursionError:
        raise DataSourceError(f"cannot parse {path} as JSON: nested too deeply") from None


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


def _csv_rows(reader: Any, path: str) -> Iterator[tuple[int, list[str] | dict]]:
    """(line number, cells) per row; a row the csv module cannot parse (a field over
    ``MAX_LINE_CHARS``) comes as a malformed row and the reader goes on with the next line."""
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, {"_error": f"unparseable row ({exc})", "_where": f"{path}:{reader.line_num}"}
            continue
        yield reader.line_num, cells


def _table(files: Any, encoding: str, header: bool, columns: list[str] | None, **csv_args) -> Iterator[dict]:
    csv.field_size_limit(MAX_LINE_CHARS)
    for path in _as_list(files):
        rows = csv.reader((line + "\n" for line in _text_lines(path, encoding)), **csv_args)
        names, first = columns, True
        for n, cells in _csv_rows(rows, path):
            if isinstance(cells, dict):
                yield cells
                continue
            if header and first:
                first = False
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
                    yield _too_long([line], f"{path}:{n}") or {"line": line, "_where": f"{path}:{n}"}
            continue
        for start in range(0, len(lines), group):
            block = lines[start : start + group]
            where = f"{path}:{start + 1}"
            if len(block) != group:
                yield {"_error": f"last block has {len(block)} of {group} lines", "_where": where}
                continue
            yield _too_long(block, where) or {"lines": block, "_where": where}


def read_labelled_files(files: dict[str, str], encoding: str = "utf-8") -> Iterator[dict]:
    """One file per class: ``{"line": text, "source": <key of the file in the mirror entry>}``."""
    for source, path in files.items():
        for n, line in enumerate(_text_lines(path, encoding), 1):
            if line.strip():
                yield _too_long([line], f"{path}:{n}") or {"line": line, "source": source, "_where": f"{path}:{n}"}


def read_parallel(files: dict[str, str], encoding: str = "utf-8") -> Iterator[dict]:
    """Line-aligned parallel files: row i holds line i of every file, under the file's key."""
    columns = {key: _text_lines(path, encoding) for key, path in files.items()}
    lengths = {key: len(lines) for key, lines in columns.items()}
    if len(set(lengths.values())) > 1:
        raise DataSourceError(f"parallel files are not line-aligned: {lengths} lines in {files}")
    first = next(iter(files.values()))
    for n, values in enumerate(zip(*columns.values()), 1):
        yield _too_long(list(values), f"{first}:{n}") or {**dict(zip(columns, values)), "_where": f"{first}:{n}"}


def read_by_suffix(files: Any) -> Iterator[dict]:
    """Each file with the reader its suffix names (jsonl, json, tsv, csv; before .bz2/.gz), at that
    reader's defaults: one task may mix formats across splits (OpenBookQA's jsonl and tsv)."""
    for path in _as_list(files):
        suffix = path.removesuffix(".bz2").removesuffix(".gz").rsplit(".", 1)[-1]
        if suffix not in ("jsonl", "json", "tsv", "csv"):
            raise DataSourceError(f"{path}: no reader for .{suffix} files")
        yield from READERS.get(suffix)(path)
