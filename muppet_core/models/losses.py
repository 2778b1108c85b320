"""Per-family losses and the paper's loss scaling (each task's loss divided by log n(i))."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from muppet_core.data.encoding import IGNORE_INDEX

LABEL_SMOOTHING = 0.1


def family_loss(family: str, logits, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy (classes or choices), MSE (regression), mean start/end cross-entropy (span), or
    label-smoothed (0.1) token cross-entropy over the summary (summarization)."""
    if family in ("classification", "multiple_choice"):
        return F.cross_entropy(logits, labels)
    if family == "regression":
        return F.mse_loss(logits.squeeze(-1), labels.float())
    if family == "span":
        start_logits, end_logits = logits
        return (F.cross_entropy(start_logits, labels[:, 0]) + F.cross_entropy(end_logits, labels[:, 1])) / 2
    if family == "summarization":
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX, label_smoothing=LABEL_SMOOTHING)
    raise ValueError(f"no loss for family '{family}'")


def scaled_loss(loss: torch.Tensor, scale: float, enabled: bool) -> torch.Tensor:
    """Apply the 1/log n(i) factor when loss scaling is on."""
    return loss * scale if enabled else loss


def _symmetric_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    p, q = F.log_softmax(p_logits.float(), -1), F.log_softmax(q_logits.float(), -1)
    return (F.kl_div(p, q, log_target=True, reduction="batchmean") + F.kl_div(q, p, log_target=True, reduction="batchmean")) / 2


def r3f_penalty(model, head: str, family: str, batch: dict[str, torch.Tensor], logits, eps: float) -> torch.Tensor:
    """R3F: symmetric KL between predictions on the input embeddings and on noised embeddings.

    Args:
        model: the multi-task model (its encoder's input embeddings are noised).
        head: the head that produced ``logits``.
        family: the task family.
        batch: the collated micro-batch.
        logits: the clean predictions.
        eps: scale of the normal noise added to the embeddings.
    """
    if family == "summarization":
        return torch.zeros((), device=batch["input_ids"].device)  # R3F is defined for the classification-style heads
    embeds = model.encoder.get_input_embeddings()(batch["input_ids"])
    noisy = {k: v for k, v in batch.items() if k != "input_ids"}
    noisy["inputs_embeds"] = embeds + torch.randn_like(embeds) * eps
    noisy_logits = model(head, family, noisy)
    if family == "regression":
        return F.mse_loss(noisy_logits, logits)
    if family == "span":
        return sum(_symmetric_kl(a, b) for a, b in zip(logits, noisy_logits)) / 2
    if family == "multiple_choice":
        mask = batch["choice_mask"]
        logits, noisy_logits = logits.masked_fill(~mask, -1e4), noisy_logits.masked_fill(~mask, -1e4)
    return _symmetric_kl(logits, noisy_logits)
