"""Named (not content-addressed) files of the store: a pipeline's latest leaderboard, its history,
checkpoints, jobs.

Every call goes to the store's backend (with its retries, on S3); a reader sees a file's old
content or its new one, never part of it.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from muppet_core.artifacts.backend import StoreBackend


class NamedFiles:
    """Named-file methods of ``ArtifactStore`` (which provides ``root`` and ``backend``)."""

    root: str
    backend: StoreBackend

    def write_bytes(self, relpath: str, data: bytes) -> str:
        """Write a named file atomically; returns its URI."""
        self.backend.write(relpath, data)
        return f"{self.root}/{relpath}"

    def write_text(self, relpath: str, text: str) -> str:
        """Write a named UTF-8 text file with ``write_bytes``; returns its URI."""
        return self.write_bytes(relpath, text.encode("utf-8"))

    def read_bytes(self, relpath: str) -> bytes:
        """Read a named file."""
        return self.backend.read(relpath)

    def read_text(self, relpath: str) -> str:
        """Read a named UTF-8 text file."""
        return self.read_bytes(relpath).decode("utf-8")

    def exists(self, relpath: str) -> bool:
        """Whether a named file exists."""
        return self.backend.exists(relpath)

    def list(self, folder: str, suffix: str = "") -> list[str]:
        """The names of the files directly in ``folder`` (relative to the root) ending in ``suffix``,
        sorted; an absent folder lists nothing."""
        return sorted(n for n in self.backend.list(folder) if n.endswith(suffix) and ".tmp-" not in n)

    def remove(self, relpath: str) -> None:
        """Delete a named file or folder with everything in it; an absent one is no error."""
        self.backend.delete(relpath)

    def local_path(self, relpath: str) -> Path | None:
        """The local path of a named file on a store on this machine (None on any other)."""
        return self.backend.local_path(relpath)

    def put(self, relpath: str, local: str | Path) -> str:
        """Copy a local file to a named file (a remote store streams it in parts); returns its URI."""
        self.backend.put_file(relpath, Path(local))
        return f"{self.root}/{relpath}"

    def get(self, relpath: str, local: str | Path) -> Path:
        """Copy a named file to ``local``; returns ``local``."""
        Path(local).parent.mkdir(parents=True, exist_ok=True)
        self.backend.get_file(relpath, Path(local))
        return Path(local)

    def local_copy(self, relpath: str, folder: str | Path) -> Path:
        """A named file on this machine: itself on a store on this machine, else downloaded into ``folder``."""
        return self.local_path(relpath) or self.get(relpath, Path(folder) / Path(relpath).name)

    def put_folder(self, relpath: str, local: str | Path) -> None:
        """Copy every file under a local folder to the named folder ``relpath``."""
        for path in sorted(p for p in Path(local).rglob("*") if p.is_file()):
            self.put(_join(relpath, path.relative_to(local).as_posix()), path)

    def get_folder(self, relpath: str, local: str | Path) -> None:
        """Copy every file under the named folder ``relpath`` into a local folder."""
        for name in self.backend.find(relpath):
            self.get(_join(relpath, name), Path(local) / name)

    @contextlib.contextmanager
    def staged(self, relpath: str) -> Iterator[Path]:
        """A local folder whose files end up in the named folder ``relpath``: that folder itself on a
        store on this machine, else a temporary one copied there when the block ends without error."""
        in_place = self.local_path(relpath)
        if in_place is not None:
            in_place.mkdir(parents=True, exist_ok=True)
            yield in_place
            return
        with tempfile.TemporaryDirectory(prefix="muppet-staged-") as tmp:
            yield Path(tmp)
            self.put_folder(relpath, tmp)


def _join(folder: str, name: str) -> str:
    """``folder/name``, or ``name`` in the root (``folder`` empty)."""
    return f"{folder}/{name}" if folder else name
