"""STS-B trains on scores rescaled to [0, 1] and is scored on the original 0-5 scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from muppet_core.data.prepare import normalize_rows
from muppet_core.data.sources import raw_splits
from muppet_core.evaluation.evaluate import evaluate
from muppet_core.families import get_family
from muppet_core.models.backbone import load_encoder
from muppet_core.models.multitask import build_multitask_model
from muppet_core.registry import resolve
from muppet_core.tasks.catalog import get_task

ROWS = 32
MAX_LENGTH = 128


def _records(task: str, split: str, mirror: str) -> list:
    spec = get_task(task)
    _, splits = raw_splits(spec, mirror)
    records, _ = normalize_rows(spec, split, splits[split], resolve(spec.normalizer))
    return records[:: max(1, len(records) // ROWS)][:ROWS]


@pytest.fixture(scope="module")
def minilm(minilm_path):
    return load_encoder(minilm_path)


def _first_loss(task: str, mirror: str, minilm, scale: float = 1.0) -> float:
    """The loss a fresh head over MiniLM gives real training rows of ``task``, scaled by 1/log n(i)
    (regression: labels multiplied by ``scale`` first)."""
    spec = get_task(task)
    family = get_family(spec.family).for_task(spec)
    encoder, tokenizer = minilm
    torch.manual_seed(0)
    model = build_multitask_model(encoder, [spec])
    features, _ = family.encode(_records(task, "train", mirror), tokenizer, MAX_LENGTH)
    batch = family.collate(features, tokenizer.pad_token_id)
    with torch.no_grad():
        loss = family.loss(model(family.head_name(spec), family, batch), batch["labels"] * scale if scale != 1 else batch["labels"])
    return float(loss) * spec.loss_scale(MAX_LENGTH, tokenizer.vocab_size)


def test_stsb_first_loss_is_on_the_scale_of_the_scaled_cross_entropies(mirror, minilm):
    losses = {task: _first_loss(task, mirror, minilm) for task in ["stsb", "rte", "sst2", "cb"]}
    losses["stsb on 0-5"] = _first_loss("stsb", mirror, minilm, scale=5.0)
    print("first losses:", {k: round(v, 3) for k, v in losses.items()})
    ce = [losses[t] for t in ["rte", "sst2", "cb"]]
    assert all(0.5 < v < 2.0 for v in ce), losses
    assert losses["stsb"] < 2 * max(ce), losses
    assert losses["stsb on 0-5"] > 5 * max(ce), losses  # the former raw-scale loss


def test_stsb_correlations_are_reported_on_the_0_5_scale(mirror, minilm):
    spec = get_task("stsb")
    family = get_family("regression").for_task(spec)
    encoder, tokenizer = minilm
    torch.manual_seed(0)
    model = build_multitask_model(encoder, [spec])
    records = _records("stsb", "validation", mirror)
    features, _ = family.encode(records, tokenizer, MAX_LENGTH)
    gold = np.array([r.label for r in records])
    assert gold.max() > 4 and all(0 <= f["labels"] <= 1 for f in features)
    np.testing.assert_allclose([f["labels"] for f in features], gold / 5)
    metrics = evaluate(model, spec.name, spec, features, tokenizer.pad_token_id)
    # independently: the head's raw outputs on one padded batch, mapped to 0-5 by hand
    model.eval()
    with torch.no_grad():
        raw = model(spec.name, family, family.collate(features, tokenizer.pad_token_id))[:, 0].double().numpy()
    predictions = family.predict(model, spec.name, features, tokenizer.pad_token_id)
    np.testing.assert_allclose(predictions, raw * 5, rtol=1e-4, atol=1e-5)
    assert metrics["pearson"] == pytest.approx(stats.pearsonr(raw * 5, gold).statistic, abs=1e-4)
    assert metrics["spearman"] == pytest.approx(stats.spearmanr(raw * 5, gold).statistic, abs=1e-4)
