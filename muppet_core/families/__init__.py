"""Task families: one module per family owns its record type, encoding, collation, head, forward
pass, loss with n(i), R3F divergence and prediction (see ``base.Family``); everything else asks
this registry for the family a catalog entry names.

The registry is filled here, explicitly, with lazy ``"module:attr"`` targets: naming a family
imports nothing until it is used. ``register_family`` adds a family object built elsewhere (a
plugin's, or a test's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from muppet_core.registry import Registry

if TYPE_CHECKING:
    from muppet_core.families.base import Family

FAMILIES = Registry("family")
FAMILIES.register("classification", "muppet_core.families.classification:FAMILY")
FAMILIES.register("regression", "muppet_core.families.regression:FAMILY")
FAMILIES.register("multiple_choice", "muppet_core.families.multiple_choice:FAMILY")
FAMILIES.register("span", "muppet_core.families.span:FAMILY")
FAMILIES.register("summarization", "muppet_core.families.summarization:FAMILY")


def get_family(name: str) -> Family:
    """The family registered as ``name``.

    Raises:
        KeyError: no family has that name (the message suggests the closest one).
    """
    return FAMILIES.get(name)


def register_family(family: Family) -> Family:
    """Register ``family`` under its ``name``; returns it.

    Raises:
        ValueError: a family of that name is already registered.
    """
    FAMILIES.register_object(family.name, family)
    return family


def unregister_family(name: str) -> None:
    """Forget the family ``name`` (for a plugin or test that registered its own)."""
    FAMILIES.unregister(name)
