"""Multiple choice scales each example's loss by the log of its own number of choices."""

from __future__ import annotations

import math

import pytest
import torch

from muppet_core.data.prepare import normalize_rows
from muppet_core.data.sources import raw_splits
from muppet_core.families import get_family
from muppet_core.registry import resolve
from muppet_core.tasks.catalog import get_task
from muppet_core.training.loop import scaled_loss


def test_arc_examples_are_scaled_by_their_own_number_of_choices(mirror, minilm_path):
    from transformers import AutoTokenizer

    spec = get_task("arc_easy")
    _, splits = raw_splits(spec, mirror)
    records, _ = normalize_rows(spec, "train", splits["train"], resolve(spec.normalizer))
    mixed = [r for r in records if len(r.choices) == 3][:2] + [r for r in records if len(r.choices) == 4][:3] + [r for r in records if len(r.choices) == 5][:2]
    assert {len(r.choices) for r in mixed} == {3, 4, 5} and spec.num_choices == 5
    family = get_family("multiple_choice").for_task(spec)
    features, _ = family.encode(mixed, AutoTokenizer.from_pretrained(minilm_path), 64)
    batch = family.collate(features, 0)
    torch.manual_seed(0)
    logits = torch.randn(batch["choice_mask"].shape).masked_fill(~batch["choice_mask"], float("-inf"))
    scale = spec.loss_scale(64)
    assert scale == pytest.approx(1 / math.log(5))
    # independently: each example's cross-entropy over its own choices, divided by log of their number
    expected = sum(
        -torch.log_softmax(logits[i, : len(r.choices)], -1)[r.label].item() / math.log(len(r.choices)) for i, r in enumerate(mixed)
    ) / len(mixed)
    assert scaled_loss(family, logits, batch["labels"], scale, True).item() == pytest.approx(expected, rel=1e-5)
    # scaling off (or a fine-tune stream, scale 1): the plain cross-entropy
    plain = family.loss(logits, batch["labels"]).item()
    assert scaled_loss(family, logits, batch["labels"], scale, False).item() == pytest.approx(plain)
    assert plain != pytest.approx(expected)
