"""The data stage: one content-addressed artifact of normalized splits per dataset."""

from __future__ import annotations

import json

from muppet_core.artifacts.stage import StageOutput, run_cached
from muppet_core.artifacts.store import ArtifactStore, code_version
from muppet_core.config import DataConfig
from muppet_core.data.prepare import prepare_task
from muppet_core.data.sources import source_fingerprint
from muppet_core.models.backbone import Variant, load_tokenizer
from muppet_core.registry import safe_name
from muppet_core.tasks.catalog import get_task

STAGE = "data"
CODE = (
    "muppet_core.data.prepare",
    "muppet_core.data.records",
    "muppet_core.data.sources",
    "muppet_core.data.splits",
    "muppet_core.families",
    "muppet_core.tasks",
)


def data_stage(task: str, data: DataConfig, store: ArtifactStore, tokenizer: Variant | None = None) -> StageOutput:
    """Normalize ``task`` into the store (or find it there).

    The key hashes the catalog entry, the raw files' contents (or the hub id), the carving
    settings, the tokenizer used for the length statistics and the data code's version.

    Args:
        task: catalog name.
        data: the pipeline's data settings.
        store: the artifact store.
        tokenizer: the backbone whose tokenizer measures lengths in the stats (optional).

    Raises:
        MuppetError: ``task`` is not a safe name; KeyError: it is not in the catalog.
    """
    spec = get_task(safe_name("task", task))
    key = store.key(
        STAGE,
        spec=spec.model_dump(),
        source=source_fingerprint(spec, data.mirror),
        fraction=data.validation_fraction,
        seed=data.split_seed,
        tokenizer=tokenizer.key if tokenizer else None,
        code=code_version(*CODE),
    )

    def build(out):
        tok = load_tokenizer(tokenizer.encoder_path) if tokenizer else None
        return {"stats": prepare_task(spec, data.mirror, data.validation_fraction, data.split_seed, out, tok)}

    return run_cached(store, STAGE, task, key, build)


def read_stats(store: ArtifactStore, output: StageOutput) -> dict:
    """The stats record of a normalized dataset."""
    return json.loads((store.fetch(STAGE, output.key) / "stats.json").read_text())
