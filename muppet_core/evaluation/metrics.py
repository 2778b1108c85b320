"""The metrics registry: each metric is a scikit-learn (or scipy) call, flagged higher_is_better."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm

from muppet_core.registry import Registry


@dataclass(frozen=True)
class Metric:
    """A metric over (predictions, references)."""

    name: str
    fn: object
    higher_is_better: bool = True

    def __call__(self, predictions: np.ndarray, references: np.ndarray) -> float:
        return float(self.fn(references, predictions))


accuracy = Metric("accuracy", skm.accuracy_score)
f1 = Metric("f1", lambda y, p: skm.f1_score(y, p, average="binary"))
f1_macro = Metric("f1_macro", lambda y, p: skm.f1_score(y, p, average="macro"))
matthews = Metric("matthews", skm.matthews_corrcoef)

METRICS = Registry("metric")
for _name in ("accuracy", "f1", "f1_macro", "matthews"):
    METRICS.register(_name, f"muppet_core.evaluation.metrics:{_name}")


def compute(names: list[str], predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
    """Every named metric over the predictions."""
    return {name: METRICS.get(name)(predictions, references) for name in names}
