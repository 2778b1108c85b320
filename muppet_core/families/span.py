"""Extractive reading comprehension: start and end logits over every token from the one shared ``span`` head.

The paper found per-dataset heads overfit here, so every extractive dataset shares one head.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from muppet_core.evaluation.metrics import TEXT
from muppet_core.families.base import MAX_NEW_TOKENS, Family, TaskEntry, inference, pad_text, symmetric_kl
from muppet_core.lazy import LazyModule
from muppet_core.models.inputs import TEXT_KEYS

if TYPE_CHECKING:
    from muppet_core.models.multitask import MultiTaskModel

torch = LazyModule("torch")
F = LazyModule("torch.nn.functional")
nn = LazyModule("torch.nn")


SPAN_HEAD = "span"
MAX_ANSWER_TOKENS = 30
DOC_STRIDE = 32  # tokens shared by consecutive windows of a long context, unless the catalog says otherwise


@dataclass(frozen=True)
class SpanRecord:
    """Extractive reading comprehension: the answer is context[answer_start:answer_start+len(answer_text)].

    ``answers`` holds every gold answer text (SQuAD's dev set has up to six); scoring takes the
    best match over them. Empty: the one ``answer_text``.
    """

    question: str
    context: str
    answer_text: str
    answer_start: int
    id: str = ""
    answers: list[str] = field(default_factory=list)


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


@dataclass(frozen=True)
class SpanFamily(Family):
    """Mean of the start and end cross-entropies; n(i) is the sequence length (the candidate
    positions); the prediction is the best-scoring answer inside the context, as text.

    A context longer than fits is read in sliding windows that share ``doc_stride`` tokens; a
    question is predicted by its best span over all its windows.

    Attributes:
        max_answer_tokens: the longest answer predicted, in tokens.
        doc_stride: tokens shared by consecutive windows (the catalog's ``doc_stride`` binds it, see ``for_task``).
    """

    doc_stride: int = DOC_STRIDE

    name = "span"
    record_type = SpanRecord
    text_fields = ("context", "question", "answer_text")
    hub_normalizer = "muppet_core.tasks.normalizers.span:from_hub_fields"
    hub_task = "question-answering"
    predicts = TEXT
    max_answer_tokens = MAX_ANSWER_TOKENS

    def record_problem(self, record: SpanRecord, spec: TaskEntry) -> str | None:
        """An answer that is not at its offset in the context."""
        end = record.answer_start + len(record.answer_text)
        if record.answer_start < 0 or record.context[record.answer_start : end] != record.answer_text:
            return "answer not at its offset in the context"
        return None

    def from_row(self, row: dict[str, Any]) -> SpanRecord:
        """The record, its answers a list again (Parquet gives back an array)."""
        return super().from_row({**row, "answers": list(row.get("answers", []))})

    def for_task(self, spec: TaskEntry) -> SpanFamily:
        """The family with the task's ``doc_stride``, where the catalog sets one."""
        return dataclasses.replace(self, doc_stride=spec.doc_stride) if spec.doc_stride else self

    def model_inputs(self, record: SpanRecord) -> tuple[str, str | None]:
        """The question and the context."""
        return record.question, record.context

    def encode(self, records: list[Any], tokenizer, max_length: int, max_target_length: int = 64) -> tuple[list[dict[str, Any]], int]:
        """(question, context window) sequences: a long context is read in windows of ``max_length``
        tokens sharing ``doc_stride`` tokens. Labels are the answer's first and last tokens in the
        window, or (0, 0), the first token, in a window without the whole answer (as Hugging Face's
        SQuAD recipe does). The count returned is of records whose answer no window holds (an answer
        cut mid-token); their windows stay, so that every question is scored.

        Evaluation also reads ``example`` (the record's index), ``context``, ``offsets`` (an int32
        array of each token's character span in the context, -1 outside it) and ``answers``, which
        ``collate`` ignores.
        """
        if not records:
            return [], 0
        # The tokenizer needs the shared tokens to be fewer than the context tokens of a window, which
        # the longest question and the special tokens leave.
        questions = tokenizer([r.question for r in records], add_special_tokens=False)["input_ids"]
        room = max_length - tokenizer.num_special_tokens_to_add(pair=True) - max(len(q) for q in questions)
        enc = tokenizer(
            [r.question for r in records],
            [r.context for r in records],
            truncation="only_second",
            max_length=max_length,
            stride=max(0, min(self.doc_stride, max_length // 4, room - 1)),
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        features, found = [], set()
        for w, i in enumerate(enc["overflow_to_sample_mapping"]):
            r = records[i]
            start_char, end_char = r.answer_start, r.answer_start + len(r.answer_text)
            seq_ids, offsets = enc.sequence_ids(w), enc["offset_mapping"][w]
            start_tok = end_tok = None
            for t, (sid, (a, b)) in enumerate(zip(seq_ids, offsets)):
                if sid != 1:
                    continue
                if start_tok is None and a <= start_char < b:
                    start_tok = t
                if a < end_char <= b:
                    end_tok = t
            if start_tok is None or end_tok is None or end_tok < start_tok:
                start_tok = end_tok = 0
            else:
                found.add(i)
            row = {k: enc[k][w] for k in TEXT_KEYS if k in enc}
            context_offsets = np.array([o if sid == 1 else (-1, -1) for sid, o in zip(seq_ids, offsets)], dtype=np.int32)
            golds = list(r.answers) or [r.answer_text]
            features.append({**row, "labels": [start_tok, end_tok], "example": i, "context": r.context, "offsets": context_offsets, "answers": golds})
        return features, len(records) - len(found)

    def collate(self, features: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
        """Padded inputs and [B, 2] (start, end) token labels."""
        length = max(len(f["input_ids"]) for f in features)
        batch = pad_text(features, pad_id, length)
        labels = [f["labels"] for f in features]
        batch["labels"] = torch.tensor(labels, dtype=torch.long)
        return batch

    def head_name(self, spec: TaskEntry) -> str:
        """The shared ``span`` head."""
        return SPAN_HEAD

    def head_shape(self, spec: TaskEntry) -> dict:
        """A span head: two outputs (start, end) per token."""
        return {"kind": "span", "outputs": 2}

    def build_head(self, shape: dict, encoder: nn.Module) -> nn.Module:
        """A linear start/end layer over every token."""
        from muppet_core.models.heads import SpanHead

        return SpanHead.for_encoder(encoder)

    def forward(self, model: MultiTaskModel, head: str, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """A (start, end) pair of [B, L] logits."""
        hidden = model.encode(batch)
        logits = model.heads[head](hidden)
        return logits[..., 0], logits[..., 1]

    def loss(self, logits: tuple[torch.Tensor, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        """Mean of the start and end token cross-entropies."""
        start_logits, end_logits = logits
        return (F.cross_entropy(start_logits, labels[:, 0]) + F.cross_entropy(end_logits, labels[:, 1])) / 2

    def loss_n(self, spec: TaskEntry, max_length: int, vocab_size: int | None = None) -> int | None:
        """The sequence length: the candidate positions."""
        return max_length

    def loss_n_rule(self, spec: TaskEntry) -> int | str | None:
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
        num_beams: int = 1,
    ) -> list[str]:
        """One predicted answer text per question (in order of first appearance): the best-scoring
        span over all of its windows, cut from ``context`` at the chosen tokens' ``offsets`` (see
        ``best_spans``; at most ``max_answer_tokens`` long). The tokenizer is not needed."""
        best: dict[int, tuple[float, str]] = {}
        with inference(model):
            for idx, batch in self.batches(model, features, pad_id, batch_size):
                start, end = model(head, self, batch)
                start, end = start.float().cpu(), end.float().cpu()
                allowed = torch.zeros(start.shape, dtype=torch.bool)
                for row, i in enumerate(idx):
                    offsets = features[i]["offsets"]
                    allowed[row, : len(offsets)] = torch.from_numpy(offsets[:, 0] >= 0)
                pairs = best_spans(start, end, allowed, self.max_answer_tokens).tolist()
                for row, (i, (s, e)) in enumerate(zip(idx, pairs)):
                    offsets, example = features[i]["offsets"], features[i]["example"]
                    score = float(start[row, s] + end[row, e]) if offsets[s, 0] >= 0 else float("-inf")
                    text = features[i]["context"][offsets[s, 0] : offsets[e, 1]] if offsets[s, 0] >= 0 else ""
                    if example not in best or score > best[example][0]:
                        best[example] = (score, text)
        return [best[e][1] for e in self._order(features)]

    def references(self, features: list[dict[str, Any]]) -> list[list[str]]:
        """Every gold answer of each question (in order of first appearance)."""
        first = {}
        for f in features:
            first.setdefault(f["example"], f["answers"])
        return [first[e] for e in self._order(features)]

    def examples(self, features: list[dict[str, Any]]) -> int:
        """The questions, however many windows each has."""
        return len(self._order(features))

    @staticmethod
    def _order(features: list[dict[str, Any]]) -> list[int]:
        return list(dict.fromkeys(f["example"] for f in features))


FAMILY = SpanFamily()
