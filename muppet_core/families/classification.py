"""Classification: a sentence or a sentence pair with a class index, one head per dataset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from muppet_core.families.base import Family, TaskEntry, pad_text, text_rows
from muppet_core.lazy import LazyModule

if TYPE_CHECKING:
    from muppet_core.models.multitask import MultiTaskModel

torch = LazyModule("torch")
F = LazyModule("torch.nn.functional")
nn = LazyModule("torch.nn")


@dataclass(frozen=True)
class ClassificationRecord:
    """A single sentence (text_b is None) or a sentence pair with a class index."""

    text_a: str
    text_b: str | None
    label: int
    id: str = ""


class ClassificationFamily(Family):
    """Cross-entropy over a per-dataset head on the pooled encoder states; n(i) is the number
    of classes. Sentence-pair regression reuses all of it but the label type, head size and loss.

    Attributes:
        label_type: what a normalizer converts a raw label with.
        label_dtype: the torch dtype of the collated labels, by name.
    """

    name = "classification"
    record_type = ClassificationRecord
    text_fields = ("text_a", "text_b")
    hub_normalizer = "muppet_core.tasks.normalizers.classification:from_hub_fields"
    label_type = int
    label_dtype = "long"

    def spec_problem(self, spec: TaskEntry) -> str | None:
        """Classification entries need their class names."""
        return None if spec.labels else "classification tasks need 'labels'"

    def record_problem(self, record: ClassificationRecord, spec: TaskEntry) -> str | None:
        """A label outside the task's classes."""
        num_labels = len(spec.labels) if spec.labels else None
        if num_labels and not 0 <= record.label < num_labels:
            return f"unknown label {record.label} (the task has {num_labels} labels)"
        return None

    def model_inputs(self, record: ClassificationRecord) -> tuple[str, str | None]:
        """The sentence, or the sentence pair."""
        return record.text_a, record.text_b

    def encode(self, records: list[Any], tokenizer, max_length: int, max_target_length: int = 64) -> tuple[list[dict[str, Any]], int]:
        """One truncated sequence (or pair, when the first record has a text_b) per record; none dropped."""
        if not records:
            return [], 0
        pairs = records[0].text_b is not None
        enc = tokenizer(
            [r.text_a for r in records],
            [r.text_b or "" for r in records] if pairs else None,
            truncation=True,
            max_length=max_length,
        )
        return [{**row, "labels": r.label} for row, r in zip(text_rows(enc, len(records)), records)], 0

    def collate(self, features: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
        """Padded inputs and a [B] label tensor of ``label_dtype``."""
        length = max(len(f["input_ids"]) for f in features)
        batch = pad_text(features, pad_id, length)
        labels = [f["labels"] for f in features]
        batch["labels"] = torch.tensor(labels, dtype=getattr(torch, self.label_dtype))
        return batch

    def head_shape(self, spec: TaskEntry) -> dict:
        """A classification head with one output per class."""
        return {"kind": "classification", "outputs": len(spec.labels or [])}

    def build_head(self, shape: dict, encoder: nn.Module) -> nn.Module:
        """Dense-tanh-projection over the pooled sentence vector."""
        from muppet_core.models.heads import ClassificationHead

        return ClassificationHead.for_encoder(encoder, shape["outputs"])

    def forward(self, model: MultiTaskModel, head: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, outputs] logits of the head over the pooled encoder states (see ``MultiTaskModel.pool``)."""
        hidden = model.encode(batch)
        return model.heads[head](model.pool(hidden, batch))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy over the classes."""
        return F.cross_entropy(logits, labels)

    def loss_n(self, spec: TaskEntry, max_length: int, vocab_size: int | None = None) -> int | None:
        """The number of classes."""
        return len(spec.labels or [])

    def loss_n_rule(self, spec: TaskEntry) -> int | str | None:
        """The number of classes."""
        return len(spec.labels or [])


FAMILY = ClassificationFamily()
