"""Each family's head and loss against an independent implementation, on a real batch of its data.

The project's multi-task model (``pooling: cls``) on a tiny random BERT is compared with Hugging Face's
own task models carrying the same weights. Our classification head (dense, tanh, projection over the
[CLS] vector) is BERT's pooler followed by its classifier, so ``head.dense`` maps onto
``bert.pooler.dense`` and ``head.out_proj`` onto ``classifier``; the span head's ``qa_outputs`` is
BERT's. Where the project differs by design (mean pooling, the 1/log n(i) loss scaling, choices padded to
the batch's most, the summarization decoder's label-smoothed loss), the reference is plain torch here.
Dropout sits before the dense layer in our head only: the comparison is in eval mode.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from transformers import (
    AutoConfig,
    AutoModelForMultipleChoice,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    EncoderDecoderConfig,
    EncoderDecoderModel,
)

from muppet_core.families import get_family
from muppet_core.families.base import IGNORE_INDEX
from muppet_core.families.build import build_multitask_model
from muppet_core.families.summarization import LABEL_SMOOTHING
from muppet_core.models.backbone import load_encoder
from muppet_core.models.inputs import TEXT_KEYS
from muppet_core.tasks.catalog import get_task, load_catalog

MAX_LENGTH = 64
TOLERANCE = {"atol": 1e-5, "rtol": 0}


@pytest.fixture(scope="module")
def tokenizer(tiny_backbone):
    return load_encoder(tiny_backbone)[1]


def _model(backbone: str, names: list[str], pooling: str = "cls"):
    """The multi-task model in eval mode, its heads drawn wide (N(0, 0.5)) so that logits differ clearly."""
    encoder, _ = load_encoder(backbone)
    torch.manual_seed(0)
    model = build_multitask_model(encoder, [get_task(n) for n in names], pooling).eval()
    with torch.no_grad():
        for p in model.heads.parameters():
            p.normal_(0, 0.5)
    return model


def _batch(name: str, records: list, tokenizer):
    spec = get_task(name)
    family = get_family(spec.family).for_task(spec)
    features, _ = family.encode(records, tokenizer, MAX_LENGTH)
    return spec, family, family.collate(features, tokenizer.pad_token_id)


def _inputs(batch: dict) -> dict:
    return {k: batch[k] for k in TEXT_KEYS if k in batch}


def _reference(auto_class, backbone: str, model, heads: dict[str, torch.Tensor], **config):
    """``auto_class`` on the backbone's config, with our encoder's weights and our head's under the given names."""
    reference = auto_class.from_config(AutoConfig.from_pretrained(backbone, **config)).eval()
    missing, unexpected = reference.bert.load_state_dict(model.encoder.state_dict(), strict=False)
    assert not missing and set(unexpected) <= {"pooler.dense.weight", "pooler.dense.bias"}
    state = reference.state_dict()
    assert set(heads) <= set(state), sorted(set(heads) - set(state))
    reference.load_state_dict({**state, **heads})
    return reference


def _pooler_and_classifier(head) -> dict[str, torch.Tensor]:
    return {
        "bert.pooler.dense.weight": head.dense.weight, "bert.pooler.dense.bias": head.dense.bias,
        "classifier.weight": head.out_proj.weight, "classifier.bias": head.out_proj.bias,
    }


@pytest.mark.parametrize("name", ["sst2", "cb"])  # one sentence, two classes; sentence pairs, three classes
def test_classification_matches_bert_for_sequence_classification(name, tiny_backbone, tokenizer, entry_splits):
    spec, family, batch = _batch(name, entry_splits(name)["validation"][:8], tokenizer)
    model = _model(tiny_backbone, [name])
    reference = _reference(AutoModelForSequenceClassification, tiny_backbone, model,
                           _pooler_and_classifier(model.heads[name]), num_labels=len(spec.labels))
    with torch.no_grad():
        logits = model(name, family, batch)
        expected = reference(**_inputs(batch), labels=batch["labels"])
    assert logits.shape == (8, len(spec.labels))
    torch.testing.assert_close(logits, expected.logits, **TOLERANCE)
    loss = family.loss(logits, batch["labels"])
    torch.testing.assert_close(loss, expected.loss, **TOLERANCE)
    # n(i) = the number of classes: the loss divided by its log
    scaled = family.scaled_loss(logits, batch["labels"], spec.loss_scale(MAX_LENGTH))
    torch.testing.assert_close(scaled, expected.loss / math.log(len(spec.labels)), **TOLERANCE)


def test_regression_matches_bert_for_sequence_classification_with_one_output(tiny_backbone, tokenizer, entry_splits):
    spec, family, batch = _batch("stsb", entry_splits("stsb")["validation"][:8], tokenizer)
    model = _model(tiny_backbone, ["stsb"])
    reference = _reference(AutoModelForSequenceClassification, tiny_backbone, model,
                           _pooler_and_classifier(model.heads["stsb"]), num_labels=1, problem_type="regression")
    with torch.no_grad():
        logits = model("stsb", family, batch)
        expected = reference(**_inputs(batch), labels=batch["labels"])
    torch.testing.assert_close(logits, expected.logits, **TOLERANCE)
    torch.testing.assert_close(family.loss(logits, batch["labels"]), expected.loss, **TOLERANCE)
    # no n(i): the loss is not scaled; the prediction is the output mapped back from [0, 1] to the task's scale
    low, high = spec.label_range
    assert spec.loss_scale(MAX_LENGTH) == 1.0
    torch.testing.assert_close(family.scaled_loss(logits, batch["labels"], 1.0), expected.loss, **TOLERANCE)
    torch.testing.assert_close(family.decide(logits), low + expected.logits[:, 0] * (high - low), **TOLERANCE)


def _multiple_choice_entries() -> list[str]:
    return [n for n, s in load_catalog().items() if s.family == "multiple_choice"]


def test_multiple_choice_matches_bert_for_multiple_choice_through_the_shared_head(tiny_backbone, tokenizer, entry_splits):
    model = _model(tiny_backbone, _multiple_choice_entries())
    assert list(model.heads) == ["ranking"]  # every multiple-choice dataset scores with the one ranking head
    reference = _reference(AutoModelForMultipleChoice, tiny_backbone, model, _pooler_and_classifier(model.heads["ranking"]))
    for name in ("commonsenseqa", "copa"):  # five choices, two choices
        spec, family, batch = _batch(name, entry_splits(name)["validation"][:6], tokenizer)
        with torch.no_grad():
            logits = model("ranking", family, batch)
            expected = reference(**_inputs(batch), labels=batch["labels"])
        assert logits.shape == (6, spec.num_choices) and batch["choice_mask"].all()
        torch.testing.assert_close(logits, expected.logits, **TOLERANCE)
        torch.testing.assert_close(family.loss(logits, batch["labels"]), expected.loss, **TOLERANCE)
        scaled = family.scaled_loss(logits, batch["labels"], spec.loss_scale(MAX_LENGTH))
        torch.testing.assert_close(scaled, expected.loss / math.log(spec.num_choices), **TOLERANCE)


def test_multiple_choice_with_fewer_choices_is_scored_on_its_own_choices(tiny_backbone, tokenizer, entry_splits):
    """ARC questions with 3, 4 and 5 choices in one batch: padding choices score -inf, and each question's
    loss is the cross-entropy over its own choices divided by the log of their number."""
    records = [r for split in entry_splits("arc_easy").values() for r in split]
    mixed = [next(r for r in records if len(r.choices) == n) for n in (3, 4, 5, 4, 3)]
    spec, family, batch = _batch("arc_easy", mixed, tokenizer)
    model = _model(tiny_backbone, ["arc_easy"])
    reference = _reference(AutoModelForMultipleChoice, tiny_backbone, model, _pooler_and_classifier(model.heads["ranking"]))
    with torch.no_grad():
        logits = model("ranking", family, batch)
        own = []  # each question alone, unpadded
        for record in mixed:
            _, _, single = _batch("arc_easy", [record], tokenizer)
            own.append(reference(**_inputs(single)).logits[0])
    labels = batch["labels"]
    for i, scores in enumerate(own):
        torch.testing.assert_close(logits[i, : len(scores)], scores, **TOLERANCE)
        assert torch.isneginf(logits[i, len(scores) :]).all()
    per_question = torch.stack([F.cross_entropy(s[None], labels[i : i + 1]) for i, s in enumerate(own)])
    torch.testing.assert_close(family.loss(logits, labels), per_question.mean(), **TOLERANCE)
    by_own_n = torch.stack([ce / math.log(len(s)) for ce, s in zip(per_question, own)]).mean()
    torch.testing.assert_close(family.scaled_loss(logits, labels, spec.loss_scale(MAX_LENGTH)), by_own_n, **TOLERANCE)


def test_span_matches_bert_for_question_answering(tiny_backbone, tokenizer, entry_splits):
    spec, family, batch = _batch("squad", entry_splits("squad")["validation"][:4], tokenizer)
    assert (batch["labels"][:, 0] > 0).any(), "the batch should hold windows with the answer"
    model = _model(tiny_backbone, ["squad"])
    head = model.heads["span"]
    reference = _reference(AutoModelForQuestionAnswering, tiny_backbone, model,
                           {"qa_outputs.weight": head.qa_outputs.weight, "qa_outputs.bias": head.qa_outputs.bias})
    with torch.no_grad():
        start, end = model("span", family, batch)
        expected = reference(**_inputs(batch), start_positions=batch["labels"][:, 0], end_positions=batch["labels"][:, 1])
    torch.testing.assert_close(start, expected.start_logits, **TOLERANCE)
    torch.testing.assert_close(end, expected.end_logits, **TOLERANCE)
    loss = family.loss((start, end), batch["labels"])
    torch.testing.assert_close(loss, expected.loss, **TOLERANCE)
    # n(i) = the sequence length: the candidate positions
    scaled = family.scaled_loss((start, end), batch["labels"], spec.loss_scale(MAX_LENGTH))
    torch.testing.assert_close(scaled, expected.loss / math.log(MAX_LENGTH), **TOLERANCE)


def test_mean_pooling_matches_plain_torch(tiny_backbone, tokenizer, entry_splits):
    spec, family, batch = _batch("cb", entry_splits("cb")["validation"][:8], tokenizer)
    model = _model(tiny_backbone, ["cb"], pooling="mean")
    head = model.heads["cb"]
    with torch.no_grad():
        logits = model("cb", family, batch)
        hidden = model.encoder(**_inputs(batch)).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        expected = F.linear(torch.tanh(F.linear(pooled, head.dense.weight, head.dense.bias)), head.out_proj.weight, head.out_proj.bias)
    torch.testing.assert_close(logits, expected, **TOLERANCE)
    nll = -expected.log_softmax(-1).gather(1, batch["labels"][:, None]).mean()
    torch.testing.assert_close(family.loss(logits, batch["labels"]), nll, **TOLERANCE)


def test_summarization_matches_an_encoder_decoder_model_and_a_plain_smoothed_loss(tiny_backbone, tokenizer, entry_splits):
    spec, family, batch = _batch("xsum", entry_splits("xsum")["validation"][:3], tokenizer)
    model = _model(tiny_backbone, ["xsum"])
    decoder = model.heads["generation"].decoder
    config = EncoderDecoderConfig.from_encoder_decoder_configs(model.encoder.config, decoder.config)
    reference = EncoderDecoderModel(config=config).eval()
    reference.encoder.load_state_dict(model.encoder.state_dict())
    reference.decoder.load_state_dict(decoder.state_dict())
    with torch.no_grad():
        logits = model("generation", family, batch)
        expected = reference(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], token_type_ids=batch["token_type_ids"],
            decoder_input_ids=batch["decoder_input_ids"], decoder_attention_mask=batch["decoder_attention_mask"],
        ).logits
    torch.testing.assert_close(logits, expected, **TOLERANCE)
    # label-smoothed cross-entropy over the real summary tokens: (1 - e) * NLL + e * the mean over the vocabulary
    labels = batch["labels"]
    real = labels != IGNORE_INDEX
    log_p = expected.log_softmax(-1)[real]
    nll = -log_p.gather(1, labels[real][:, None]).squeeze(1)
    smoothed = ((1 - LABEL_SMOOTHING) * nll - LABEL_SMOOTHING * log_p.mean(-1)).mean()
    torch.testing.assert_close(family.loss(logits, labels), smoothed, **TOLERANCE)
    # n(i) = the vocabulary size
    vocabulary = logits.shape[-1]
    scaled = family.scaled_loss(logits, labels, spec.loss_scale(MAX_LENGTH, vocabulary))
    torch.testing.assert_close(scaled, smoothed / math.log(vocabulary), **TOLERANCE)
