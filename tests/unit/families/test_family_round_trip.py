"""Every registered family on a few real rows of the mirror: normalize -> Parquet and back ->
encode -> collate -> forward -> loss, the loss checked against an independent computation."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest
import torch

from muppet_core.data.prepare import load_split, normalize_rows
from muppet_core.data.records import to_row
from muppet_core.data.sources import raw_splits
from muppet_core.families import FAMILIES, get_family
from muppet_core.families.base import IGNORE_INDEX
from muppet_core.families.build import build_multitask_model
from muppet_core.models.backbone import load_encoder
from muppet_core.registry import resolve
from muppet_core.tasks.catalog import get_task


def _cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return -logits.log_softmax(-1).gather(1, labels[:, None]).mean()


def _smoothed_token_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, smoothing: float = 0.1) -> torch.Tensor:
    logp = logits.log_softmax(-1)
    kept = labels != IGNORE_INDEX
    nll = -logp.gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)
    return ((1 - smoothing) * nll - smoothing * logp.mean(-1))[kept].mean()


def _shapes_classification(batch, logits, spec):
    assert logits.shape == (len(batch["labels"]), len(spec.labels)) and batch["labels"].dtype == torch.long


def _shapes_regression(batch, logits, spec):
    assert logits.shape == (len(batch["labels"]), 1) and batch["labels"].dtype == torch.float


def _shapes_multiple_choice(batch, logits, spec):
    b, c, _ = batch["input_ids"].shape
    assert logits.shape == (b, c) == batch["choice_mask"].shape and c <= spec.num_choices


def _shapes_span(batch, logits, spec):
    assert logits[0].shape == logits[1].shape == batch["input_ids"].shape and batch["labels"].shape[1] == 2


def _shapes_summarization(batch, logits, spec):
    assert logits.shape[:2] == batch["labels"].shape == batch["decoder_input_ids"].shape


# family -> (a task with mirror rows, rows to read, max_length, shape check, independent loss)
CASES = {
    "classification": ("rte", 6, 64, _shapes_classification, _cross_entropy),
    "regression": ("stsb", 6, 64, _shapes_regression, lambda logits, labels: ((logits[:, 0] - labels) ** 2).mean()),
    "multiple_choice": ("arc_easy", 6, 64, _shapes_multiple_choice, _cross_entropy),
    "span": ("squad", 12, 256, _shapes_span, lambda lg, labels: (_cross_entropy(lg[0], labels[:, 0]) + _cross_entropy(lg[1], labels[:, 1])) / 2),
    "summarization": ("xsum", 4, 128, _shapes_summarization, _smoothed_token_cross_entropy),
}


def test_every_registered_family_has_a_round_trip_case():
    assert sorted(CASES) == FAMILIES.names()


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_backbone):
    torch.manual_seed(0)
    encoder, tokenizer = load_encoder(tiny_backbone)
    model = build_multitask_model(encoder, [get_task(task) for task, *_ in CASES.values()])
    return model.eval(), tokenizer


@pytest.mark.parametrize("family_name", list(CASES))
def test_real_rows_round_trip_through_encode_collate_forward_and_loss(family_name, model_and_tokenizer, mirror, tmp_path):
    task, rows, max_length, check_shapes, independent_loss = CASES[family_name]
    model, tok = model_and_tokenizer
    spec, family = get_task(task), get_family(family_name)
    source, raw = raw_splits(spec, mirror)
    split, split_rows = next(iter(raw.items()))
    records, report = normalize_rows(spec, split, itertools.islice(split_rows, rows), resolve(spec.normalizer))
    assert source == "mirror" and report["dropped"] == 0 and len(records) == rows
    assert all(isinstance(r, family.record_type) for r in records)

    pd.DataFrame([to_row(r) for r in records]).to_parquet(tmp_path / f"{split}.parquet", index=False)
    assert load_split(tmp_path, family_name, split) == records  # what the data stage stores reads back the same

    features, dropped = family.encode(records, tok, max_length, max_target_length=16)
    assert len(features) + dropped == rows and len(features) >= 2
    batch = family.collate(features, tok.pad_token_id)
    assert batch["input_ids"].shape[-1] == max(family.longest(f) for f in features)  # padded to the longest only
    with torch.no_grad():
        logits = model(family.head_name(spec), family, batch)
        loss = family.loss(logits, batch["labels"])
    check_shapes(batch, logits, spec)
    assert loss.shape == () and torch.isfinite(loss)
    assert torch.allclose(loss, independent_loss(logits, batch["labels"]), rtol=1e-5, atol=1e-6)
