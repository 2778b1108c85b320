"""Label metrics on hand-computed cases, and every catalog metric resolving in the registry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from muppet_core.evaluation.metrics import METRICS, Metric, compute
from muppet_core.tasks.catalog import load_catalog

REFS = np.array([0, 1, 1, 0])
PREDS = np.array([0, 1, 0, 0])  # TP=1 TN=2 FP=0 FN=1


def test_classification_metrics_by_hand():
    scores = compute(["accuracy", "f1", "f1_macro", "matthews"], PREDS, REFS)
    assert scores["accuracy"] == pytest.approx(3 / 4)
    assert scores["f1"] == pytest.approx(2 / 3)  # precision 1, recall 1/2
    assert scores["f1_macro"] == pytest.approx((4 / 5 + 2 / 3) / 2)  # class 0: P 2/3, R 1
    assert scores["matthews"] == pytest.approx((1 * 2 - 0 * 1) / math.sqrt(1 * 2 * 2 * 3))


def test_correlations_by_hand():
    assert compute(["pearson"], [1.0, 3.0, 2.0], [1.0, 2.0, 3.0])["pearson"] == pytest.approx(0.5)  # cov 1, var 2 and 2
    assert compute(["spearman"], [1, 3, 2, 4], [1, 2, 3, 4])["spearman"] == pytest.approx(1 - 6 * 2 / (4 * 15))
    assert compute(["spearman"], [10.0, 20.0, 30.0, 1000.0], [1, 2, 3, 4])["spearman"] == pytest.approx(1.0)
    assert compute(["pearson"], [4, 3, 2, 1], [1, 2, 3, 4])["pearson"] == pytest.approx(-1.0)


def test_a_constant_prediction_has_zero_correlation_not_nan():
    assert compute(["pearson", "spearman"], [0.5, 0.5, 0.5], [1.0, 2.0, 3.0]) == {"pearson": 0.0, "spearman": 0.0}


def test_unknown_metric_suggests_the_near_name():
    with pytest.raises(KeyError, match="did you mean 'squad_f1'"):
        compute(["squad_f"], ["a"], ["a"])


def test_every_catalog_metric_is_registered_with_a_direction():
    catalog = load_catalog()
    named = {name for spec in catalog.values() for name in (spec.metric, *spec.secondary_metrics)}
    missing = {
        f"{spec.name}: {name}" for spec in catalog.values() for name in (spec.metric, *spec.secondary_metrics) if name not in METRICS
    }
    assert not missing, f"catalog metrics missing from the registry: {sorted(missing)}"
    for name in named:
        metric = METRICS.get(name)
        assert isinstance(metric, Metric) and metric.name == name
        assert isinstance(metric.higher_is_better, bool) and metric.higher_is_better
    assert catalog["squad"].metric == "squad_f1" and catalog["squad"].secondary_metrics == ["exact_match"]
    assert {spec.metric for spec in catalog.values() if spec.family == "span"} == {"squad_f1"}
