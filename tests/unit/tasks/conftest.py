"""Catalog datasets prepared once per session from the real mirror."""

from __future__ import annotations

import pytest

from muppet_core.data.prepare import prepare_task
from muppet_core.tasks.catalog import load_catalog


@pytest.fixture(scope="session")
def prepared(mirror, tmp_path_factory):
    """A function: task name -> (stats, output folder), preparing each dataset only once."""
    cache = {}

    def get(task):
        if task not in cache:
            out = tmp_path_factory.mktemp(task)
            cache[task] = prepare_task(load_catalog()[task], mirror, 0.1, 0, out), out
        return cache[task]

    return get
