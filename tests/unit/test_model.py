"""Encoding, collation, the multi-task model and its losses, on a tiny random BERT."""

from __future__ import annotations

import math

import pytest
import torch

from muppet_core.config import Optimization
from muppet_core.families import get_family
from muppet_core.families.build import build_multitask_model
from muppet_core.families.classification import ClassificationRecord
from muppet_core.families.multiple_choice import RANKING_HEAD, MultipleChoiceRecord
from muppet_core.families.span import SPAN_HEAD, SpanRecord
from muppet_core.models.backbone import load_encoder
from muppet_core.tasks.catalog import get_task
from muppet_core.training.loop import TaskStream, train
from muppet_core.training.settings import LoopSettings


@pytest.fixture(scope="module")
def tiny(tiny_backbone):
    torch.manual_seed(0)
    encoder, tokenizer = load_encoder(tiny_backbone)
    specs = [get_task(t) for t in ("sst2", "rte", "commonsenseqa", "arc_easy", "squad")]
    return build_multitask_model(encoder, specs), tokenizer


def test_heads_are_per_dataset_for_classification_and_shared_otherwise(tiny):
    model, _ = tiny
    assert set(model.heads) == {"sst2", "rte", RANKING_HEAD, SPAN_HEAD}
    mc = get_family("multiple_choice")
    assert mc.head_name(get_task("commonsenseqa")) == mc.head_name(get_task("arc_easy")) == RANKING_HEAD


def test_loss_scale_is_one_over_log_n():
    assert get_task("sst2").loss_scale(128) == pytest.approx(1 / math.log(2))
    assert get_task("trec").loss_scale(128) == pytest.approx(1 / math.log(6))
    assert get_task("commonsenseqa").loss_scale(128) == pytest.approx(1 / math.log(5))
    assert get_task("squad").loss_scale(256) == pytest.approx(1 / math.log(256))


def test_dynamic_padding_and_every_family_forward(tiny):
    model, tok = tiny
    pad = tok.pad_token_id
    classification, multiple_choice, span_family = get_family("classification"), get_family("multiple_choice"), get_family("span")
    cls, _ = classification.encode([ClassificationRecord("a b", None, 0), ClassificationRecord("a b c d e f", None, 1)], tok, 64)
    batch = classification.collate(cls, pad)
    assert batch["input_ids"].shape == (2, len(cls[1]["input_ids"]))  # padded to the longest, not to 64
    assert model("sst2", classification, batch).shape == (2, 2)

    mc_records = [MultipleChoiceRecord("q?", ["a", "b", "c"], 2), MultipleChoiceRecord("q2?", ["a", "b", "c", "d"], 0)]
    mc, _ = multiple_choice.encode(mc_records, tok, 64)
    batch = multiple_choice.collate(mc, pad)
    scores = model(RANKING_HEAD, multiple_choice, batch)
    assert scores.shape == (2, 4) and torch.isinf(scores[0, 3]) and torch.isfinite(scores[1]).all()
    assert torch.isfinite(multiple_choice.loss(scores, batch["labels"]))

    context = "The cat sat on the mat near the door."
    span, dropped = span_family.encode([SpanRecord("Where?", context, "the mat", context.index("the mat"))], tok, 64)
    assert dropped == 0
    ids = span[0]["input_ids"][span[0]["labels"][0] : span[0]["labels"][1] + 1]
    assert tok.decode(ids) == "the mat"
    start, end = model(SPAN_HEAD, span_family, span_family.collate(span, pad))
    assert start.shape == end.shape == (1, len(span[0]["input_ids"]))


def test_span_answers_beyond_the_first_window_are_found_in_a_later_one(tiny):
    _, tok = tiny
    context = "word " * 200 + "answer here."
    features, dropped = get_family("span").encode([SpanRecord("q?", context, "answer", context.index("answer"))], tok, 32)
    assert dropped == 0 and len(features) > 5 and {f["example"] for f in features} == {0}
    labelled = [f for f in features if f["labels"] != [0, 0]]
    assert labelled and all(tok.decode(f["input_ids"][f["labels"][0] : f["labels"][1] + 1]) == "answer" for f in labelled)


def test_training_reduces_loss_and_heads_round_trip(tiny, tiny_backbone, tmp_path):
    model, tok = tiny
    records = [ClassificationRecord(f"good {i}" if i % 2 else f"bad {i}", None, i % 2) for i in range(32)]
    classification = get_family("classification")
    features, _ = classification.encode(records, tok, 32)
    settings = LoopSettings(Optimization(warmup_ratio=0.0, weight_decay=0.0), steps=30, tasks_per_step=1, micro_batch_size=16, learning_rate=1e-2, seed=0)
    summary = train(model, {"sst2": TaskStream(classification, "sst2", features, 1.0)}, settings, tok.pad_token_id)
    assert summary["examples_seen"] == 30 * 16
    assert summary["final_loss"] < 0.5

    model.save(tmp_path, tok)
    encoder, _ = load_encoder(str(tmp_path / "encoder"))
    fresh = build_multitask_model(encoder, [get_task("sst2")])
    assert fresh.load_heads(tmp_path) == ["sst2"]
    batch = classification.collate(features[:4], tok.pad_token_id)
    model.eval(), fresh.eval()
    assert torch.allclose(model("sst2", classification, batch), fresh("sst2", classification, batch), atol=1e-5)


def test_summarization_decoder_is_warm_started_and_trains(tiny_backbone, tmp_path):
    from muppet_core.families.summarization import SummarizationRecord

    torch.manual_seed(0)
    encoder, tok = load_encoder(tiny_backbone)
    model = build_multitask_model(encoder, [get_task("xsum"), get_task("aeslc"), get_task("sst2")])
    assert set(model.heads) == {"generation", "sst2"}  # one decoder shared by every summarization task
    decoder_base = model.heads["generation"].decoder.bert
    assert torch.equal(decoder_base.embeddings.word_embeddings.weight, encoder.embeddings.word_embeddings.weight)
    records = [SummarizationRecord(f"the report says number {i} rose sharply today", f"number {i} rose") for i in range(8)]
    summarization = get_family("summarization")
    features, _ = summarization.encode(records, tok, 32, max_target_length=8)
    assert features[0]["decoder_input_ids"][0] == tok.cls_token_id and features[0]["labels"][-1] == tok.sep_token_id
    batch = summarization.collate(features, tok.pad_token_id)
    logits = model("generation", summarization, batch)
    assert logits.shape == (*batch["labels"].shape, tok.vocab_size)
    assert get_task("xsum").loss_scale(128, tok.vocab_size) == pytest.approx(1 / math.log(tok.vocab_size))
    settings = LoopSettings(Optimization(warmup_ratio=0.0, weight_decay=0.0), steps=40, tasks_per_step=1, micro_batch_size=8, learning_rate=5e-3)
    summary = train(model, {"xsum": TaskStream(summarization, "generation", features, 1.0)}, settings, tok.pad_token_id)
    first, last = summary["history"][0]["loss"], summary["history"][-1]["loss"]
    assert last < first * 0.7
    model.save(tmp_path, tok)
    fresh = build_multitask_model(load_encoder(str(tmp_path / "encoder"))[0], [get_task("xsum")])
    assert fresh.load_heads(tmp_path) == ["generation"]


def test_loss_scaling_per_family():
    assert get_task("stsb").loss_scale(128) == 1.0  # regression: no n(i)
    assert get_task("stsb").loss_n_rule() is None
    assert get_task("squad").loss_n_rule() == "sequence length"
    assert get_task("xsum").loss_n_rule() == "vocabulary size"
    assert get_task("cb").loss_n_rule() == 3 and get_task("hellaswag").loss_n_rule() == 4
