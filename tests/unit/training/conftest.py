"""Prepared real data the training tests share: one data stage per task, once per pytest worker."""

from __future__ import annotations

import pytest

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.config import DataConfig
from muppet_core.data.stage import data_stage

TASKS = ["rotten_tomatoes", "snli", "commonsenseqa", "squad"]


@pytest.fixture(scope="session")
def store_with_data(mirror, tmp_path_factory):
    """A store holding the prepared ``TASKS``, and each task's data key."""
    store = ArtifactStore(str(tmp_path_factory.mktemp("store")))
    keys = {t: data_stage(t, DataConfig(mirror=mirror), store).key for t in TASKS}
    return store, keys
