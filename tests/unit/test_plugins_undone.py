"""The shared ``plugins_undone`` fixture (tests/conftest.py) undoes what loading a plugin leaves in a
test's process: the first test loads one as a pipelines file's ``plugins:`` do, the second (the next
in this file, on the same worker) finds none of it."""

from __future__ import annotations

import os
import sys

from muppet_core.families import FAMILIES
from muppet_core.plugins import PLUGINS_ENV, use_plugins
from tests.conftest import REPO

PLUGIN = "undone_plugin"
SEEN: dict[str, object] = {}


def test_a_plugin_loaded_in_the_test_registers_its_members(tmp_path, plugins_undone):
    source = (REPO / "tests" / "length_plugin.py").read_text()
    source += "\nfrom muppet_core.families import register_family\nregister_family(LengthBucketFamily())\n"
    (tmp_path / f"{PLUGIN}.py").write_text(source)
    SEEN.update(path=str(tmp_path), env=os.environ.get(PLUGINS_ENV), pythonpath=os.environ.get("PYTHONPATH"))
    use_plugins([PLUGIN], str(tmp_path))
    assert "length_bucket" in FAMILIES and PLUGIN in sys.modules and str(tmp_path) in sys.path
    assert PLUGIN in os.environ[PLUGINS_ENV].split(",")


def test_the_next_test_sees_nothing_of_it():
    assert SEEN, "run with the test before it"
    assert "length_bucket" not in FAMILIES and PLUGIN not in sys.modules
    assert SEEN["path"] not in sys.path and SEEN["path"] not in os.environ.get("PYTHONPATH", "")
    assert PLUGIN not in os.environ.get(PLUGINS_ENV, "")
