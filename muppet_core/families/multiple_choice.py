"""Multiple choice: a context with candidate answers, each pair scored by the one shared ``ranking`` head.

The paper found per-dataset heads overfit here, so every multiple-choice dataset shares one head.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from muppet_core.families.base import Family, TaskEntry, pad_text, symmetric_kl, text_rows
from muppet_core.lazy import LazyModule
from muppet_core.models.inputs import TEXT_KEYS

if TYPE_CHECKING:
    from muppet_core.models.multitask import MultiTaskModel

torch = LazyModule("torch")
F = LazyModule("torch.nn.functional")
nn = LazyModule("torch.nn")


RANKING_HEAD = "ranking"


@dataclass(frozen=True)
class MultipleChoiceRecord:
    """A context (question, premise) with candidate answers; label indexes choices.

    ``passage`` is the optional text the question is about (a RACE article, a SciQ support
    paragraph): encoding truncates it alone, so the context and every choice always survive. With a
    passage the context may be empty: a question whose blank opens it lives whole in its choices.
    """

    context: str
    choices: list[str]
    label: int
    id: str = ""
    passage: str = ""


def _after(context: str, choice: str) -> str:
    """The choice behind the context, or alone where the context is empty."""
    return f"{context} {choice}" if context else choice


@dataclass(frozen=True)
class MultipleChoiceFamily(Family):
    """Cross-entropy over the choices' scores (padding choices at -inf); n(i) is each example's number of choices."""

    num_choices: int = 0

    name = "multiple_choice"
    record_type = MultipleChoiceRecord
    text_fields = ()
    hub_normalizer = "muppet_core.tasks.normalizers.multiple_choice:from_hub_fields"
    hub_task = "multiple-choice"

    def spec_problem(self, spec: TaskEntry) -> str | None:
        """Multiple-choice entries need their number of choices."""
        return None if spec.num_choices else "multiple_choice tasks need 'num_choices'"

    def record_problem(self, record: MultipleChoiceRecord, spec: TaskEntry) -> str | None:
        """An empty context without a passage, fewer than two non-empty choices, more choices than the
        entry's ``num_choices``, or an answer index outside them."""
        if not record.context.strip() and not record.passage.strip():
            return "empty context"
        if len(record.choices) < 2 or any(not c.strip() for c in record.choices):
            return "fewer than two non-empty choices"
        if len(record.choices) > spec.num_choices:
            return f"{len(record.choices)} choices where the entry has at most {spec.num_choices} (num_choices)"
        if not 0 <= record.label < len(record.choices):
            return f"answer index {record.label} outside {len(record.choices)} choices"
        return None

    def from_row(self, row: dict[str, Any]) -> MultipleChoiceRecord:
        """The record, its choices a list again (Parquet gives back an array)."""
        return super().from_row({**row, "choices": list(row["choices"])})

    def model_inputs(self, record: MultipleChoiceRecord) -> tuple[str, str | None]:
        """The passage (if any) with the context and its longest choice."""
        if record.passage:
            return record.passage, _after(record.context, max(record.choices, key=len))
        return record.context, max(record.choices, key=len)

    def encode(self, records: list[Any], tokenizer, max_length: int, max_target_length: int = 64) -> tuple[list[dict[str, Any]], int]:
        """One feature per record: a truncated sequence per choice under ``choices``.

        Without a passage the sequence is the pair (context, choice). With one it is (passage,
        context + choice), as fairseq encodes RACE, and only the passage is truncated; a context and
        choice that alone exceed ``max_length`` fall back to truncating the longer segment.
        """
        if not records:
            return [], 0
        flat = [(r, c) for r in records for c in r.choices]
        seconds = [_after(r.context, c) if r.passage else c for r, c in flat]
        firsts = [r.passage or r.context for r, _ in flat]
        passages = sorted({r.passage for r in records if r.passage})
        if passages:  # each passage tokenized once, however many questions and choices share it
            offsets = tokenizer(passages, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
            ends = {p: [end for _, end in o] for p, o in zip(passages, offsets)}
            tails = tokenizer(seconds, add_special_tokens=False)["input_ids"]
            room = max_length - tokenizer.num_special_tokens_to_add(pair=True)
            for i, (r, _) in enumerate(flat):
                budget = room - len(tails[i])
                if r.passage and 0 < budget < len(ends[r.passage]):  # cut the passage text at its last token that fits
                    firsts[i] = r.passage[: ends[r.passage][budget - 1]]
        enc = text_rows(tokenizer(firsts, seconds, truncation=True, max_length=max_length), len(flat))
        features, i = [], 0
        for r in records:
            features.append({"choices": enc[i : i + len(r.choices)], "labels": r.label})
            i += len(r.choices)
        return features, 0

    def collate(self, features: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
        """[B, choices, L] inputs padded to the most choices and the longest sequence, a [B, choices]
        ``choice_mask`` of the real choices, and [B] labels."""
        n_choices = max(len(f["choices"]) for f in features)
        length = max(len(c["input_ids"]) for f in features for c in f["choices"])
        filler = {k: [pad_id if k == "input_ids" else 0] for k in features[0]["choices"][0]}
        flat, mask = [], []
        for f in features:
            extra = n_choices - len(f["choices"])
            flat.extend(f["choices"] + [filler] * extra)
            mask.append([True] * len(f["choices"]) + [False] * extra)
        batch = {k: v.view(len(features), n_choices, length) for k, v in pad_text(flat, pad_id, length).items()}
        batch["choice_mask"] = torch.tensor(mask)
        labels = [f["labels"] for f in features]
        batch["labels"] = torch.tensor(labels, dtype=torch.long)
        return batch

    def length(self, feature: dict[str, Any]) -> int:
        """The tokens of all choices together."""
        return sum(len(c["input_ids"]) for c in feature["choices"])

    def longest(self, feature: dict[str, Any]) -> int:
        """The longest choice's sequence."""
        return max(len(c["input_ids"]) for c in feature["choices"])

    def head_name(self, spec: TaskEntry) -> str:
        """The shared ``ranking`` head."""
        return RANKING_HEAD

    def head_shape(self, spec: TaskEntry) -> dict:
        """A classification head with one output, the choice's score."""
        return {"kind": "classification", "outputs": 1}

    def build_head(self, shape: dict, encoder: nn.Module) -> nn.Module:
        """Dense-tanh-projection over each pooled (context, choice) vector."""
        from muppet_core.models.heads import ClassificationHead

        return ClassificationHead.for_encoder(encoder, shape["outputs"])

    def forward(self, model: MultiTaskModel, head: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, choices] scores, padding choices at -inf."""
        b, c, length = batch["attention_mask"].shape
        flat = {k: v.reshape(b * c, length, *v.shape[3:]) for k, v in batch.items() if k in (*TEXT_KEYS, "inputs_embeds")}
        hidden = model.encode(flat)
        scores = model.heads[head](model.pool(hidden, flat)).view(b, c)
        return scores.masked_fill(~batch["choice_mask"], float("-inf"))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy over the choices."""
        return F.cross_entropy(logits, labels)

    def scaled_loss(self, logits: torch.Tensor, labels: torch.Tensor, scale: float) -> torch.Tensor:
        """With scaling (``scale`` != 1), n(i) per example: each example's cross-entropy divided by
        the log of its own number of choices (an ARC question with 4 choices by log 4, not by the
        task's most, 5). ``scale`` is the task's 1/log n(i) of its most choices (``for_task`` binds
        that number), so a catalog override of n(i) rescales every example alike."""
        if scale == 1.0:
            return self.loss(logits, labels)
        n = torch.isfinite(logits).sum(-1).clamp(min=2).to(torch.float32)
        per_example = F.cross_entropy(logits, labels, reduction="none") / n.log()
        return per_example.mean() * (scale * math.log(self.num_choices) if self.num_choices else 1.0)

    def for_task(self, spec: TaskEntry) -> MultipleChoiceFamily:
        """The family with the task's most choices, which its loss ``scale`` is computed from."""
        return dataclasses.replace(self, num_choices=spec.num_choices or 0)

    def sequences(self, spec: TaskEntry) -> int:
        """One sequence per choice (question and choice), the entry's most."""
        return spec.num_choices or 1

    def loss_n(self, spec: TaskEntry, max_length: int, vocab_size: int | None = None) -> int | None:
        """The most choices a question has (each example is scaled by its own number, see ``scaled_loss``)."""
        return spec.num_choices

    def loss_n_rule(self, spec: TaskEntry) -> int | str | None:
        """The number of choices."""
        return spec.num_choices

    def divergence(self, logits: torch.Tensor, noisy_logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Symmetric KL over the real choices (padding choices at -1e4, not -inf)."""
        mask = batch["choice_mask"]
        logits, noisy_logits = logits.masked_fill(~mask, -1e4), noisy_logits.masked_fill(~mask, -1e4)
        return symmetric_kl(logits, noisy_logits)


FAMILY = MultipleChoiceFamily()
