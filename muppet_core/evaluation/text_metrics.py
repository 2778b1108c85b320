"""Metrics over text: SQuAD's exact match and token F1, and ROUGE (rouge-score, stemmed, F-measure).

``rougeLsum`` is the summary-level LCS over sentences (rouge-score's, one sentence a line): the
texts are split into sentences first (see ``sentence_lines``), as summarization scripts do with
NLTK's Punkt, whose model is a download this project does without.

A reference is one string or a list of acceptable strings; each example scores its best match, and
a metric is the mean over examples.
"""

from __future__ import annotations

import functools
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from muppet_core.evaluation.metrics import TEXT, Metric

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD v1.1's answer normalisation: lowercase, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def answer_exact_match(prediction: str, gold: str) -> float:
    """1.0 where the normalised answers are equal."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def answer_f1(prediction: str, gold: str) -> float:
    """F1 of the normalised answers' bags of tokens (0 where they share none)."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def _golds(reference: str | Sequence[str]) -> list[str]:
    return [reference] if isinstance(reference, str) else list(reference)


def _best_mean(score: Callable[[str, str], float]) -> Callable[[Sequence, Sequence[str]], float]:
    def fn(references, predictions) -> float:
        if len(references) != len(predictions):
            raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
        return float(np.mean([max(score(p, g) for g in _golds(r)) for p, r in zip(predictions, references)]))

    return fn


@functools.cache
def _scorer(kind: str):
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer([kind], use_stemmer=True)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def sentence_lines(text: str) -> str:
    """``text`` one sentence a line: split at line breaks and after ``.``, ``!`` or ``?`` followed by space."""
    return "\n".join(s.strip() for s in _SENTENCE_END.split(text) if s.strip())


def rouge_f(kind: str, prediction: str, reference: str) -> float:
    """ROUGE ``kind`` (rouge1, rouge2, rougeL, rougeLsum) F-measure of one prediction against one reference."""
    if kind == "rougeLsum":
        prediction, reference = sentence_lines(prediction), sentence_lines(reference)
    return _scorer(kind).score(reference, prediction)[kind].fmeasure


def _rouge(kind: str) -> Metric:
    return Metric(kind, _best_mean(functools.partial(rouge_f, kind)), takes=TEXT)


exact_match = Metric("exact_match", _best_mean(answer_exact_match), takes=TEXT)
squad_f1 = Metric("squad_f1", _best_mean(answer_f1), takes=TEXT)
rouge1 = _rouge("rouge1")
rouge2 = _rouge("rouge2")
rougeL = _rouge("rougeL")
rougeLsum = _rouge("rougeLsum")
