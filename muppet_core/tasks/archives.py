"""Readers of zip archives: JSON documents stored in members, read in memory and never extracted.

An archive with a member whose path is absolute, climbs out with '..' or is a link is refused as
a whole, and so is a member larger than ``MAX_FILE_BYTES`` uncompressed; see
``muppet_core.tasks.readers`` for the rows' ``_where`` and ``_error`` conventions.
"""

from __future__ import annotations

import fnmatch
import io
import json
import re
import stat
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any

from muppet_core.errors import DataSourceError
from muppet_core.tasks.readers import _as_list, _bounded_read, read_bytes


def _unsafe_member(info: zipfile.ZipInfo) -> str | None:
    """Why a zip member's path would escape an extraction folder (absolute, '..', a link), or None."""
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        return "an absolute path"
    if ".." in name.split("/"):
        return "a path climbing out of the archive ('..')"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link"
    return None


def _zip_member(path: str, member: str) -> Any:
    """The JSON document stored in a zip member (a glob pattern; ``__MACOSX/`` entries skipped).

    The archive is read in memory. One whose members would escape an extraction folder is refused
    as a whole, and so is a member larger than ``MAX_FILE_BYTES`` uncompressed.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(read_bytes(path))) as zf:
            for info in zf.infolist():
                reason = _unsafe_member(info)
                if reason:
                    raise DataSourceError(f"{path}: member '{info.filename}' is {reason}; refusing the archive")
            infos = [i for i in zf.infolist() if not i.filename.startswith("__MACOSX/") and fnmatch.fnmatch(i.filename, member)]
            if len(infos) != 1:
                raise DataSourceError(f"{path}: expected one member matching '{member}', found {[i.filename for i in infos] or 'none'}")
            where = f"{path}!{infos[0].filename}"
            with zf.open(infos[0]) as fh:
                data = _bounded_read(fh, where)
            return json.loads(data.decode("utf-8")), where
    except (zipfile.BadZipFile, zipfile.LargeZipFile, json.JSONDecodeError, UnicodeDecodeError, EOFError, OSError,
            zlib.error, NotImplementedError, RuntimeError) as exc:  # RuntimeError: encrypted; RecursionError: nesting
        raise DataSourceError(f"cannot read {path} (member {member}): {type(exc).__name__}: {str(exc)[:200]}") from None


def read_zip_json(files: Any, member: str) -> Iterator[dict]:
    """A JSON list stored in a zip member: one row per element (SciQ)."""
    for path in _as_list(files):
        doc, where = _zip_member(path, member)
        if not isinstance(doc, list):
            raise DataSourceError(f"{where}: expected a JSON list, found {type(doc).__name__}")
        for i, row in enumerate(doc):
            yield {**row, "_where": f"{where}[{i}]"} if isinstance(row, dict) else {"_error": "not an object", "_where": f"{where}[{i}]"}


def _squad_questions(article: Any, where: str) -> Iterator[dict]:
    """The question rows of one SQuAD article; a part not in the SQuAD layout comes as a malformed row."""
    paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
    if not isinstance(paragraphs, list):
        yield {"_error": "not a SQuAD article (no 'paragraphs' list)", "_where": where}
        return
    for p, paragraph in enumerate(paragraphs):
        qas = paragraph.get("qas") if isinstance(paragraph, dict) else None
        if not isinstance(qas, list):
            yield {"_error": "not a SQuAD paragraph (no 'qas' list)", "_where": f"{where}.paragraphs[{p}]"}
            continue
        for q, qa in enumerate(qas):
            try:
                row = {
                    "id": qa["id"],
                    "title": article.get("title", ""),
                    "context": paragraph["context"],
                    "question": qa["question"],
                    "answers": qa.get("answers", []),
                }
            except (KeyError, TypeError, AttributeError) as exc:
                yield {"_error": f"not a SQuAD question ({type(exc).__name__}: {exc})", "_where": f"{where}.paragraphs[{p}].qas[{q}]"}
                continue
            yield row


def read_squad_zip(files: Any, member: str) -> Iterator[dict]:
    """SQuAD v1.1 JSON inside a zip: one row per question, with its gold answers."""
    for path in _as_list(files):
        doc, where = _zip_member(path, member)
        articles = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(articles, list):
            raise DataSourceError(f"{where}: not SQuAD JSON (expected an object whose 'data' is a list of articles)")
        for a, article in enumerate(articles):
            for row in _squad_questions(article, f"{where} data[{a}]"):
                yield row if "_error" in row else {**row, "_where": f"{where} id {row['id']}"}


def read_zip_json_members(files: dict[str, str]) -> Iterator[dict]:
    """JSON lists in zip members; the mirror entry maps each member glob to its zip, so that
    each split reads its own member of one zip (SciQ's ``*/train.json``, ``*/valid.json``)."""
    for member, path in files.items():
        yield from read_zip_json(path, member)
