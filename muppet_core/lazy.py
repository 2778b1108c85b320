"""A module imported on first use.

The family modules name torch at their top but touch it only inside methods, so a catalog check,
``muppet validate`` or ``muppet tasks`` (which need a family's record type and checks, never a tensor)
does not pay torch's import, about 1.5 s a process.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for the module ``name``, importing it at the first attribute read.

    Args:
        name: the dotted module name, as ``import`` takes it.
    """

    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"
