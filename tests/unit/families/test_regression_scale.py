"""STS-B trains on scores rescaled to [0, 1] and is scored on the original 0-5 scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from muppet_core.data.prepare import normalize_rows
from muppet_core.data.sources import raw_splits
from muppet_core.families import get_family
from muppet_core.families.build import build_multitask_model
from muppet_core.models.backbone import load_encoder
from muppet_core.registry import resolve
from muppet_core.tasks.catalog import get_task
from muppet_core.training.evaluate import evaluate

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


def _fit_head(model, head: str, family, features: list, pad_id: int) -> None:
    """Set the head's last layer to the least-squares fit of the features' rescaled labels."""
    inputs = []
    hook = model.heads[head].out_proj.register_forward_hook(lambda module, args, out: inputs.append(args[0]))
    model.eval()
    with torch.no_grad():
        model(head, family, family.collate(features, pad_id))
    hook.remove()
    x = torch.cat([inputs[0], torch.ones(len(features), 1)], 1).double()
    w = torch.linalg.pinv(x) @ torch.tensor([f["labels"] for f in features], dtype=torch.float64)
    model.heads[head].out_proj.weight.data = w[:-1].float().unsqueeze(0)
    model.heads[head].out_proj.bias.data = w[-1:].float()


@pytest.mark.parametrize("low", [None, -1.0])
def test_stsb_is_predicted_and_scored_on_the_0_5_scale(low, mirror, minilm):
    """A head that fits the [0, 1] training labels predicts the gold 0-5 scores, and is scored against them
    (``low``: a range whose lower end is not 0, so that the offset is mapped back too)."""
    spec = get_task("stsb")
    if low is not None:
        spec = spec.model_copy(update={"label_range": (low, spec.label_range[1])})
    family = get_family("regression").for_task(spec)
    encoder, tokenizer = minilm
    torch.manual_seed(0)
    model = build_multitask_model(encoder, [spec])
    records = _records("stsb", "validation", mirror)
    features, _ = family.encode(records, tokenizer, MAX_LENGTH)
    gold = np.array([r.label for r in records])
    assert gold.min() < 1 and gold.max() > 4 and all(0 <= f["labels"] <= 1 for f in features)
    np.testing.assert_allclose([f["labels"] for f in features], (gold - family.low) / (family.high - family.low))
    np.testing.assert_array_equal(family.references(features), gold)
    _fit_head(model, spec.name, family, features, tokenizer.pad_token_id)
    predictions = family.predict(model, spec.name, features, tokenizer.pad_token_id)
    np.testing.assert_allclose(predictions, gold, atol=1e-3)
    metrics = evaluate(model, spec.name, spec, features, tokenizer.pad_token_id)
    assert metrics == pytest.approx({"pearson": 1.0, "spearman": 1.0}, abs=1e-3)
