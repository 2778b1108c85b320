"""One small registry of lazily imported ``"module:attr"`` targets, with "did you mean" errors."""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable
from typing import Any

from muppet_core.errors import MuppetError

SAFE_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
"""A name that may become one component of a store path: letters, digits, '.', '_' and '-',
starting with a letter or digit (so never '.', '..', a hidden file or an option), no separator."""


def resolve(target: str) -> Any:
    """Import ``"package.module:attr"`` and return the attribute."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"'{target}' is not of the form 'module:attr'")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"module '{module_name}' has no attribute '{attr}'") from None


def safe_name(kind: str, value: str) -> str:
    """``value`` if it is a safe name (see ``SAFE_NAME``); the one check made wherever a pipeline,
    task, split or backbone name becomes part of a path in the store or on disk.

    Raises:
        MuppetError: the name is empty, has a path separator, is '.' or '..', or has other characters.
    """
    if not isinstance(value, str) or not re.fullmatch(SAFE_NAME, value):
        raise MuppetError(
            f"unsafe {kind} name {repr(value)[:80]}: a name is 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (no '/', no '..')"
        )
    return value


def did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    """A ' (did you mean 'x'?)' suffix for an unknown name, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Registry:
    """Named lazy targets, filled explicitly by the module that owns the registry.

    Args:
        kind: what the registry holds, used in error messages ("reader", "metric").
        on_miss: called when ``known`` is asked for a name not registered, before it answers; for a
            registry whose members a run's plugins may register, ``plugins.load_plugins`` (importing
            a plugin registers its members).
    """

    def __init__(self, kind: str, on_miss: Callable[[], None] | None = None):
        self.kind = kind
        self._targets: dict[str, str] = {}
        self._loaded: dict[str, Any] = {}
        self._on_miss = on_miss

    def register(self, name: str, target: str) -> None:
        """Register ``name`` for the ``"module:attr"`` ``target``."""
        if name in self._targets and self._targets[name] != target:
            raise ValueError(f"{self.kind} '{name}' is already registered as {self._targets[name]}")
        self._targets[name] = target

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._targets)

    def __contains__(self, name: str) -> bool:
        return name in self._targets

    def known(self, name: str) -> bool:
        """Whether ``name`` is registered, ``on_miss`` called first when it is not yet."""
        if name not in self._targets and self._on_miss is not None:
            self._on_miss()
        return name in self._targets

    def get(self, name: str) -> Any:
        """The object behind ``name``, imported on first use."""
        if name not in self._targets:
            raise KeyError(f"unknown {self.kind} '{name}'{did_you_mean(name, self.names())}")
        if name not in self._loaded:
            self._loaded[name] = resolve(self._targets[name])
        return self._loaded[name]

    def register_object(self, name: str, obj: Any) -> None:
        """Register an object already built under ``name`` (a plugin's, or one a test defines).

        Raises:
            ValueError: ``name`` is already registered.
        """
        if name in self._targets:
            raise ValueError(f"{self.kind} '{name}' is already registered as {self._targets[name]}")
        owner = obj if hasattr(obj, "__qualname__") else type(obj)  # a function or class, or an instance of one
        self._targets[name] = f"{owner.__module__}:{owner.__qualname__}" + ("" if owner is obj else " object")
        self._loaded[name] = obj

    def module_of(self, name: str) -> str:
        """The module that defines what ``name`` stands for (its source is part of the keys of the stages that use it)."""
        if name not in self._targets:
            raise KeyError(f"unknown {self.kind} '{name}'{did_you_mean(name, self.names())}")
        return self._targets[name].partition(":")[0]

    def unregister(self, name: str) -> None:
        """Forget ``name`` (a plugin or test taking back its own registration); unknown names are ignored."""
        self._targets.pop(name, None)
        self._loaded.pop(name, None)
