"""Sentence-pair regression (STS-B): classification's encoding and head with one real-valued output."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from muppet_core.families.classification import ClassificationFamily
from muppet_core.lazy import LazyModule

if TYPE_CHECKING:
    from muppet_core.tasks.catalog import TaskSpec

torch = LazyModule("torch")
F = LazyModule("torch.nn.functional")


@dataclass(frozen=True)
class RegressionRecord:
    """A sentence pair with a real-valued score (STS-B)."""

    text_a: str
    text_b: str | None
    label: float
    id: str = ""


class RegressionFamily(ClassificationFamily):
    """Mean squared error of a one-output head; the loss is not scaled (no n(i)); the prediction
    is the head's output."""

    name = "regression"
    record_type = RegressionRecord
    prediction_dtype = np.float64
    label_type = float
    label_dtype = "float"

    def spec_problem(self, spec: TaskSpec) -> str | None:
        """Nothing beyond the common fields."""
        return None

    def record_problem(self, record: RegressionRecord, spec: TaskSpec) -> str | None:
        """A score that is not a finite number."""
        return None if math.isfinite(record.label) else "score is not a finite number"

    def head_shape(self, spec: TaskSpec) -> dict:
        """A classification head with one output, the score."""
        return {"kind": "classification", "outputs": 1}

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean squared error of the [B, 1] outputs."""
        return F.mse_loss(logits.squeeze(-1), labels.float())

    def loss_n(self, spec: TaskSpec, max_length: int, vocab_size: int | None = None) -> int | None:
        """None: a regression loss is not scaled."""
        return None

    def loss_n_rule(self, spec: TaskSpec) -> int | str | None:
        """None: a regression loss is not scaled."""
        return None

    def divergence(self, logits: torch.Tensor, noisy_logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean squared difference of the noisy and clean scores."""
        return F.mse_loss(noisy_logits, logits)

    def decide(self, logits: torch.Tensor) -> torch.Tensor:
        """The head's one output, as the predicted score."""
        return logits[:, 0].float()


FAMILY = RegressionFamily()
