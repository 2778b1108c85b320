"""Extractive reading comprehension: start and end logits over every token from the one shared ``span`` head.

The paper found per-dataset heads overfit here, so every extractive dataset shares one head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from muppet_core.families.base import MAX_NEW_TOKENS, TEXT_KEYS, Family, inference, pad_text, symmetric_kl
from muppet_core.lazy import LazyModule

if TYPE_CHECKING:
    from muppet_core.models.multitask import MultiTaskModel
    from muppet_core.tasks.catalog import TaskSpec

torch = LazyModule("torch")
F = LazyModule("torch.nn.functional")
nn = LazyModule("torch.nn")


SPAN_HEAD = "span"
MAX_ANSWER_TOKENS = 30


@dataclass(frozen=True)
class SpanRecord:
    """Extractive reading comprehension: the answer is context[answer_start:answer_start+len(answer_text)]."""

    question: str
    context: str
    answer_text: str
    answer_start: int
    id: str = ""


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


class SpanFamily(Family):
    """Mean of the start and end cross-entropies; n(i) is the sequence length (the candidate
    positions); the prediction is the best-scoring answer inside the context, as text.

    Attributes:
        max_answer_tokens: the longest answer predicted, in tokens.
    """

    name = "span"
    record_type = SpanRecord
    text_fields = ("context", "question", "answer_text")
    hub_normalizer = "muppet_core.tasks.normalizers.span:from_hub_fields"
    hub_task = "question-answering"
    max_answer_tokens = MAX_ANSWER_TOKENS

    def record_problem(self, record: SpanRecord, spec: TaskSpec) -> str | None:
        """An answer that is not at its offset in the context."""
        end = record.answer_start + len(record.answer_text)
        if record.answer_start < 0 or record.context[record.answer_start : end] != record.answer_text:
            return "answer not at its offset in the context"
        return None

    def model_inputs(self, record: SpanRecord) -> tuple[str, str | None]:
        """The question and the context."""
        return record.question, record.context

    def encode(self, records: list[Any], tokenizer, max_length: int, max_target_length: int = 64) -> tuple[list[dict[str, Any]], int]:
        """(question, context) sequences, the context truncated; labels are the answer's first and
        last tokens. Records whose answer does not fit in the first ``max_length`` tokens are dropped.

        Evaluation also reads ``context``, ``offsets`` (an int32 array of each token's character
        span in the context, -1 outside it) and ``answer_text``, which ``collate`` ignores.
        """
        if not records:
            return [], 0
        enc = tokenizer(
            [r.question for r in records],
            [r.context for r in records],
            truncation="only_second",
            max_length=max_length,
            return_offsets_mapping=True,
        )
        features, dropped = [], 0
        for i, r in enumerate(records):
            start_char, end_char = r.answer_start, r.answer_start + len(r.answer_text)
            seq_ids, offsets = enc.sequence_ids(i), enc["offset_mapping"][i]
            start_tok = end_tok = None
            for t, (sid, (a, b)) in enumerate(zip(seq_ids, offsets)):
                if sid != 1:
                    continue
                if start_tok is None and a <= start_char < b:
                    start_tok = t
                if a < end_char <= b:
                    end_tok = t
            if start_tok is None or end_tok is None or end_tok < start_tok:
                dropped += 1
                continue
            row = {k: enc[k][i] for k in TEXT_KEYS if k in enc}
            context_offsets = np.array([o if sid == 1 else (-1, -1) for sid, o in zip(seq_ids, offsets)], dtype=np.int32)
            features.append(
                {**row, "labels": [start_tok, end_tok], "context": r.context, "offsets": context_offsets, "answer_text": r.answer_text}
            )
        return features, dropped

    def collate(self, features: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
        """Padded inputs and [B, 2] (start, end) token labels."""
        length = max(len(f["input_ids"]) for f in features)
        batch = pad_text(features, pad_id, length)
        labels = [f["labels"] for f in features]
        batch["labels"] = torch.tensor(labels, dtype=torch.long)
        return batch

    def head_name(self, spec: TaskSpec) -> str:
        """The shared ``span`` head."""
        return SPAN_HEAD

    def head_shape(self, spec: TaskSpec) -> dict:
        """A span head: two outputs (start, end) per token."""
        return {"kind": "span", "outputs": 2}

    def build_head(self, shape: dict, encoder: nn.Module) -> nn.Module:
        """A linear start/end layer over every token."""
        from muppet_core.models.heads import SpanHead

        return SpanHead(encoder.config.hidden_size)

    def forward(self, model: MultiTaskModel, head: str, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """A (start, end) pair of [B, L] logits."""
        hidden = model.encode(batch)
        logits = model.heads[head](hidden)
        return logits[..., 0], logits[..., 1]

    def loss(self, logits: tuple[torch.Tensor, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        """Mean of the start and end token cross-entropies."""
        start_logits, end_logits = logits
        return (F.cross_entropy(start_logits, labels[:, 0]) + F.cross_entropy(end_logits, labels[:, 1])) / 2

    def loss_n(self, spec: TaskSpec, max_length: int, vocab_size: int | None = None) -> int | None:
        """The sequence length: the candidate positions."""
        return max_length

    def loss_n_rule(self, spec: TaskSpec) -> int | str | None:
        """The sequence length, known at run time."""
        return "sequence length"

    def divergence(self, logits, noisy_logits, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean of the start and end logits' symmetric KLs."""
        return sum(symmetric_kl(a, b) for a, b in zip(logits, noisy_logits)) / 2

    def predict(
        self,
        model: MultiTaskModel,
        head: str,
        features: list[dict[str, Any]],
        pad_id: int,
        batch_size: int = 64,
        tokenizer=None,
        max_new_tokens: int = MAX_NEW_TOKENS,
    ) -> list[str]:
        """Predicted answer texts, cut from each feature's ``context`` at the chosen tokens' ``offsets``
        (see ``best_spans``; at most ``max_answer_tokens`` long). The tokenizer is not needed."""
        out = [""] * len(features)
        with inference(model):
            for idx, batch in self.batches(model, features, pad_id, batch_size):
                start, end = model(head, self, batch)
                allowed = torch.zeros(start.shape, dtype=torch.bool)
                for row, i in enumerate(idx):
                    offsets = features[i]["offsets"]
                    allowed[row, : len(offsets)] = torch.from_numpy(offsets[:, 0] >= 0)
                pairs = best_spans(start.cpu(), end.cpu(), allowed, self.max_answer_tokens).tolist()
                for i, (s, e) in zip(idx, pairs):
                    offsets = features[i]["offsets"]
                    if offsets[s, 0] >= 0:
                        out[i] = features[i]["context"][offsets[s, 0] : offsets[e, 1]]
        return out

    def references(self, features: list[dict[str, Any]]) -> list[list[str]]:
        """Each feature's gold answer (one per question)."""
        return [[f["answer_text"]] for f in features]


FAMILY = SpanFamily()
