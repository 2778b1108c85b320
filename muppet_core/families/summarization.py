"""Summarization: a document and its summary, written by the one shared ``generation`` head, the one
the backbone's kind gives (``muppet_core.models.kinds``): for an encoder backbone a decoder
warm-started from the encoder and cross-attending to it, for a seq2seq backbone (BART, T5) its own
decoder (``muppet_core.models.seq2seq.OwnDecoderHead``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from muppet_core.evaluation.metrics import TEXT
from muppet_core.families.base import IGNORE_INDEX, MAX_NEW_TOKENS, Family, TaskEntry, inference, pad, pad_text, symmetric_kl, text_rows
from muppet_core.lazy import LazyModule

if TYPE_CHECKING:
    from muppet_core.models.multitask import MultiTaskModel

torch = LazyModule("torch")
F = LazyModule("torch.nn.functional")
nn = LazyModule("torch.nn")


GENERATION_HEAD = "generation"
LABEL_SMOOTHING = 0.1


@dataclass(frozen=True)
class SummarizationRecord:
    """A document and its reference summary (the decoder's target)."""

    document: str
    summary: str
    id: str = ""


def decoder_start_id(tokenizer) -> int:
    """The token the summarization decoder starts from: the one the tokenizer puts first ([CLS], or
    <s>), or for a tokenizer that puts none before the text (T5's) its padding token, as T5 starts."""
    for token in (tokenizer.cls_token_id, tokenizer.bos_token_id, tokenizer.pad_token_id):
        if token is not None:
            return token
    raise ValueError("the tokenizer has no [CLS], <s> or padding token to start the summarization decoder from")


def decoder_stop_id(tokenizer) -> int:
    """The token that ends a summary ([SEP], or </s>): the last token the tokenizer appends."""
    return tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id


class SummarizationFamily(Family):
    """Label-smoothed (0.1) token cross-entropy over the summary; n(i) is the vocabulary size; R3F
    compares the decoder's token distributions; the prediction is the decoder's output (beam search
    with ``num_beams`` > 1), as text."""

    name = "summarization"
    record_type = SummarizationRecord
    text_fields = ("document", "summary")
    hub_normalizer = "muppet_core.tasks.normalizers.summarization:from_hub_fields"
    hub_task = "summarization"
    predicts = TEXT
    decodes = True

    def model_inputs(self, record: SummarizationRecord) -> tuple[str, str | None]:
        """The document alone."""
        return record.document, None

    def encode(self, records: list[Any], tokenizer, max_length: int, max_target_length: int = 64) -> tuple[list[dict[str, Any]], int]:
        """The truncated document, and the summary cut to ``max_target_length`` tokens: the decoder
        reads ``[CLS] summary`` and predicts ``summary [SEP]`` (BART's tokenizer: ``<s> summary`` and
        ``summary </s>``; a tokenizer that puts no token first, T5's: ``<pad> summary`` and
        ``summary </s>``). Evaluation also reads the whole reference ``summary``, which ``collate`` ignores."""
        if not records:
            return [], 0
        sources = text_rows(tokenizer([r.document for r in records], truncation=True, max_length=max_length), len(records))
        lead = int(tokenizer("a")["input_ids"][0] in {tokenizer.cls_token_id, tokenizer.bos_token_id})  # a token before the text
        targets = tokenizer([r.summary for r in records], truncation=True, max_length=max_target_length + lead)["input_ids"]
        start = decoder_start_id(tokenizer)
        return [
            {**src, "decoder_input_ids": [start, *tgt[lead:-1]], "labels": tgt[lead:], "summary": r.summary}
            for src, tgt, r in zip(sources, targets, records)
        ], 0

    def collate(self, features: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
        """Padded inputs, padded decoder inputs with their mask, and [B, T] labels (padding ignored by the loss)."""
        batch = pad_text(features, pad_id, max(len(f["input_ids"]) for f in features))
        target = max(len(f["labels"]) for f in features)
        batch["decoder_input_ids"] = torch.tensor(pad([f["decoder_input_ids"] for f in features], pad_id, target))
        batch["decoder_attention_mask"] = torch.tensor(pad([[1] * len(f["decoder_input_ids"]) for f in features], 0, target))
        batch["labels"] = torch.tensor(pad([f["labels"] for f in features], IGNORE_INDEX, target))
        return batch

    def head_name(self, spec: TaskEntry) -> str:
        """The shared ``generation`` decoder."""
        return GENERATION_HEAD

    def head_shape(self, spec: TaskEntry) -> dict:
        """A decoder (its size is the encoder's)."""
        return {"kind": "decoder", "outputs": 0}

    def build_head(self, shape: dict, encoder: nn.Module) -> nn.Module:
        """The generation head of the backbone's kind: a decoder warm-started from an encoder, or a seq2seq backbone's own decoder."""
        from muppet_core.models.kinds import kind_of

        return kind_of(encoder.config).generation_head(encoder)

    def forward(self, model: MultiTaskModel, head: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, T, vocabulary] next-token logits of the decoder over the encoder's states."""
        return model.heads[head].logits(model, batch)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Label-smoothed token cross-entropy, padding positions skipped."""
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX, label_smoothing=LABEL_SMOOTHING)

    def loss_n(self, spec: TaskEntry, max_length: int, vocab_size: int | None = None) -> int | None:
        """The vocabulary size."""
        return vocab_size

    def loss_n_rule(self, spec: TaskEntry) -> int | str | None:
        """The vocabulary size, known at run time."""
        return "vocabulary size"

    def divergence(self, logits: torch.Tensor, noisy_logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Symmetric KL of the decoder's next-token distributions (the noised pass's encoder read noised
        embeddings, its decoder the same clean ids), averaged over the summary's non-padding positions,
        as the token cross-entropy is: ``r3f_lambda`` weighs both per predicted token. (fairseq's
        ``label_smoothed_cross_entropy_r3f`` divides its sum over all positions, padding included, by the
        number of summaries instead.)"""
        real = batch["labels"] != IGNORE_INDEX
        return symmetric_kl(logits[real], noisy_logits[real])

    def generate(
        self, model: MultiTaskModel, head: str, batch: dict[str, torch.Tensor], start_id: int, stop_id: int, max_new_tokens: int,
        num_beams: int = 1,
    ) -> list[list[int]]:
        """The decoder ``head``'s output for a collated batch, greedy or by beam search, without gradients
        (see ``DecoderHead.decode`` and ``OwnDecoderHead.decode``)."""
        with torch.no_grad():
            return model.heads[head].decode(model, batch, start_id, stop_id, max_new_tokens, num_beams)

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
        """Summaries (at most ``max_new_tokens`` tokens, ending at [SEP] or </s>; greedy, or beam search
        over ``num_beams`` beams), decoded to text.

        Raises:
            ValueError: no tokenizer to decode the summaries with.
        """
        if tokenizer is None:
            raise ValueError("evaluating a summarization task needs the tokenizer to decode summaries")
        start_id, stop_id = decoder_start_id(tokenizer), decoder_stop_id(tokenizer)
        out = [""] * len(features)
        with inference(model):
            for idx, batch in self.batches(model, features, pad_id, batch_size):
                for i, tokens in zip(idx, self.generate(model, head, batch, start_id, stop_id, max_new_tokens, num_beams)):
                    out[i] = tokenizer.decode(tokens, skip_special_tokens=True).strip()
        return out

    def references(self, features: list[dict[str, Any]]) -> list[str]:
        """Each feature's whole reference summary."""
        return [f["summary"] for f in features]


FAMILY = SummarizationFamily()
