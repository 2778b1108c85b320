"""Sentence-pair regression (STS-B): classification's encoding and head with one real-valued output."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from muppet_core.evaluation.metrics import SCORES
from muppet_core.families.classification import ClassificationFamily
from muppet_core.lazy import LazyModule

torch = LazyModule("torch")
F = LazyModule("torch.nn.functional")


@dataclass(frozen=True)
class RegressionRecord:
    """A sentence pair with a real-valued score (STS-B)."""

    text_a: str
    text_b: str | None
    label: float
    id: str = ""


@dataclass(frozen=True)
class RegressionFamily(ClassificationFamily):
    """Mean squared error of a one-output head; the loss is not scaled (no n(i)).

    As in fairseq's STS-B recipe, the model trains on scores rescaled from the task's
    ``label_range`` to [0, 1], and its predictions are mapped back to the original scale, where
    they are scored. ``for_task`` binds the range of one task.
    """

    low: float = 0.0
    high: float = 1.0

    name = "regression"
    record_type = RegressionRecord
    prediction_dtype = np.float64
    predicts = SCORES
    label_type = float
    label_dtype = "float"

    def spec_problem(self, spec: TaskEntry) -> str | None:
        """Regression entries need the range of their scores."""
        if not spec.label_range or spec.label_range[0] >= spec.label_range[1]:
            return "regression tasks need 'label_range: [low, high]' with low < high"
        return None

    def for_task(self, spec: TaskEntry) -> RegressionFamily:
        """The family with the task's ``label_range``."""
        low, high = spec.label_range
        return dataclasses.replace(self, low=float(low), high=float(high))

    def encode(self, records: list[Any], tokenizer, max_length: int, max_target_length: int = 64) -> tuple[list[dict[str, Any]], int]:
        """Classification's features with the score rescaled to [0, 1] in ``labels`` (the original in ``score``)."""
        features, dropped = super().encode(records, tokenizer, max_length, max_target_length)
        for f in features:
            f["score"] = f["labels"]
            f["labels"] = (f["labels"] - self.low) / (self.high - self.low)
        return features, dropped

    def record_problem(self, record: RegressionRecord, spec: TaskEntry) -> str | None:
        """A score that is not a finite number, or lies outside the entry's ``label_range``."""
        if not math.isfinite(record.label):
            return "score is not a finite number"
        low, high = spec.label_range
        return None if low <= record.label <= high else f"score {record.label:g} outside label_range [{low:g}, {high:g}]"

    def head_shape(self, spec: TaskEntry) -> dict:
        """A classification head with one output, the score."""
        return {"kind": "classification", "outputs": 1}

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean squared error of the [B, 1] outputs."""
        return F.mse_loss(logits.squeeze(-1), labels.float())

    def loss_n(self, spec: TaskEntry, max_length: int, vocab_size: int | None = None) -> int | None:
        """None: a regression loss is not scaled."""
        return None

    def loss_n_rule(self, spec: TaskEntry) -> int | str | None:
        """None: a regression loss is not scaled."""
        return None

    def divergence(self, logits: torch.Tensor, noisy_logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean squared difference of the noisy and clean scores."""
        return F.mse_loss(noisy_logits, logits)

    def decide(self, logits: torch.Tensor) -> torch.Tensor:
        """The head's one output mapped back to the task's scale, as the predicted score."""
        return self.low + logits[:, 0].float() * (self.high - self.low)

    def references(self, features: list[dict[str, Any]]) -> Any:
        """The original scores."""
        return np.array([f["score"] for f in features], dtype=np.float64)


FAMILY = RegressionFamily()
