"""The data stage: one content-addressed artifact of normalized splits per dataset."""

from __future__ import annotations

from muppet_core.artifacts.stage import StageOutput, run_cached
from muppet_core.artifacts.store import ArtifactStore, code_version
from muppet_core.config import DataConfig
from muppet_core.data.prepare import prepare_task
from muppet_core.data.sources import source_fingerprint
from muppet_core.tasks.catalog import get_task

STAGE = "data"
CODE = (
    "muppet_core.data.prepare",
    "muppet_core.data.records",
    "muppet_core.data.sources",
    "muppet_core.data.splits",
    "muppet_core.tasks",
)


def data_stage(task: str, data: DataConfig, store: ArtifactStore) -> StageOutput:
    """Normalize ``task`` into the store (or find it there).

    The key hashes the catalog entry, the raw files' contents (or the hub id), the carving
    settings and the data code's version.
    """
    spec = get_task(task)
    key = store.key(
        STAGE,
        spec=spec.model_dump(),
        source=source_fingerprint(spec, data.mirror),
        fraction=data.validation_fraction,
        seed=data.split_seed,
        code=code_version(*CODE),
    )
    return run_cached(
        store, STAGE, task, key,
        lambda out: {"stats": prepare_task(spec, data.mirror, data.validation_fraction, data.split_seed, out)},
    )
