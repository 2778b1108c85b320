"""The ``local`` store backend: a folder on this machine (or one every machine mounts at the same path).

Folders are installed with one atomic rename, never over a complete one; named files are staged and
renamed; locks are ``fcntl`` locks on files under ``_scratch/.locks``, freed by the system when
their holder dies.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from muppet_core.artifacts.backend import BackendSettings, StoreBackend
from muppet_core.artifacts.manifest import forget
from muppet_core.errors import StoreError
from muppet_core.stopping import pause

CORRUPT = "_corrupt"
"""Where a local store sets corrupt artifacts aside (``<root>/_corrupt/<stage>/<key>-<id>``)."""
LOCKS = "_scratch/.locks"
"""The folder of a local store's lock files."""
LOCK_POLL_S = 0.2
"""Seconds between two tries of a lock another process holds."""


class LocalBackend(StoreBackend):
    """A store in a folder of this machine's filesystem (``/path``, ``relative/path`` or ``file:///path``)."""

    def __init__(self, root: str, settings: BackendSettings):
        super().__init__(root, settings)
        self.base = Path(os.path.abspath(root.removeprefix("file://")))

    def _at(self, rel: str) -> Path:
        return self.base / rel if rel else self.base

    def read(self, rel: str) -> bytes:
        return self._at(rel).read_bytes()

    @contextlib.contextmanager
    def _space(self, rel: str) -> Iterator[None]:
        """A write that runs out of space raises one line naming the store and its space."""
        try:
            yield
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise StoreError(f"the artifact store {self.root} is full ({space(self.base)}): could not write {rel}") from None

    def write(self, rel: str, data: bytes) -> None:
        path = self._at(rel)
        tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            with self._space(rel):
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_bytes(data)
                os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def exists(self, rel: str) -> bool:
        return self._at(rel).exists()

    def list(self, rel: str) -> list[str]:
        folder = self._at(rel)
        return [p.name for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []

    def find(self, rel: str) -> list[str]:
        folder = self._at(rel)
        return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())

    def delete(self, rel: str) -> None:
        path = self._at(rel)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def put_file(self, rel: str, local: Path) -> None:
        path = self._at(rel)
        with self._space(rel):
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, path)

    def get_file(self, rel: str, local: Path) -> None:
        shutil.copyfile(self._at(rel), local)

    def put_dir(self, rel: str, local: Path, files: list[str], seal: tuple[str, bytes]) -> bool:
        """Staged beside the target, then renamed into place in one step (see ``install``)."""
        target = self._at(rel)
        staging = target.with_name(f"{target.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            with self._space(rel):
                for name in files:
                    (staging / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(local / name, staging / name)
                (staging / seal[0]).write_bytes(seal[1])
        except BaseException:  # nothing half-copied stays behind
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return install(staging, target, lambda t: (t / seal[0]).is_file())

    def discard(self, rel: str, seal: str) -> str:
        """Moved under ``_corrupt/`` (kept for inspection), in one rename."""
        src, aside = self._at(rel), self._at(f"{CORRUPT}/{rel}-{uuid.uuid4().hex[:8]}")
        aside.parent.mkdir(parents=True, exist_ok=True)
        forget(src)
        try:
            os.rename(src, aside)
        except FileNotFoundError:
            return "nowhere (already gone)"
        return str(aside)

    def local_path(self, rel: str) -> Path:
        return self._at(rel)

    def lock(self, name: str) -> contextlib.AbstractContextManager[None]:
        return file_lock(self._at(f"{LOCKS}/{name}.lock"))


def space(path: Path) -> str:
    """``12.0 KB free of 3.0 MB`` on the filesystem of ``path``."""
    usage = shutil.disk_usage(path)
    return f"{size(usage.free)} free of {size(usage.total)}"


def size(count: float) -> str:
    """A byte count in words: ``512 B``, ``12.0 KB``, ``3.0 MB``."""
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return ""


@contextlib.contextmanager
def file_lock(path: Path, waiting: Callable[[], None] = lambda: None) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on the file ``path`` (created if missing) for the block;
    ``waiting()`` is called once if another holder makes this one wait. The system frees a lock
    whose holder dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waiting()
            while True:  # polled, not blocking: a run asked to stop leaves the wait at once (``muppet_core.stopping``)
                pause(LOCK_POLL_S)
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    continue
        yield


def install(staging: Path, target: Path, keep_existing: Callable[[Path], bool]) -> bool:
    """Rename ``staging`` to ``target`` atomically; returns False (and deletes ``staging``) when a
    target that ``keep_existing`` accepts is already there. An unaccepted one is moved aside first."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        try:
            os.rename(staging, target)  # fails on a non-empty target: never a half/half folder
            return True
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                shutil.rmtree(staging, ignore_errors=True)
                raise
        if keep_existing(target):
            shutil.rmtree(staging, ignore_errors=True)
            return False
        aside = target.with_name(f"{target.name}.stale-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(target, aside)
        except FileNotFoundError:
            continue
        forget(target)
        shutil.rmtree(aside, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    raise StoreError(f"could not install {target}: other writers kept replacing it")
