"""The task family interface, and the helpers families share: padding, batched inference, R3F.

A feature is a dict of Python lists (one encoded example); ``Family.collate`` pads a micro-batch
only to its longest member.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from muppet_core.evaluation.metrics import CLASSES
from muppet_core.lazy import LazyModule
from muppet_core.models.inputs import TEXT_KEYS

if TYPE_CHECKING:
    from muppet_core.models.multitask import MultiTaskModel

torch = LazyModule("torch")
F = LazyModule("torch.nn.functional")
nn = LazyModule("torch.nn")
devices = LazyModule("muppet_core.models.devices")


IGNORE_INDEX = -100  # label positions the loss skips
MAX_NEW_TOKENS = 64  # the longest generated output, in tokens, unless the caller says otherwise


class TaskEntry(Protocol):
    """What a family reads of a catalog entry (``muppet_core.tasks.catalog.TaskSpec``, the layer above)."""

    name: str
    family: str
    labels: list[str] | None
    num_choices: int | None
    label_range: tuple[float, float] | None
    doc_stride: int | None


def text_rows(encoded, n: int) -> list[dict[str, list[int]]]:
    """The tokenizer's ``n`` encoded rows, one dict of ``TEXT_KEYS`` lists each."""
    keys = [k for k in TEXT_KEYS if k in encoded]
    return [{k: encoded[k][i] for k in keys} for i in range(n)]


def pad(rows: list[list[int]], value: int, length: int) -> list[list[int]]:
    """Each row right-padded with ``value`` to ``length``."""
    return [row + [value] * (length - len(row)) for row in rows]


def pad_text(rows: list[dict[str, list[int]]], pad_id: int, length: int) -> dict[str, torch.Tensor]:
    """[B, length] long tensors of the rows' ``TEXT_KEYS``: ids padded with ``pad_id``, masks with 0."""
    out = {}
    for key in TEXT_KEYS:
        if key in rows[0]:
            value = pad_id if key == "input_ids" else 0
            out[key] = torch.tensor(pad([r[key] for r in rows], value, length), dtype=torch.long)
    return out


def symmetric_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(p || q) + KL(q || p) between the softmaxes over the last dimension of two logit tensors, summed
    over all rows and divided by the first dimension (``batchmean``): the per-example mean of the two
    directions' sum, as R3F defines its penalty and fairseq's ``sentence_prediction_r3f`` computes it
    (both KLs summed, then divided by the batch size)."""
    p, q = F.log_softmax(p_logits.float(), -1), F.log_softmax(q_logits.float(), -1)
    return F.kl_div(p, q, log_target=True, reduction="batchmean") + F.kl_div(q, p, log_target=True, reduction="batchmean")


def r3f_noise(like: torch.Tensor, eps: float, kind: str) -> torch.Tensor:
    """R3F's noise, shaped like ``like``: uniform in [-eps, eps] (``uniform``) or N(0, eps^2) (``normal``).

    Raises:
        ValueError: an unknown ``kind``.
    """
    if kind == "uniform":
        return torch.empty_like(like).uniform_(-eps, eps)
    if kind == "normal":
        return torch.randn_like(like) * eps
    raise ValueError(f"unknown R3F noise {kind!r}: expected 'uniform' or 'normal'")


@contextlib.contextmanager
def inference(model: nn.Module) -> Iterator[None]:
    """Eval mode and no gradients, the model's previous mode restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


class Family(abc.ABC):
    """A task family: how its tasks' examples become tensors, meet the shared encoder, are scored
    by a loss and turned into predictions.

    Subclasses set the class attributes and implement the abstract methods; the defaults suit a
    family whose features are one sequence (``input_ids``) and whose head returns class logits.

    Attributes:
        name: what catalog entries write in ``family``.
        record_type: the canonical record (a frozen dataclass) every normalizer of the family emits.
        text_fields: record fields that must hold non-empty text, checked in this order.
        hub_normalizer: the default ``module:function`` for rows loaded from the hub.
        hub_task: the Hugging Face task type of its benchmarks' scores in a model card's ``model-index``.
        prediction_dtype: the dtype of ``predict``'s array (with the default ``predict``).
        predicts: what ``predict`` returns, as metrics name it (``evaluation.metrics.PREDICTIONS``): the
            catalog refuses an entry whose metric takes something else.
        decodes: whether the family trains a decoder on target tokens (a language-model head over the vocabulary):
            a plan counts ``max_target_length`` target tokens per example and their logits' memory.
    """

    name: str
    record_type: type
    text_fields: tuple[str, ...] = ()
    hub_normalizer: str | None = None
    hub_task: str = "text-classification"
    prediction_dtype: Any = np.int64
    predicts: str = CLASSES
    decodes: bool = False

    def sequences(self, spec: TaskEntry) -> int:
        """Sequences the model reads per example (one; a multiple-choice example one per choice): what a plan multiplies tokens by."""
        return 1

    # The catalog and the data stage.

    def spec_problem(self, spec: TaskEntry) -> str | None:
        """Why a catalog entry of this family is incomplete (a field the family needs), or None."""
        return None

    def record_problem(self, record: Any, spec: TaskEntry) -> str | None:
        """Why a well-typed record with non-empty text is still malformed for ``spec``, or None."""
        return None

    def for_task(self, spec: TaskEntry) -> Family:
        """The family as one task uses it (bound to settings of its catalog entry): by default itself."""
        return self

    def from_row(self, row: dict[str, Any]) -> Any:
        """Rebuild a record from a stored (Parquet) row; other columns are ignored."""
        names = {f.name for f in dataclasses.fields(self.record_type)}
        return self.record_type(**{k: v for k, v in row.items() if k in names})

    @abc.abstractmethod
    def model_inputs(self, record: Any) -> tuple[str, str | None]:
        """The text (or text pair) the model reads for a record, for the length statistics."""

    # Features and batches.

    @abc.abstractmethod
    def encode(self, records: list[Any], tokenizer, max_length: int, max_target_length: int = 64) -> tuple[list[dict[str, Any]], int]:
        """Features for the records, and how many records were dropped (an answer cut off by truncation).

        Args:
            records: the family's records.
            tokenizer: the backbone's tokenizer.
            max_length: inputs are truncated to this many tokens.
            max_target_length: generated targets are cut to this many tokens.
        """

    @abc.abstractmethod
    def collate(self, features: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
        """Tensors for one micro-batch, padded to its longest member; ``labels`` holds the targets."""

    def examples(self, features: list[dict[str, Any]]) -> int:
        """How many examples the features encode (what proportional task sampling counts): by default one each."""
        return len(features)

    def length(self, feature: dict[str, Any]) -> int:
        """A feature's size in tokens, which length-grouped training batches sort by and budget."""
        return len(feature["input_ids"])

    def longest(self, feature: dict[str, Any]) -> int:
        """A feature's longest token sequence, which evaluation sorts its batches by."""
        return len(feature["input_ids"])

    # The model.

    def head_name(self, spec: TaskEntry) -> str:
        """The head a task trains: by default its own, named after the task."""
        return spec.name

    @abc.abstractmethod
    def head_shape(self, spec: TaskEntry) -> dict:
        """What the task's head needs to be rebuilt (``{"kind": ..., "outputs": ...}``, as in heads.json)."""

    @abc.abstractmethod
    def build_head(self, shape: dict, encoder: nn.Module) -> nn.Module:
        """A new head of ``shape`` over ``encoder``."""

    @abc.abstractmethod
    def forward(self, model: MultiTaskModel, head: str, batch: dict[str, torch.Tensor]) -> Any:
        """The logits of ``model``'s ``head`` for a collated batch (``model.encode`` runs the encoder)."""

    # The loss.

    @abc.abstractmethod
    def loss(self, logits: Any, labels: torch.Tensor) -> torch.Tensor:
        """The training loss of ``forward``'s logits against the batch's ``labels``."""

    def scaled_loss(self, logits: Any, labels: torch.Tensor, scale: float) -> torch.Tensor:
        """The loss times the task's ``scale`` (1/log n(i), or 1.0: not scaled)."""
        return self.loss(logits, labels) * scale

    def loss_n(self, spec: TaskEntry, max_length: int, vocab_size: int | None = None) -> int | None:
        """n(i) of the paper's loss scaling (the loss is divided by log n(i)), or None: not scaled."""
        return None

    def loss_n_rule(self, spec: TaskEntry) -> int | str | None:
        """n(i) as the catalog lists it: a number, or the rule that gives it at run time."""
        return None

    def r3f(
        self, model: MultiTaskModel, head: str, batch: dict[str, torch.Tensor], logits: Any, eps: float, noise: str = "uniform",
    ) -> torch.Tensor:
        """R3F: the divergence between predictions on the input embeddings and on noised embeddings.

        The noisy batch keeps ``input_ids`` beside ``inputs_embeds``: an encoder reads the embeddings
        alone; a seq2seq backbone's encoder reads them, its decoder the clean ids (as fairseq's R3F
        noises BART's encoder input).

        Args:
            model: the multi-task model (its encoder's input embeddings, a seq2seq backbone's shared ones, are noised).
            head: the head that produced ``logits``.
            batch: the collated micro-batch.
            logits: the clean predictions.
            eps: scale of the noise added to the embeddings.
            noise: its distribution, ``uniform`` in [-eps, eps] or ``normal`` N(0, eps^2) (see ``r3f_noise``).
        """
        embeds = model.encoder.get_input_embeddings()(batch["input_ids"]).detach()  # as fairseq: no gradient to the table through the noise
        noisy = {**batch, "inputs_embeds": embeds + r3f_noise(embeds, eps, noise)}
        return self.divergence(logits, model(head, self, noisy), batch)

    def divergence(self, logits: Any, noisy_logits: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """R3F's penalty between clean and noisy logits: by default their symmetric KL (see ``symmetric_kl``)."""
        return symmetric_kl(logits, noisy_logits)

    # Evaluation.

    def batches(self, model: nn.Module, features: list[dict[str, Any]], pad_id: int, batch_size: int):
        """(indices, collated batch on the model's device), shortest inputs first."""
        device = next(model.parameters()).device
        order = sorted(range(len(features)), key=lambda i: self.longest(features[i]))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = self.collate([features[i] for i in idx], pad_id)
            yield idx, devices.to_device(batch, device)

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
    ) -> Any:
        """Predictions in the order of ``features``, batched, without gradients, the model's mode kept.

        By default an array (``prediction_dtype``) of ``decide`` over the head's logits.

        Args:
            model: the multi-task model.
            head: the head to predict with.
            features: encoded examples of one task.
            pad_id: the tokenizer's padding id.
            batch_size: examples per forward pass.
            tokenizer: decodes generated text (for families that generate).
            max_new_tokens: the longest generated output (for families that generate).
            num_beams: beams of the beam search (for families that generate; 1: greedy).
        """
        out = np.empty(len(features), dtype=self.prediction_dtype)
        with inference(model):
            for idx, batch in self.batches(model, features, pad_id, batch_size):
                out[idx] = self.decide(model(head, self, batch)).cpu().numpy()
        return out

    def decide(self, logits: torch.Tensor) -> torch.Tensor:
        """Predictions from a batch's logits: by default the highest-scoring class."""
        return logits.argmax(-1)

    def references(self, features: list[dict[str, Any]]) -> Any:
        """What the metrics compare ``predict``'s output with: by default the features' labels."""
        return np.array([f["labels"] for f in features])
