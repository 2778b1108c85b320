"""Evaluation of a model on a task's features: batched, length-sorted, no gradients.

Per family: classification and multiple choice take the argmax, regression the head's one output,
span the best-scoring answer inside the context (as text), summarization the decoder's greedy
output (as text). The task's catalog metrics then score the predictions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from muppet_core.data.encoding import collate, decoder_start_id, decoder_stop_id
from muppet_core.evaluation.metrics import compute
from muppet_core.models.multitask import MultiTaskModel
from muppet_core.tasks.catalog import TaskSpec

MAX_ANSWER_TOKENS = 30
MAX_NEW_TOKENS = 64


def _length(feature: dict[str, Any]) -> int:
    if "choices" in feature:
        return max(len(c["input_ids"]) for c in feature["choices"])
    return len(feature["input_ids"])


@contextlib.contextmanager
def _inference(model: MultiTaskModel) -> Iterator[None]:
    """Eval mode and no gradients, the model's previous mode restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _batches(model: MultiTaskModel, family: str, features: list[dict[str, Any]], pad_id: int, batch_size: int):
    """(indices, collated batch on the model's device), shortest inputs first."""
    device = next(model.parameters()).device
    order = sorted(range(len(features)), key=lambda i: _length(features[i]))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = collate(family, [features[i] for i in idx], pad_id)
        yield idx, {k: v.to(device) for k, v in batch.items()}


def predict(model: MultiTaskModel, head: str, family: str, features: list[dict[str, Any]], pad_id: int, batch_size: int = 64) -> np.ndarray:
    """Predicted class (or choice) indices, or for regression the predicted scores, in the order of ``features``."""
    out = np.empty(len(features), dtype=np.float64 if family == "regression" else np.int64)
    with _inference(model):
        for idx, batch in _batches(model, family, features, pad_id, batch_size):
            logits = model(head, family, batch)
            values = logits[:, 0].float() if family == "regression" else logits.argmax(-1)
            out[idx] = values.cpu().numpy()
    return out


def best_spans(start: torch.Tensor, end: torch.Tensor, allowed: torch.Tensor, max_tokens: int = MAX_ANSWER_TOKENS) -> torch.Tensor:
    """The (start, end) token pair of highest start + end logit per row, with start <= end, at most
    ``max_tokens`` tokens long, both ends where ``allowed`` ([B, L] bool, the context tokens).

    Returns:
        [B, 2] token indices; (0, 0) for a row without an allowed token.
    """
    length = start.shape[1]
    positions = torch.arange(length, device=start.device)
    gap = positions.unsqueeze(0) - positions.unsqueeze(1)  # [s, e] -> e - s
    valid = (gap >= 0) & (gap < max_tokens)
    valid = valid.unsqueeze(0) & allowed.unsqueeze(2) & allowed.unsqueeze(1)
    scores = (start.unsqueeze(2) + end.unsqueeze(1)).float().masked_fill(~valid, float("-inf"))
    best = scores.flatten(1).argmax(-1)
    pairs = torch.stack([best // length, best % length], dim=1)
    return pairs.masked_fill(~valid.flatten(1).any(-1, keepdim=True), 0)


def predict_spans(
    model: MultiTaskModel,
    head: str,
    features: list[dict[str, Any]],
    pad_id: int,
    batch_size: int = 64,
    max_answer_tokens: int = MAX_ANSWER_TOKENS,
) -> list[str]:
    """Predicted answer texts, cut from each feature's ``context`` at the chosen tokens' ``offsets``."""
    out = [""] * len(features)
    with _inference(model):
        for idx, batch in _batches(model, "span", features, pad_id, batch_size):
            start, end = model(head, "span", batch)
            allowed = torch.zeros(start.shape, dtype=torch.bool)
            for row, i in enumerate(idx):
                offsets = features[i]["offsets"]
                allowed[row, : len(offsets)] = torch.from_numpy(offsets[:, 0] >= 0)
            pairs = best_spans(start.cpu(), end.cpu(), allowed, max_answer_tokens).tolist()
            for i, (s, e) in zip(idx, pairs):
                offsets = features[i]["offsets"]
                if offsets[s, 0] >= 0:
                    out[i] = features[i]["context"][offsets[s, 0] : offsets[e, 1]]
    return out


def predict_summaries(
    model: MultiTaskModel,
    head: str,
    features: list[dict[str, Any]],
    pad_id: int,
    tokenizer,
    batch_size: int = 64,
    max_new_tokens: int = MAX_NEW_TOKENS,
) -> list[str]:
    """Greedy summaries (at most ``max_new_tokens`` tokens, ending at [SEP]), decoded to text."""
    start_id, stop_id = decoder_start_id(tokenizer), decoder_stop_id(tokenizer)
    out = [""] * len(features)
    with _inference(model):
        for idx, batch in _batches(model, "summarization", features, pad_id, batch_size):
            for i, tokens in zip(idx, model.generate(head, batch, start_id, stop_id, max_new_tokens)):
                out[i] = tokenizer.decode(tokens, skip_special_tokens=True).strip()
    return out


def evaluate(
    model: MultiTaskModel,
    head: str,
    spec: TaskSpec,
    features: list[dict[str, Any]],
    pad_id: int,
    tokenizer=None,
    batch_size: int = 64,
    max_new_tokens: int = MAX_NEW_TOKENS,
) -> dict[str, float]:
    """The task's main and secondary metrics on ``features`` (from ``encode``).

    Args:
        model: the multi-task model; its train/eval mode is left as it was.
        head: the head to evaluate.
        spec: the task, for its family and metrics.
        features: encoded examples of one task.
        pad_id: the tokenizer's padding id.
        tokenizer: decodes generated summaries; only summarization needs it.
        batch_size: examples per forward pass.
        max_new_tokens: the longest generated summary, in tokens.
    """
    if not features:
        raise ValueError(f"no {spec.name} examples to evaluate")
    names = [spec.metric, *spec.secondary_metrics]
    family = spec.family
    if family in ("classification", "multiple_choice", "regression"):
        predictions = predict(model, head, family, features, pad_id, batch_size)
        return compute(names, predictions, np.array([f["labels"] for f in features]))
    if family == "span":
        predictions = predict_spans(model, head, features, pad_id, batch_size)
        return compute(names, predictions, [[f["answer_text"]] for f in features])
    if family == "summarization":
        if tokenizer is None:
            raise ValueError(f"evaluating {spec.name} (summarization) needs the tokenizer to decode summaries")
        predictions = predict_summaries(model, head, features, pad_id, tokenizer, batch_size, max_new_tokens)
        return compute(names, predictions, [f["summary"] for f in features])
    raise ValueError(f"evaluation of the {family} family is not supported")
