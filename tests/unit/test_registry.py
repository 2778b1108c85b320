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


def test_an_object_registers_directly_and_can_be_taken_back():
    reg = Registry("widget")
    reg.register("lazy", "json:dumps")
    widget = object()
    reg.register_object("built", widget)
    assert reg.get("built") is widget and reg.names() == ["built", "lazy"]
    with pytest.raises(ValueError, match="already registered"):
        reg.register_object("lazy", widget)
    reg.unregister("built")
    assert "built" not in reg
    with pytest.raises(KeyError, match="unknown widget 'built'"):
        reg.get("built")
