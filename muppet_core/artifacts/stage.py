"""Running a stage through the store: computed once per key, served from the store after."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from muppet_core.artifacts.store import ArtifactStore


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


def run_cached(
    store: ArtifactStore, stage: str, name: str, key: str, build: Callable[[Path], dict[str, Any] | None]
) -> StageOutput:
    """Return the stored artifact for ``key``, or build it into a temporary folder and publish it.

    Args:
        store: the artifact store.
        stage: stage name (the artifact's folder in the store).
        name: what the artifact is (a task, a benchmark run), for logs.
        key: the content key.
        build: writes the artifact's files into the folder it is given; may return metadata
            for the manifest.
    """
    if store.has(stage, key):
        out = StageOutput(stage, name, key, store.uri(stage, key), True)
    else:
        with tempfile.TemporaryDirectory(prefix=f"muppet-{stage}-") as tmp:
            meta = build(Path(tmp))
            uri = store.publish(stage, key, tmp, meta)
        out = StageOutput(stage, name, key, uri, False)
    return out
