"""The lazy registry and its "did you mean" errors."""

import sys

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


def test_a_tracker_kind_and_a_store_scheme_that_only_a_plugin_registers_are_found_through_its_import(tmp_path, monkeypatch):
    """The run's plugins are imported when a registry is asked for a name it lacks (``Registry.known``,
    its ``on_miss``): the config's tracker and executor kinds and the store's schemes go through it. Each
    member comes from a plugin of its own, named only when its registry is asked."""
    from muppet_core.artifacts.backend import BACKENDS, backend_class
    from muppet_core.config import TRACKERS, TrackingConfig
    from muppet_core.plugins import PLUGINS_ENV

    (tmp_path / "late_tracker_i28.py").write_text(
        "from typing import Literal\n"
        "from muppet_core.config import TrackingConfig, register_tracker\n"
        "class LateTracking(TrackingConfig):\n"
        "    kind: Literal['late'] = 'late'\n"
        "register_tracker(LateTracking)\n"
    )
    (tmp_path / "late_backend_i28.py").write_text(
        "from muppet_core.artifacts.backend import BACKENDS\n"
        "from muppet_core.artifacts.local import LocalBackend\n"
        "class LateBackend(LocalBackend):\n"
        "    pass\n"
        "BACKENDS.register_object('late', LateBackend)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert "late" not in TRACKERS and "late" not in BACKENDS  # nothing imported them yet
        monkeypatch.setenv(PLUGINS_ENV, "late_tracker_i28")
        assert type(TrackingConfig.choose({"kind": "late"}, TrackingConfig.model_validate)).__name__ == "LateTracking"
        assert "late" not in BACKENDS
        monkeypatch.setenv(PLUGINS_ENV, "late_backend_i28")
        assert backend_class("late://bucket/store").__name__ == "LateBackend"
    finally:
        for registry in (TRACKERS, BACKENDS):
            if "late" in registry:
                registry.unregister("late")
        for module in ("late_tracker_i28", "late_backend_i28"):
            sys.modules.pop(module, None)
