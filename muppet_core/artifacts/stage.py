"""Running a stage through the store: computed once per key, served from the store after."""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from muppet_core.artifacts.local import file_lock
from muppet_core.artifacts.store import ArtifactStore
from muppet_core.errors import CorruptArtifactError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageOutput:
    """Where a stage's output lives and whether this run computed it."""

    stage: str
    name: str
    key: str
    uri: str
    cache_hit: bool

    def describe(self) -> str:
        """One log line: ``cache hit  data/sst2  <key>`` or ``computed   ...``."""
        status = "cache hit" if self.cache_hit else "computed "
        return f"{status}  {self.stage}/{self.name}  {self.key}  {self.uri}"


def _stored_intact(store: ArtifactStore, stage: str, name: str, key: str) -> bool:
    """Whether the store holds the artifact, every file matching its manifest. A corrupt one is
    reported, taken out of the store and counts as absent."""
    if not store.has(stage, key):
        return False
    try:
        store.fetch(stage, key)
        return True
    except FileNotFoundError:  # taken out since has() looked
        return False
    except CorruptArtifactError as exc:
        where = store.discard(stage, key)
        log.warning("corrupt artifact %s/%s (%s): %s; moved it to %s and computing it again", stage, name, key, exc, where)
        return False


def stored_output(store: ArtifactStore, stage: str, name: str, key: str) -> StageOutput | None:
    """The stored artifact of ``key`` as a cache hit when the store holds it intact, else None (a corrupt
    one is moved aside, as ``run_cached`` does): what a caller checks before it takes resources for the build."""
    if _stored_intact(store, stage, name, key):
        return StageOutput(stage, name, key, store.uri(stage, key), True)
    return None


def run_cached(
    store: ArtifactStore, stage: str, name: str, key: str, build: Callable[[Path], dict[str, Any] | None]
) -> StageOutput:
    """Return the stored artifact for ``key``, or build it into a temporary folder and publish it.

    A stored artifact is used only when every file matches its manifest's sha256; a corrupt one
    is logged as a warning, moved aside (deleted on a remote store) and built again. Runs on one
    machine that need the same missing key build it once: the others wait for it.

    Args:
        store: the artifact store.
        stage: stage name (the artifact's folder in the store).
        name: what the artifact is (a task, a benchmark run), for logs.
        key: the content key.
        build: writes the artifact's files into the folder it is given; may return metadata
            for the manifest.
    """
    if (stored := stored_output(store, stage, name, key)) is not None:
        return stored
    with _build_lock(store, stage, name, key):
        if (stored := stored_output(store, stage, name, key)) is not None:  # built by the run we waited for
            return stored
        with tempfile.TemporaryDirectory(prefix=f"muppet-{stage}-") as tmp:
            meta = build(Path(tmp))
            uri = store.publish(stage, key, tmp, meta)
    return StageOutput(stage, name, key, uri, False)


def _build_lock(store: ArtifactStore, stage: str, name: str, key: str) -> contextlib.AbstractContextManager[None]:
    """The key's build lock, so runs on this machine build each key once: the others wait, then find
    it stored. A lock held by a killed process is released by the system."""
    return file_lock(store.lock_path(stage, key), lambda: log.info("%s/%s (%s) is being built by another run: waiting for it", stage, name, key))
