"""The multi-task model of a set of catalog entries: the backbone with the head each entry's family builds."""

from __future__ import annotations

from torch import nn

from muppet_core.families import get_family
from muppet_core.families.base import TaskEntry
from muppet_core.models.multitask import MultiTaskModel


def build_multitask_model(encoder: nn.Module, specs: list[TaskEntry], pooling: str = "mean") -> MultiTaskModel:
    """A model with the heads the given tasks train (shared heads created once), built in task order."""
    heads: dict[str, nn.Module] = {}
    shapes: dict[str, dict] = {}
    for spec in specs:
        family = get_family(spec.family)
        name = family.head_name(spec)
        if name not in shapes:
            shapes[name] = family.head_shape(spec)
            heads[name] = family.build_head(shapes[name], encoder)
    return MultiTaskModel(encoder, heads, shapes, pooling)
