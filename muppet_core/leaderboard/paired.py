"""Paired tests over seeds x benchmarks: is one backbone variant better than another run by run?

Each pair is one benchmark and one seed on which both variants finished (each at its best learning
rate, as its table cell chose it); the difference is in the benchmark's main metric. The Wilcoxon
signed-rank test drops zero differences (scipy's ``zero_method="wilcox"``); the paired t-test keeps
every pair. Both are two-sided. The benchmarks' metrics differ (accuracy, Pearson, ...), so the
t-test's mean mixes scales; the signed-rank test uses only the differences' ranks and signs.
"""

from __future__ import annotations

import math

import numpy as np

from muppet_core.evaluation.results import CONTROL_VARIANT, ResultRecord
from muppet_core.leaderboard.aggregate import Selection, at_best_learning_rate
from muppet_core.leaderboard.schema import PairedTest

COMPARISONS = [("prefinetuned", "base"), (CONTROL_VARIANT, "base"), ("prefinetuned", CONTROL_VARIANT)]
"""(variant, against) pairs tested wherever both variants have runs."""


def paired_scores(records: list[ResultRecord], benchmarks: list[str], variant: str, against: str, selection: Selection) -> list[tuple[str, int, float, float]]:
    """(benchmark, seed, score of ``variant``, score of ``against``) for every benchmark and seed
    both finished, each variant's runs taken at its chosen learning rate."""
    out = []
    for benchmark in benchmarks:
        chosen = {}
        for name in (variant, against):
            runs, _ = at_best_learning_rate([r for r in records if r.variant == name and r.benchmark == benchmark], selection)
            chosen[name] = {r.seed: r.score for r in runs}
        out += [(benchmark, seed, chosen[variant][seed], chosen[against][seed]) for seed in sorted(set(chosen[variant]) & set(chosen[against]))]
    return out


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def paired_test(
    records: list[ResultRecord], benchmarks: list[str], variant: str, against: str, selection: Selection, backbone: str
) -> PairedTest | None:
    """The paired test of ``variant`` against ``against`` over seeds x benchmarks; None without any pair."""
    from scipy import stats

    pairs = paired_scores(records, benchmarks, variant, against, selection)
    if not pairs:
        return None
    a = np.array([p[2] for p in pairs], dtype=float)
    b = np.array([p[3] for p in pairs], dtype=float)
    diff = a - b
    test = PairedTest(
        backbone=backbone, variant=variant, against=against, benchmarks=list(dict.fromkeys(p[0] for p in pairs)),
        pairs=len(pairs), mean_difference=float(diff.mean()), wins=int((diff > 0).sum()), losses=int((diff < 0).sum()),
    )
    if (diff != 0).sum() >= 2:
        w = stats.wilcoxon(a, b, zero_method="wilcox", alternative="two-sided")
        test.wilcoxon_statistic, test.wilcoxon_p = _finite(w.statistic), _finite(w.pvalue)
    if len(pairs) >= 2 and diff.std() > 0:
        t = stats.ttest_rel(a, b, alternative="two-sided")
        test.t_statistic, test.t_p = _finite(t.statistic), _finite(t.pvalue)
    return test


def paired_tests(records: list[ResultRecord], benchmarks: list[str], selection: Selection) -> list[PairedTest]:
    """Every comparison of ``COMPARISONS`` for every backbone that has both variants (experiments left out)."""
    main = [r for r in records if r.experiment is None]
    out = []
    for backbone in dict.fromkeys(r.backbone or "backbone" for r in main):
        mine = [r for r in main if (r.backbone or "backbone") == backbone]
        for variant, against in COMPARISONS:
            if (test := paired_test(mine, benchmarks, variant, against, selection, backbone)) is not None:
                out.append(test)
    return out
