"""The lazy registry and its "did you mean" errors."""

import pytest

from muppet_core.evaluation.metrics import METRICS
from muppet_core.registry import Registry, resolve
from muppet_core.tasks.readers import READERS


def test_lazy_target_resolves_and_unknown_name_suggests():
    reg = Registry("widget")
    reg.register("json_dumps", "json:dumps")
    assert reg.get("json_dumps")({"a": 1}) == '{"a": 1}'
    with pytest.raises(KeyError, match="did you mean 'json_dumps'"):
        reg.get("json_dump")


def test_conflicting_registration_is_refused():
    reg = Registry("widget")
    reg.register("x", "json:dumps")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("x", "json:loads")


def test_every_registered_reader_and_metric_imports():
    for name in READERS.names():
        assert callable(READERS.get(name))
    for name in METRICS.names():
        assert METRICS.get(name).name == name
    with pytest.raises(ValueError):
        resolve("no_colon_here")
