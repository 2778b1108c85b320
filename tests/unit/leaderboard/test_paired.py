"""The paired test over seeds x benchmarks, checked against an independent computation on known numbers:
the exact signed-rank distribution by enumerating every sign assignment, and the t-test's p-value by
integrating Student's t density."""

from __future__ import annotations

import itertools
import math

import pytest

from muppet_core.evaluation.results import CONTROL_VARIANT
from muppet_core.leaderboard.aggregate import SELECTIONS
from muppet_core.leaderboard.paired import paired_scores, paired_tests
from muppet_core.leaderboard.render import to_markdown
from tests.unit.leaderboard.conftest import make_record

BASE = {"rte": [0.520, 0.545, 0.498, 0.531, 0.507], "cb": [0.661, 0.643, 0.679, 0.625, 0.696], "copa": [0.55, 0.60]}
DIFF = {"rte": [0.031, -0.012, 0.054, 0.007, 0.022], "cb": [-0.003, 0.046, 0.018, 0.065, -0.027], "copa": [0.0, 0.04]}
"""Pre-finetuned minus base per seed: distinct magnitudes, one zero (COPA seed 0)."""


def records(with_control: bool = False):
    out = []
    for b, scores in BASE.items():
        for seed, (s, d) in enumerate(zip(scores, DIFF[b])):
            out += [make_record("base", b, seed, s), make_record("prefinetuned", b, seed, s + d)]
            if with_control:
                out.append(make_record(CONTROL_VARIANT, b, seed, s + d / 2))
    out.append(make_record("prefinetuned", "rte", 9, 0.6))  # a seed without its base run pairs with nothing
    out.append(make_record("base", "cb", 8, None))  # nor does a failed run
    return out


def exact_signed_rank(diffs: list[float]) -> tuple[float, float]:
    """min(W+, W-) over the non-zero differences and its exact two-sided p-value, by enumerating all 2^n signs."""
    nonzero = [d for d in diffs if d != 0]
    ranks = {d: r for r, d in enumerate(sorted(nonzero, key=abs), 1)}
    w_plus = sum(ranks[d] for d in nonzero if d > 0)
    w_minus = sum(ranks[d] for d in nonzero if d < 0)
    observed = min(w_plus, w_minus)
    n = len(nonzero)
    sums = [sum(r for r, sign in zip(range(1, n + 1), signs) if sign) for signs in itertools.product((0, 1), repeat=n)]
    p = 2 * sum(s <= observed for s in sums) / len(sums)
    return observed, min(p, 1.0)


def t_two_sided(diffs: list[float]) -> tuple[float, float]:
    """The paired t statistic by its formula and its two-sided p-value by Simpson's rule over Student's t density."""
    n = len(diffs)
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    t = mean / (sd / math.sqrt(n))
    df = n - 1
    c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    density = lambda x: c * (1 + x * x / df) ** (-(df + 1) / 2)  # noqa: E731
    lo, hi, steps = abs(t), 400.0, 400_000
    h = (hi - lo) / steps
    tail = h / 3 * (density(lo) + density(hi) + sum((4 if i % 2 else 2) * density(lo + i * h) for i in range(1, steps)))
    return t, 2 * tail


def test_pairs_are_benchmark_and_seed_with_both_variants_finished():
    pairs = paired_scores(records(), list(BASE), "prefinetuned", "base", SELECTIONS["mean"])
    assert [(b, s) for b, s, _, _ in pairs] == [(b, s) for b in BASE for s in range(len(BASE[b]))]
    assert all(math.isclose(a - b, DIFF[bench][seed], abs_tol=1e-12) for bench, seed, a, b in pairs)


def test_wilcoxon_and_paired_t_match_an_independent_computation():
    (test,) = [t for t in paired_tests(records(), list(BASE), SELECTIONS["mean"]) if t.variant == "prefinetuned"]
    diffs = [d for b in BASE for d in DIFF[b]]
    assert (test.backbone, test.against, test.benchmarks, test.pairs) == ("minilm", "base", ["rte", "cb", "copa"], 12)
    assert (test.wins, test.losses) == (8, 3)
    assert math.isclose(test.mean_difference, sum(diffs) / len(diffs), abs_tol=1e-12)
    w, p = exact_signed_rank(diffs)
    assert (w, round(p, 6)) == (10, 0.041992)  # by hand: W- = 1 + 3 + 6 over 11 non-zero pairs; W+ <= 10 in 43 of 2048 sign sets
    assert test.wilcoxon_statistic == w and math.isclose(test.wilcoxon_p, p, rel_tol=1e-9)
    t, p_t = t_two_sided(diffs)
    assert math.isclose(test.t_statistic, t, rel_tol=1e-9) and math.isclose(test.t_p, p_t, rel_tol=1e-6)


def test_the_control_is_tested_against_base_and_the_pre_finetuned_variant(tmp_path):
    from muppet_core.leaderboard.aggregate import aggregate

    tests = paired_tests(records(with_control=True), list(BASE), SELECTIONS["mean"])
    assert [(t.variant, t.against) for t in tests] == [("prefinetuned", "base"), (CONTROL_VARIANT, "base"), ("prefinetuned", CONTROL_VARIANT)]
    halves = tests[1]
    assert math.isclose(halves.mean_difference, tests[0].mean_difference / 2, abs_tol=1e-12)
    board = aggregate(records(with_control=True), list(BASE), "p", "mean")
    assert [r.model for r in board.deltas] == ["minilm / prefinetuned - base", f"minilm / {CONTROL_VARIANT} - base"]
    board.paired_tests = tests
    assert board.only("minilm").paired_tests == tests
    text = to_markdown(board)
    assert "### Paired tests over seeds × benchmarks" in text and "| minilm / prefinetuned vs base | 12 | rte, cb, copa |" in text


def test_each_backbone_is_tested_on_its_own_runs():
    from muppet_core.leaderboard.aggregate import aggregate

    other = [r.model_copy(update={"backbone": "other", "variant_key": f"other-{r.variant}"}) for r in records() if r.benchmark == "rte"]
    board = aggregate(records() + other, list(BASE), "p", "mean")
    board.paired_tests = paired_tests(records() + other, list(BASE), SELECTIONS["mean"])
    assert [(t.backbone, t.pairs) for t in board.paired_tests] == [("minilm", 12), ("other", 5)]
    assert [(t.backbone, t.pairs) for t in board.only("other").paired_tests] == [("other", 5)]


@pytest.mark.parametrize("diffs", [[0.0, 0.0, 0.0], [0.02]])
def test_too_few_differing_pairs_give_no_statistic(diffs):
    recs = [r for seed, d in enumerate(diffs) for r in (make_record("base", "rte", seed, 0.5), make_record("prefinetuned", "rte", seed, 0.5 + d))]
    (test,) = paired_tests(recs, ["rte"], SELECTIONS["median"])
    assert test.pairs == len(diffs) and test.wilcoxon_statistic is None and test.t_statistic is None
