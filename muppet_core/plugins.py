"""Plugins: modules of a user's own that register task families, metrics, readers or normalizers when
imported, in every process of a run.

A pipelines file names them (``plugins:``), or an installed package declares a ``muppet.plugins``
entry point. ``use_plugins`` imports the named ones here and hands them to the processes this one
starts (``PLUGINS_ENV``, with the pipelines file's folder on ``PYTHONPATH``); every process imports
them all before it reads the task catalog (``load_plugins``), the pre-finetuning and fine-tune
workers included. The source of a plugin module is part of the keys of the stages that use what it
registers (``muppet_core.artifacts.fingerprints.code_version`` over the owners' modules).
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import os
import sys

from muppet_core.errors import MuppetError, first_line

PLUGINS_ENV = "MUPPET_PLUGINS"
"""The plugin modules of this run, comma-separated: set by ``use_plugins``, inherited by the processes it starts."""
ENTRY_POINTS = "muppet.plugins"
"""The entry-point group through which an installed package names its plugin module."""


class PluginError(MuppetError):
    """A plugin module cannot be imported."""


@functools.cache
def _installed() -> tuple[str, ...]:
    return tuple(ep.value.partition(":")[0] for ep in importlib.metadata.entry_points(group=ENTRY_POINTS))


def plugin_modules() -> tuple[str, ...]:
    """The plugin modules of this process: installed packages' entry points, then ``PLUGINS_ENV``'s."""
    installed = _installed()
    named = [m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",") if m.strip()]
    return tuple(dict.fromkeys([*installed, *named]))


def load_plugins() -> None:
    """Import every plugin module (one this process imported already costs a lookup).

    Raises:
        PluginError: one cannot be imported, or exits while importing (its first line says why).
    """
    for module in plugin_modules():
        try:
            importlib.import_module(module)
        except (Exception, SystemExit) as exc:
            raise PluginError(f"plugin '{module}' cannot be imported: {type(exc).__name__}: {first_line(exc)}") from None


def use_plugins(modules: list[str], folder: str | None = None) -> None:
    """Import ``modules`` in this process and in the processes it starts; ``folder`` (the pipelines
    file's) joins the import path of both, so a module beside pipelines.yaml is found.

    Raises:
        PluginError: a module cannot be imported.
    """
    if folder:
        if folder not in sys.path:
            sys.path.insert(0, folder)
        paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        if folder not in paths:
            os.environ["PYTHONPATH"] = os.pathsep.join([folder, *paths])
    current = [m for m in os.environ.get(PLUGINS_ENV, "").split(",") if m]
    added = [m for m in modules if m not in current]
    if added:
        os.environ[PLUGINS_ENV] = ",".join([*current, *added])
    load_plugins()
