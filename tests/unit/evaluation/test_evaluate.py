"""Evaluation of every task family on a tiny random BERT: batched, deterministic, metrics in range."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from muppet_core.families import get_family
from muppet_core.families.build import build_multitask_model
from muppet_core.families.classification import ClassificationRecord
from muppet_core.families.multiple_choice import MultipleChoiceRecord
from muppet_core.families.regression import RegressionRecord
from muppet_core.families.span import SpanRecord, best_spans
from muppet_core.families.summarization import SummarizationRecord
from muppet_core.models.backbone import load_encoder
from muppet_core.tasks.catalog import get_task
from muppet_core.training.evaluate import evaluate

TASKS = {"classification": "sst2", "regression": "stsb", "multiple_choice": "commonsenseqa", "span": "squad", "summarization": "xsum"}
CONTEXTS = [
    "The U.S. team won 1,000 medals in Paris, didn't it? Yes, said Dr. Smith on Monday.",
    "Marie Curie was born in Warsaw in 1867 and later moved to France to study physics.",
    "The river's source lies in the Black Forest; it flows east for 2,850 km to the sea.",
]
ANSWERS = ["1,000 medals", "Warsaw", "didn't it", "Marie Curie", "2,850 km", "the Black Forest"]


def _span_records() -> list[SpanRecord]:
    records = []
    for i, answer in enumerate(ANSWERS):
        context = next(c for c in CONTEXTS if answer in c)
        records.append(SpanRecord(f"question {i}?", context, answer, context.index(answer), id=str(i)))
    return records


def _records(family: str) -> list:
    if family == "classification":
        return [ClassificationRecord(" ".join(["good"] * (i % 5 + 1)) + f" {i}", None, i % 2) for i in range(12)]
    if family == "regression":
        return [RegressionRecord(f"a man plays {i}", "someone is playing " * (i % 3 + 1), i % 5 + 0.5) for i in range(12)]
    if family == "multiple_choice":
        return [MultipleChoiceRecord(f"question {i}?", ["yes", "no", "maybe"][: 2 + i % 2], i % 2) for i in range(10)]
    if family == "span":
        return _span_records()
    return [SummarizationRecord(f"the report says that number {i} rose sharply today in town", f"number {i} rose") for i in range(6)]


@pytest.fixture(scope="module")
def tiny(tiny_backbone):
    torch.manual_seed(0)
    encoder, tokenizer = load_encoder(tiny_backbone)
    return build_multitask_model(encoder, [get_task(t) for t in TASKS.values()]), tokenizer


@pytest.mark.parametrize("family", list(TASKS))
def test_every_family_gives_its_metrics_in_range_and_deterministically(tiny, family):
    model, tok = tiny
    spec = get_task(TASKS[family])
    features, dropped = get_family(family).encode(_records(family), tok, 64, max_target_length=16)
    assert dropped == 0
    head = get_family(family).head_name(spec)
    model.train()
    first = evaluate(model, head, spec, features, tok.pad_token_id, tokenizer=tok, batch_size=4, max_new_tokens=6)
    assert model.training  # the caller's mode is restored
    second = evaluate(model, head, spec, features, tok.pad_token_id, tokenizer=tok, batch_size=4, max_new_tokens=6)
    assert first == second
    regrouped = evaluate(model, head, spec, features, tok.pad_token_id, tokenizer=tok, batch_size=3, max_new_tokens=6)
    assert regrouped == pytest.approx(first, abs=1e-4)  # other batches, other padding: the same up to float noise
    assert list(first) == [spec.metric, *spec.secondary_metrics]
    low = -1.0 if family == "regression" or spec.metric == "matthews" else 0.0
    assert all(low <= v <= 1.0 for v in first.values()), first


def test_classification_keeps_the_signature_without_a_tokenizer(tiny):
    model, tok = tiny
    spec = get_task("sst2")
    features, _ = get_family("classification").encode(_records("classification"), tok, 64)
    assert set(evaluate(model, "sst2", spec, features, tok.pad_token_id)) == {"accuracy"}


def test_summarization_needs_the_tokenizer(tiny):
    model, tok = tiny
    features, _ = get_family("summarization").encode(_records("summarization"), tok, 64)
    with pytest.raises(ValueError, match="needs the tokenizer"):
        evaluate(model, "generation", get_task("xsum"), features, tok.pad_token_id)


def test_best_span_stays_in_the_context_ordered_and_short():
    allowed = torch.tensor([[False, False, True, True, True, True]])
    zeros = [0.0] * 6
    # the question tokens score highest, but only context tokens may be chosen
    assert best_spans(torch.tensor([[9.0, *zeros[1:]]]), torch.tensor([[9.0, *zeros[1:]]]), allowed).tolist() == [[2, 2]]
    # start 4 + end 2 would score 11, but an end before its start is not a span
    start, end = torch.tensor([[0.0, 0, 0, 0, 5, 0]]), torch.tensor([[0.0, 0, 6, 0, 0, 2]])
    assert best_spans(start, end, allowed).tolist() == [[4, 5]]
    # (2, 5) scores 10 but is 4 tokens long; at most 2 leaves the first of the tied 5s
    start, end = torch.tensor([[0.0, 0, 5, 0, 0, 0]]), torch.tensor([[0.0, 0, 0, 0, 0, 5]])
    assert best_spans(start, end, allowed, max_tokens=2).tolist() == [[2, 2]]
    assert best_spans(start, end, allowed, max_tokens=4).tolist() == [[2, 5]]
    assert best_spans(start, end, torch.zeros_like(allowed)).tolist() == [[0, 0]]


class _OracleSpan(nn.Module):
    """Start and end logits that peak at the gold tokens: evaluation must give back the answer text."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))

    def forward(self, head, family, batch):
        start = torch.zeros(batch["input_ids"].shape)
        end = torch.zeros(batch["input_ids"].shape)
        rows = torch.arange(len(start))
        start[rows, batch["labels"][:, 0]] = 10.0
        end[rows, batch["labels"][:, 1]] = 10.0
        return start, end


def test_span_answers_are_cut_from_the_context_at_the_token_offsets(tiny):
    _, tok = tiny
    features, _ = get_family("span").encode(_span_records(), tok, 64)
    assert get_family("span").predict(_OracleSpan(), "span", features, tok.pad_token_id, batch_size=4) == ANSWERS  # punctuation and case kept
    assert evaluate(_OracleSpan(), "span", get_task("squad"), features, tok.pad_token_id) == {"squad_f1": 1.0, "exact_match": 1.0}


def test_random_span_predictions_are_context_substrings(tiny):
    model, tok = tiny
    features, _ = get_family("span").encode(_span_records(), tok, 64)
    for feature, text in zip(features, get_family("span").predict(model, "span", features, tok.pad_token_id)):
        assert text and text in feature["context"]
        assert len(tok(text, add_special_tokens=False)["input_ids"]) <= 30


def test_cached_greedy_decoding_matches_recomputing_the_whole_prefix(tiny):
    model, tok = tiny
    model.eval()
    features, _ = get_family("summarization").encode(_records("summarization"), tok, 64)
    summarization = get_family("summarization")
    batch = summarization.collate(features, tok.pad_token_id)
    head = model.heads["generation"]
    with torch.no_grad():
        hidden = model.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        seq = torch.full((len(features), 1), tok.cls_token_id)
        for _ in range(5):
            logits = head(seq, torch.ones_like(seq), hidden, batch["attention_mask"])
            seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], 1)
    expected = seq[:, 1:].tolist()
    never = next(t for t in range(tok.vocab_size) if all(t not in row for row in expected))
    assert summarization.generate(model, "generation", batch, tok.cls_token_id, never, 5) == expected
    stop = expected[0][2]  # the first row stops before the first occurrence of its third token
    assert summarization.generate(model, "generation", batch, tok.cls_token_id, stop, 5)[0] == expected[0][: expected[0].index(stop)]
    model.train()
