"""SQuAD exact match and F1 with the usual normalisation, and ROUGE against rouge-score itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rouge_score import rouge_scorer

from muppet_core.evaluation.metrics import compute
from muppet_core.evaluation.text_metrics import answer_exact_match, answer_f1, normalize_answer, sentence_lines

ROUGE = ["rouge1", "rouge2", "rougeL"]


def test_squad_normalisation():
    assert normalize_answer("The Cat!") == "cat"
    assert normalize_answer("  An  apple,\ta PEAR. ") == "apple pear"
    assert normalize_answer("theatre and Anne") == "theatre and anne"  # articles only as whole words
    assert normalize_answer("U.S. $1,000") == "us 1000"
    assert answer_exact_match("The Cat!", "cat") == 1.0
    assert answer_exact_match("cats", "cat") == 0.0


def test_squad_f1_by_hand():
    # "quick brown fox" vs "quick red fox jumps": 2 shared tokens, P = 2/3, R = 2/4
    assert answer_f1("the quick brown fox", "a quick red fox jumps") == pytest.approx(2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2))
    assert answer_f1("x x y", "x y y") == pytest.approx(2 / 3)  # shared counts are clipped: one x, one y
    assert answer_f1("dog", "cat") == 0.0
    assert answer_f1("The", "cat") == 0.0  # nothing left after normalisation


def test_squad_metrics_take_the_best_gold_and_average():
    predictions = ["The Cat!", "the quick brown fox", "dog"]
    references = [["cat"], ["a quick red fox jumps", "brown fox"], "cat"]
    scores = compute(["exact_match", "squad_f1"], predictions, references)
    assert scores["exact_match"] == pytest.approx(1 / 3)
    assert scores["squad_f1"] == pytest.approx((1 + 2 * (2 / 3) * 1 / (2 / 3 + 1) + 0) / 3)  # "brown fox": P 2/3, R 1


def test_rouge_by_hand():
    scores = compute(ROUGE, ["the cat sat on the mat"], ["the cat is on the mat"])
    assert scores["rouge1"] == pytest.approx(5 / 6)  # the x2, cat, on, mat
    assert scores["rouge2"] == pytest.approx(3 / 5)  # "the cat", "on the", "the mat" of 5 bigrams each
    assert scores["rougeL"] == pytest.approx(5 / 6)  # LCS "the cat on the mat"
    # stemming: running -> run, dogs -> dog; prediction {run, dog} in reference {the, dog, run}: P 1, R 2/3
    assert compute(["rouge1"], ["running dogs"], ["the dog runs"])["rouge1"] == pytest.approx(0.8)
    assert compute(ROUGE, ["alpha beta"], ["gamma delta"]) == {k: 0.0 for k in ROUGE}


def test_rouge_matches_rouge_score_and_takes_the_best_reference():
    scorer = rouge_scorer.RougeScorer(ROUGE, use_stemmer=True)
    prediction, gold, other = "Police arrested two men on Friday.", "Two men were arrested by police.", "Sunny weather."
    direct = scorer.score(gold, prediction)
    assert compute(ROUGE, [prediction], [gold]) == pytest.approx({k: direct[k].fmeasure for k in ROUGE})
    best = scorer.score_multi([other, gold], prediction)
    assert compute(ROUGE, [prediction], [[other, gold]]) == pytest.approx({k: best[k].fmeasure for k in ROUGE})


def test_rouge_on_real_xsum_pairs_lead_1_vs_gold(mirror):
    rows = [json.loads(line) for line in Path(mirror, "xsum", "test.jsonl").read_text(encoding="utf-8").splitlines()[:25]]
    leads = [row["document"].strip().split("\n")[0] for row in rows]
    golds = [row["summary"] for row in rows]
    scorer = rouge_scorer.RougeScorer(ROUGE, use_stemmer=True)
    expected = {k: sum(scorer.score(g, p)[k].fmeasure for g, p in zip(golds, leads)) / len(rows) for k in ROUGE}
    scores = compute(ROUGE, leads, golds)
    assert scores == pytest.approx(expected, abs=1e-12)
    # lead-1 is a weak baseline on XSum (Narayan et al. 2018 report R1 16.3, R2 1.6, RL 12.0 for LEAD)
    assert 0 < scores["rouge2"] < scores["rougeL"] <= scores["rouge1"] and 0.05 < scores["rouge1"] < 0.4


def test_rouge_lsum_scores_sentences_apart():
    # The same two sentences in the other order: rougeLsum matches each reference sentence whole (1.0);
    # rougeL's one LCS over the whole text covers one sentence of each ("the dog ran": 3 of 6 tokens).
    scores = compute(["rougeL", "rougeLsum"], ["The dog ran. The cat sat."], ["The cat sat. The dog ran."])
    assert scores == pytest.approx({"rougeL": 0.5, "rougeLsum": 1.0})
    assert sentence_lines("One here. Two there!  Three?\nFour") == "One here.\nTwo there!\nThree?\nFour"


def test_rouge_lsum_matches_rouge_score_on_sentence_lines():
    scorer = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=True)
    prediction = "Police arrested two men on Friday. They were later released! Nobody was hurt."
    gold = "Two men were arrested by police. Both men were released on bail."
    direct = scorer.score(gold.replace(". ", ".\n"), prediction.replace(". ", ".\n").replace("! ", "!\n"))["rougeLsum"].fmeasure
    assert 0 < direct < 1
    assert compute(["rougeLsum"], [prediction], [gold])["rougeLsum"] == pytest.approx(direct)
    one_line = scorer.score(gold, prediction)["rougeLsum"].fmeasure  # without the split, rougeLsum is rougeL
    assert one_line != pytest.approx(direct)
