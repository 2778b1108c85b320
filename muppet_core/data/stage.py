"""The data stage: one content-addressed artifact of normalized splits per dataset."""

from __future__ import annotations

import json

from muppet_core import stages
from muppet_core.artifacts.stage import StageOutput, run_cached
from muppet_core.artifacts.store import ArtifactStore, code_version
from muppet_core.config import DataConfig
from muppet_core.data.prepare import prepare_task
from muppet_core.data.sources import source_fingerprint
from muppet_core.models.backbone import Variant, load_tokenizer
from muppet_core.registry import safe_name
from muppet_core.schema import result_settings
from muppet_core.tasks.catalog import entry_modules, get_task



def data_stage(task: str, data: DataConfig, store: ArtifactStore, tokenizer: Variant | None = None) -> StageOutput:
    """Normalize ``task`` into the store (or find it there).

    The key hashes the catalog entry, the raw files' contents (or the hub id, config and the commit
    sha of the revision read, which the manifest records too), every data setting
    but those marked execution or plan (the carving's), the tokenizer used for the length
    statistics and the version of the code this module imports (transitively), of the entry's
    normalizers and of the plugin modules that define its family or reader.

    Args:
        task: catalog name.
        data: the pipeline's data settings.
        store: the artifact store.
        tokenizer: the backbone whose tokenizer measures lengths in the stats (optional).

    Raises:
        MuppetError: ``task`` is not a safe name; KeyError: it is not in the catalog.
    """
    spec = get_task(safe_name("task", task))
    source = source_fingerprint(spec, data.mirror)  # from the hub: its commit sha, resolved once here
    key = store.key(
        stages.DATA,
        spec=spec.model_dump(exclude={"hub": {"revision"}}),  # the revision keys the data as the sha it resolves to (source)
        source=source,
        settings=result_settings(data),
        tokenizer=tokenizer.key if tokenizer else None,
        code=code_version(__name__, *normalizer_modules(spec), *entry_modules(spec, "family", "reader")),
    )

    def build(out):
        tok = load_tokenizer(tokenizer.encoder_path) if tokenizer else None
        revision = source.get("revision")
        stats = prepare_task(spec, data.mirror, data.validation_fraction, data.split_seed, out, tok, revision)
        return {"stats": stats, **({"hub": {"path": spec.hub.path, "name": spec.hub.name, "revision": revision}} if revision else {})}

    return run_cached(store, stages.DATA, task, key, build)


def normalizer_modules(spec) -> list[str]:
    """The modules of an entry's normalizers (its own, and the one for hub rows): their code is part of the data key."""
    return sorted({target.partition(":")[0] for target in (spec.normalizer, spec.hub_normalizer()) if target})


def read_stats(store: ArtifactStore, output: StageOutput) -> dict:
    """The stats record of a normalized dataset."""
    return json.loads((store.fetch(stages.DATA, output.key) / "stats.json").read_text())
