"""Catalog entries as the data stage writes them, prepared from the real mirror once per session."""

from __future__ import annotations

import pytest

from muppet_core.config import DataConfig
from muppet_core.data.prepare import load_split, prepare_task
from muppet_core.data.sources import mirror_files
from muppet_core.tasks.catalog import load_catalog


@pytest.fixture(scope="session")
def entry_splits(mirror, tmp_path_factory):
    """A function: task name -> {split: records}, prepared with the data stage's default carving
    (``DataConfig``'s validation fraction and seed) and read back once per session.

    A hub-only entry skips the calling test; an entry whose mirror files are missing fails it.
    """
    cache: dict[str, dict[str, list]] = {}
    data = DataConfig()

    def get(name: str) -> dict[str, list]:
        spec = load_catalog()[name]
        if not spec.mirror:
            pytest.skip(f"{name}: hub-only (its catalog entry names no mirror files)")
        if mirror_files(spec, mirror) is None:
            pytest.fail(f"{name}: its catalog entry names mirror files that are missing under {mirror}")
        if name not in cache:
            out = tmp_path_factory.mktemp(name)
            stats = prepare_task(spec, mirror, data.validation_fraction, data.split_seed, out)
            cache[name] = {split: load_split(out, spec.family, split) for split in stats["rows"]}
        return cache[name]

    return get
