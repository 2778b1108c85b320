"""Installing a finished local folder in one atomic rename, never over a complete one."""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from muppet_core.artifacts.manifest import forget
from muppet_core.errors import StoreError


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
