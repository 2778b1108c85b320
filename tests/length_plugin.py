"""A task family of a user's own, as a plugin module holds one: short or long texts, its record type,
its head and loss, and a normalizer of SST-2's lines. The family tests register it themselves;
the plugin test copies this file beside a pipelines file and registers it there."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from muppet_core.families.base import Family

BUCKETS = ["short", "long"]


@dataclass(frozen=True)
class BucketRecord:
    """A text and its length bucket: 0 for three words or fewer, 1 for six or more."""

    text: str
    bucket: int
    id: str = ""


class LengthBucketFamily(Family):
    """Two buckets, scored by a linear head on the [CLS] state (not the mean-pooled one), with its
    own padding; predictions are bucket names."""

    name = "length_bucket"
    record_type = BucketRecord
    text_fields = ("text",)

    def __init__(self):
        self.predict_calls = 0

    def spec_problem(self, spec):
        return None if spec.labels and len(spec.labels) == 2 else "length_bucket tasks need two 'labels'"

    def record_problem(self, record, spec):
        return None if record.bucket in (0, 1) else f"bucket {record.bucket} is not 0 or 1"

    def model_inputs(self, record):
        return record.text, None

    def encode(self, records, tokenizer, max_length, max_target_length=64):
        enc = tokenizer([r.text for r in records], truncation=True, max_length=max_length)
        return [{"input_ids": ids, "labels": r.bucket} for ids, r in zip(enc["input_ids"], records)], 0

    def collate(self, features, pad_id):
        length = max(len(f["input_ids"]) for f in features)
        ids = [f["input_ids"] + [pad_id] * (length - len(f["input_ids"])) for f in features]
        mask = [[1] * len(f["input_ids"]) + [0] * (length - len(f["input_ids"])) for f in features]
        return {
            "input_ids": torch.tensor(ids),
            "attention_mask": torch.tensor(mask),
            "labels": torch.tensor([f["labels"] for f in features]),
        }

    def head_name(self, spec):
        return "bucket"

    def head_shape(self, spec):
        return {"kind": "linear", "outputs": len(spec.labels)}

    def build_head(self, shape, encoder):
        return nn.Linear(encoder.config.hidden_size, shape["outputs"])

    def forward(self, model, head, batch):
        return model.heads[head](model.encode(batch)[:, 0])

    def loss(self, logits, labels):
        return F.cross_entropy(logits, labels)

    def loss_n(self, spec, max_length, vocab_size=None):
        return len(spec.labels)

    def loss_n_rule(self, spec):
        return len(spec.labels)

    def predict(self, model, head, features, pad_id, batch_size=64, tokenizer=None, max_new_tokens=64, num_beams=1):
        self.predict_calls += 1
        indices = super().predict(model, head, features, pad_id, batch_size)
        return [BUCKETS[i] for i in indices]

    def references(self, features):
        return [BUCKETS[f["labels"]] for f in features]


def bucket_line(row, spec) -> BucketRecord:
    """An SST-2 line ('<label> <text>'), bucketed by its length: long above 18 words."""
    text = row["line"].split(" ", 1)[1].strip()
    return BucketRecord(text, int(len(text.split()) > 18))
