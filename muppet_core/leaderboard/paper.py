"""The paper's reference numbers (data in ``paper.yaml``) and how a backbone is matched to them."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Literal

from pydantic import ValidationError, field_validator

from muppet_core.errors import ConfigError
from muppet_core.leaderboard.schema import Reference, Schema
from muppet_core.schema import describe_errors
from muppet_core.yamlfile import load_yaml

PAPER_FILE = Path(__file__).with_name("paper.yaml")


class PaperNumber(Schema):
    """One score the paper reports."""

    variant: Literal["base", "prefinetuned"]
    """``base``: the backbone as released; ``prefinetuned``: its Muppet version."""
    benchmark: str
    """Catalog name of the benchmark."""
    metric: str
    """The metric the number is in."""
    value: float
    """The score on the paper's 0-100 scale."""
    verified: bool
    """False for a recalled number that was not checked."""
    note: str | None = None
    """Caveats."""


class PaperFamily(Schema):
    """A backbone family of the paper and the numbers reported for it."""

    label: str
    """How the paper names the backbone."""
    match: str
    """Regular expression searched, case-insensitively, in a pipeline's backbone."""
    numbers: list[PaperNumber]
    """The reported scores."""

    @field_validator("match")
    @classmethod
    def _compiles(cls, value: str) -> str:
        re.compile(value)
        return value


class PaperReferences(Schema):
    """The whole ``paper.yaml``."""

    source: str
    """Citation of the numbers."""
    families: dict[str, PaperFamily]
    """Backbone families by name."""

    def family_of(self, backbone: str) -> str | None:
        """The family whose pattern the backbone matches (the first in file order), or None."""
        for name, family in self.families.items():
            if re.search(family.match, backbone, flags=re.IGNORECASE):
                return name
        return None

    def lookup(self, family: str, variant: str, benchmark: str, metric: str) -> Reference | None:
        """The paper's number for a cell, preferring one in our metric; None where it reports none."""
        numbers = [n for n in self.families[family].numbers if (n.variant, n.benchmark) == (variant, benchmark)]
        if not numbers:
            return None
        number = next((n for n in numbers if n.metric == metric), numbers[0])
        return Reference(
            value=number.value / 100, metric=number.metric, verified=number.verified,
            comparable=number.metric == metric, note=number.note,
        )


@functools.cache
def load_references(path: str | None = None) -> PaperReferences:
    """The paper's reference numbers, validated.

    Raises:
        ConfigError: the file is invalid, with the YAML path of each problem.
    """
    file = Path(path) if path else PAPER_FILE
    try:
        return PaperReferences.model_validate(load_yaml(file))
    except ValidationError as exc:
        raise ConfigError(describe_errors(PaperReferences, exc.errors()), file.name) from None
