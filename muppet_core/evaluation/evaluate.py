"""Evaluation of a model on a task's features: batched, length-sorted, no gradients."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from muppet_core.data.encoding import collate
from muppet_core.evaluation.metrics import compute
from muppet_core.models.multitask import MultiTaskModel
from muppet_core.tasks.catalog import TaskSpec


def _length(feature: dict[str, Any]) -> int:
    if "choices" in feature:
        return max(len(c["input_ids"]) for c in feature["choices"])
    return len(feature["input_ids"])


@torch.no_grad()
def predict(model: MultiTaskModel, head: str, family: str, features: list[dict[str, Any]], pad_id: int, batch_size: int = 64) -> np.ndarray:
    """Predicted class (or choice) indices, in the order of ``features``."""
    model.eval()
    order = sorted(range(len(features)), key=lambda i: _length(features[i]))
    out = np.empty(len(features), dtype=np.int64)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        logits = model(head, family, collate(family, [features[i] for i in idx], pad_id))
        out[idx] = logits.argmax(-1).numpy()
    model.train()
    return out


def evaluate(model: MultiTaskModel, head: str, spec: TaskSpec, features: list[dict[str, Any]], pad_id: int) -> dict[str, float]:
    """The task's main and secondary metrics on ``features``."""
    if spec.family not in ("classification", "multiple_choice"):
        raise ValueError(f"evaluation of the {spec.family} family is not supported yet")
    predictions = predict(model, head, spec.family, features, pad_id)
    references = np.array([f["labels"] for f in features])
    return compute([spec.metric, *spec.secondary_metrics], predictions, references)
