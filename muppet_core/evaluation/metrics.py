"""The metrics registry: every metric a catalog entry names, each flagged higher_is_better.

Label metrics (this module) take arrays of class indices or real scores. Text metrics
(``muppet_core.evaluation.text_metrics``) take lists of strings, each reference either one string
or a list of acceptable strings (the best-matching one counts). Scores are fractions (0-1), or
correlations (-1 to 1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from muppet_core.registry import Registry

CLASSES, SCORES, TEXT = "classes", "scores", "text"
PREDICTIONS = {CLASSES: "class or choice indices", SCORES: "real-valued scores", TEXT: "text"}
"""What a family predicts and a metric takes (``Family.predicts``, ``Metric.takes``), in words."""


@dataclass(frozen=True)
class Metric:
    """A metric over (predictions, references); ``fn`` takes them the other way round, as sklearn does."""

    name: str
    fn: Callable[[Any, Any], float]
    higher_is_better: bool = True
    takes: str | None = None
    """What it scores (a key of ``PREDICTIONS``): the catalog refuses it for a family that predicts something else; None: any."""
    classes: int | None = None
    """The number of classes it needs (binary F1: 2), checked against a classification entry's labels; None: any."""

    def __call__(self, predictions: Any, references: Any) -> float:
        return float(self.fn(references, predictions))


def _correlation(statistic: Callable) -> Callable[[Any, Any], float]:
    def fn(references, predictions) -> float:
        references, predictions = np.asarray(references, dtype=float), np.asarray(predictions, dtype=float)
        if np.ptp(references) == 0 or np.ptp(predictions) == 0:
            return 0.0  # undefined (scipy says nan): a constant prediction carries no correlation
        return statistic(references, predictions)[0]

    return fn


def _sklearn(name: str, **kwargs) -> Callable[[Any, Any], float]:
    """sklearn.metrics' ``name`` with ``kwargs``, imported at the first call: naming a metric (the
    catalog check) costs no sklearn import."""

    def fn(references, predictions) -> float:
        from sklearn import metrics

        return getattr(metrics, name)(references, predictions, **kwargs)

    return fn


def _pearson(references, predictions) -> float:
    from scipy import stats

    return _correlation(stats.pearsonr)(references, predictions)


def _spearman(references, predictions) -> float:
    from scipy import stats

    return _correlation(stats.spearmanr)(references, predictions)


accuracy = Metric("accuracy", _sklearn("accuracy_score"), takes=CLASSES)
f1 = Metric("f1", _sklearn("f1_score", average="binary"), takes=CLASSES, classes=2)
f1_macro = Metric("f1_macro", _sklearn("f1_score", average="macro"), takes=CLASSES)
matthews = Metric("matthews", _sklearn("matthews_corrcoef"), takes=CLASSES)
pearson = Metric("pearson", _pearson, takes=SCORES)
spearman = Metric("spearman", _spearman, takes=SCORES)

METRICS = Registry("metric")
for _name in ("accuracy", "f1", "f1_macro", "matthews", "pearson", "spearman"):
    METRICS.register(_name, f"muppet_core.evaluation.metrics:{_name}")
for _name in ("exact_match", "squad_f1", "rouge1", "rouge2", "rougeL", "rougeLsum"):
    METRICS.register(_name, f"muppet_core.evaluation.text_metrics:{_name}")


def compute(names: list[str], predictions: Any, references: Any) -> dict[str, float]:
    """Every named metric over the predictions (arrays for labels, lists of strings for text)."""
    return {name: METRICS.get(name)(predictions, references) for name in names}
