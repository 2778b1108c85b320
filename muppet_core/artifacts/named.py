"""Named (not content-addressed) files of the store: a pipeline's latest leaderboard, its history.

Every call goes through the store's retries on a remote filesystem; a reader sees a file's old
content or its new one, never part of it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class NamedFiles:
    """Named-file methods of ``ArtifactStore`` (which provides ``root``, ``fs``, ``is_local``,
    ``_path`` and ``_call``)."""

    root: str
    fs: Any
    is_local: bool
    _path: Callable[..., str]
    _call: Callable[[str, str, Callable[[], T]], T]

    def write_bytes(self, relpath: str, data: bytes) -> str:
        """Write a named file atomically (staged and renamed locally, one PUT remotely); returns its URI."""
        path, uri = self._path(relpath), f"{self.root}/{relpath}"
        if self.is_local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
            try:
                Path(tmp).write_bytes(data)
                os.replace(tmp, path)
            finally:
                Path(tmp).unlink(missing_ok=True)
        else:
            self._call("write", uri, lambda: self.fs.pipe_file(path, data))
        return uri

    def write_text(self, relpath: str, text: str) -> str:
        """Write a named UTF-8 text file with ``write_bytes``; returns its URI."""
        return self.write_bytes(relpath, text.encode("utf-8"))

    def read_bytes(self, relpath: str) -> bytes:
        """Read a named file."""
        return self._call("read", f"{self.root}/{relpath}", lambda: self.fs.cat_file(self._path(relpath)))

    def read_text(self, relpath: str) -> str:
        """Read a named UTF-8 text file."""
        return self.read_bytes(relpath).decode("utf-8")

    def remove(self, relpath: str, recursive: bool = False) -> None:
        """Delete a named file, or with ``recursive`` a folder and everything under it (absent: nothing to do)."""
        path = self._path(relpath)
        if not self.is_local:
            self.fs.invalidate_cache(path)
        self._call("delete", f"{self.root}/{relpath}", lambda: self.fs.rm(path, recursive=recursive) if self.fs.exists(path) else None)

    def exists(self, relpath: str) -> bool:
        """Whether a named file exists."""
        return self._call("look up", f"{self.root}/{relpath}", lambda: self.fs.exists(self._path(relpath)))

    def list(self, folder: str, suffix: str = "") -> list[str]:
        """The names of the files directly in ``folder`` (relative to the root) ending in ``suffix``,
        sorted; an absent folder lists nothing."""
        path = self._path(folder)
        if not self.is_local:
            self.fs.invalidate_cache(path)

        def names() -> list[str]:
            try:
                entries = self.fs.ls(path, detail=True)
            except FileNotFoundError:
                return []
            return [e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries if e.get("type") == "file"]

        found = self._call("list", f"{self.root}/{folder}", names)
        return sorted(n for n in found if n.endswith(suffix) and ".tmp-" not in n)

    def local_path(self, relpath: str) -> Path | None:
        """The local path of a named file on a local store (None on a remote one)."""
        return Path(self._path(relpath)) if self.is_local else None

    def put(self, relpath: str, local: str | Path) -> str:
        """Copy a local file to a named file (a remote store streams it in parts); returns its URI."""
        path, uri = self._path(relpath), f"{self.root}/{relpath}"
        if self.is_local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        self._call("upload", uri, lambda: self.fs.put_file(str(local), path))
        return uri

    def get(self, relpath: str, local: str | Path) -> Path:
        """Copy a named file to ``local``; returns ``local``."""
        Path(local).parent.mkdir(parents=True, exist_ok=True)
        self._call("download", f"{self.root}/{relpath}", lambda: self.fs.get_file(self._path(relpath), str(local)))
        return Path(local)

    def remove(self, relpath: str) -> None:
        """Delete a named file or folder with everything in it; an absent one is no error."""
        path = self._path(relpath)

        def rm() -> None:
            try:
                self.fs.rm(path, recursive=True)
            except FileNotFoundError:
                pass

        self._call("delete", f"{self.root}/{relpath}", rm)

    def put_folder(self, relpath: str, local: str | Path) -> None:
        """Copy every file under a local folder to the named folder ``relpath``."""
        for path in sorted(p for p in Path(local).rglob("*") if p.is_file()):
            self.put(f"{relpath}/{path.relative_to(local).as_posix()}", path)

    def get_folder(self, relpath: str, local: str | Path) -> None:
        """Copy every file under the named folder ``relpath`` into a local folder."""
        base = self._path(relpath).rstrip("/")
        if not self.is_local:
            self.fs.invalidate_cache(base)
        found = self._call("list", f"{self.root}/{relpath}", lambda: self.fs.find(base))
        for path in found:
            name = path[len(base):].lstrip("/") if path.startswith(base) else path.rsplit("/", 1)[-1]
            self.get(f"{relpath}/{name}", Path(local) / name)
