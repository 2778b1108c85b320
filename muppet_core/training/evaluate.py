"""Evaluation of a model on a task's features: batched, length-sorted, no gradients.

The task's family predicts (classification and multiple choice the argmax, regression the head's
one output, span the best-scoring answer inside the context, summarization the decoder's output, greedy
or by beam search) and reads the references from the features; the task's catalog metrics then score the
predictions.
"""

from __future__ import annotations

from typing import Any

from muppet_core.evaluation.metrics import compute
from muppet_core.families import get_family
from muppet_core.families.base import MAX_NEW_TOKENS
from muppet_core.models.multitask import MultiTaskModel
from muppet_core.tasks.catalog import TaskSpec


def evaluate(
    model: MultiTaskModel,
    head: str,
    spec: TaskSpec,
    features: list[dict[str, Any]],
    pad_id: int,
    tokenizer=None,
    batch_size: int = 64,
    max_new_tokens: int = MAX_NEW_TOKENS,
    num_beams: int = 1,
) -> dict[str, float]:
    """The task's main and secondary metrics on ``features`` (from its family's ``encode``).

    Args:
        model: the multi-task model; its train/eval mode is left as it was.
        head: the head to evaluate.
        spec: the task, for its family and metrics.
        features: encoded examples of one task.
        pad_id: the tokenizer's padding id.
        tokenizer: decodes generated summaries; only summarization needs it.
        batch_size: examples per forward pass.
        max_new_tokens: the longest generated summary, in tokens.
        num_beams: beams of the summaries' beam search (1: greedy).
    """
    if not features:
        raise ValueError(f"no {spec.name} examples to evaluate")
    family = get_family(spec.family).for_task(spec)
    predictions = family.predict(model, head, features, pad_id, batch_size, tokenizer, max_new_tokens, num_beams)
    return compute([spec.metric, *spec.secondary_metrics], predictions, family.references(features))
