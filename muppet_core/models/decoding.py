"""Greedy decoding and beam search over a decoder's key/value cache, shared by the summarization heads.

Beam search follows ``generate`` of Hugging Face transformers with ``num_beams`` beams,
``length_penalty`` 1, ``early_stopping`` False and no other logits processing: each step ranks the
``2 * num_beams`` best continuations of all beams by summed log-probability; of those, the ones
among the first ``num_beams`` that end (pick the stop token, or reach ``max_new_tokens``) join the
finished hypotheses, scored by summed log-probability per generated token (the stop token included),
of which the ``num_beams`` best are kept; the ``num_beams`` best that do not end go on. A row stops
taking finished hypotheses once it holds ``num_beams`` and its best running beam's score per token
falls to the worst of them; the search stops when no row takes any more, or at ``max_new_tokens``.
Decoding never reads a checkpoint's generation config.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

Step = Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]
"""One decoder step: (new token ids [N, T], cache or None) -> (next-token logits [N, vocabulary], cache)."""

NEVER = -1.0e9  # the score that keeps a slot from being chosen (Hugging Face's)


def cache_argument(model: torch.nn.Module) -> str:
    """The name ``model``'s forward takes its key/value cache by (``cache`` from transformers 5, else ``past_key_values``)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def reorder_cache(cache: Any, index: torch.Tensor) -> Any:
    """The cache of the rows ``index`` picks: a ``Cache`` object reorders itself, a tuple of per-layer tensors is indexed."""
    if hasattr(cache, "reorder_cache"):
        cache.reorder_cache(index)
        return cache
    return tuple(tuple(t.index_select(0, index.to(t.device)) for t in layer) for layer in cache)


def _cut(rows: list[list[int]], stop_id: int) -> list[list[int]]:
    return [row[: row.index(stop_id)] if stop_id in row else row for row in rows]


@torch.no_grad()
def greedy(step: Step, prompt: torch.Tensor, stop_id: int, max_new_tokens: int) -> list[list[int]]:
    """The most likely next token each step, after each row's ``prompt`` [B, P].

    Returns:
        Each row's new token ids, up to (without) its first ``stop_id``, at most ``max_new_tokens``.
    """
    rows = prompt.shape[0]
    inputs, cache, steps = prompt, None, []
    done = torch.zeros(rows, dtype=torch.bool, device=prompt.device)
    for _ in range(max_new_tokens):
        logits, cache = step(inputs, cache)
        inputs = logits.argmax(-1, keepdim=True)
        steps.append(inputs.masked_fill(done.unsqueeze(1), stop_id))
        done |= inputs.squeeze(1) == stop_id
        if done.all():
            break
    return _cut(torch.cat(steps, 1).tolist() if steps else [[] for _ in range(rows)], stop_id)


@torch.no_grad()
def beam_search(step: Step, prompt: torch.Tensor, stop_id: int, max_new_tokens: int, num_beams: int) -> list[list[int]]:
    """Beam search after each row's ``prompt`` [B, P] (see the module's docstring); ``step`` reads
    ``B * num_beams`` rows, each row's beams side by side (its states repeated ``num_beams`` times).

    Returns:
        Each row's best finished hypothesis: its new token ids, without ``stop_id``.
    """
    rows, k, device = prompt.shape[0], num_beams, prompt.device
    if max_new_tokens < 1 or rows == 0:
        return [[] for _ in range(rows)]
    running = torch.zeros(rows, k, device=device)
    running[:, 1:] = NEVER  # the beams start alike: only the first one's continuations count
    tokens = prompt.new_empty(rows, k, 0)  # the running beams' new tokens
    finished = prompt.new_full((rows, k, max_new_tokens), stop_id)
    finished_scores = torch.full((rows, k), NEVER, device=device)
    is_finished = torch.zeros(rows, k, dtype=torch.bool, device=device)
    taking = torch.ones(rows, 1, dtype=torch.bool, device=device)  # whether a row still takes finished hypotheses
    first_k = torch.arange(2 * k, device=device) < k
    offset = torch.arange(rows, device=device).unsqueeze(1) * k
    inputs, cache = prompt.repeat_interleave(k, 0), None
    for t in range(max_new_tokens):
        logits, cache = step(inputs, cache)
        logp = logits.float().log_softmax(-1).view(rows, k, -1) + running.unsqueeze(2)
        top, index = logp.view(rows, -1).topk(2 * k)
        beam, token = index // logp.shape[2], index % logp.shape[2]
        grown = torch.cat([tokens.gather(1, beam.unsqueeze(2).expand(-1, -1, t)), token.unsqueeze(2)], 2)
        ends = (token == stop_id) | (t + 1 == max_new_tokens)

        running, keep = (top + ends * NEVER).topk(k)
        tokens = grown.gather(1, keep.unsqueeze(2).expand(-1, -1, t + 1))

        scores = top / (t + 1) + ~taking * NEVER + ~(ends & first_k) * NEVER
        finished_scores, merged = torch.cat([finished_scores, scores], 1).topk(k)
        candidates = F.pad(grown, (0, max_new_tokens - t - 1), value=stop_id)
        finished = torch.cat([finished, candidates], 1).gather(1, merged.unsqueeze(2).expand(-1, -1, max_new_tokens))
        is_finished = torch.cat([is_finished, ends & first_k], 1).gather(1, merged)

        worst = torch.where(is_finished, finished_scores.min(1, keepdim=True).values, NEVER)
        taking &= (running[:, :1] / (t + 1) > worst).any(1, keepdim=True)
        if not taking.any() or ends.all():
            break
        cache = reorder_cache(cache, (beam.gather(1, keep) + offset).flatten())
        inputs = tokens[:, :, -1].reshape(-1, 1)
    return _cut(finished[:, 0].tolist(), stop_id)
