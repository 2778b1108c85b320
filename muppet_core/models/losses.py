"""Per-family losses and the paper's loss scaling (each task's loss divided by log n(i))."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def family_loss(family: str, logits, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy (classes or choices), MSE (regression), or mean start/end cross-entropy (span)."""
    if family in ("classification", "multiple_choice"):
        return F.cross_entropy(logits, labels)
    if family == "regression":
        return F.mse_loss(logits.squeeze(-1), labels.float())
    if family == "span":
        start_logits, end_logits = logits
        return (F.cross_entropy(start_logits, labels[:, 0]) + F.cross_entropy(end_logits, labels[:, 1])) / 2
    raise ValueError(f"no loss for family '{family}'")


def scaled_loss(loss: torch.Tensor, scale: float, enabled: bool) -> torch.Tensor:
    """Apply the 1/log n(i) factor when loss scaling is on."""
    return loss * scale if enabled else loss
