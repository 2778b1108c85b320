"""Seq2seq backbones (BART, T5: ``AutoModelForSeq2SeqLM``) as the paper used BART: what the
``seq2seq`` backbone kind (``muppet_core.models.kinds``) reads and writes with.

The classification, ranking and span heads read the decoder: the input goes to the encoder and,
shifted right behind the decoder's start token, to the decoder (as BartForSequenceClassification
does); a sentence is the decoder's state at its last end-of-sequence token, a token its own decoder
state. Summarization is the backbone's own decoder and language-model head (``OwnDecoderHead``):
no second decoder is stacked on it. R3F noises the encoder's input embeddings, those of the
embedding matrix the encoder and decoder share.
"""

from __future__ import annotations

import torch
from torch import nn

from muppet_core.models.decoding import beam_search, cache_argument, greedy


def decoder_start(model: nn.Module) -> int:
    """The token the backbone's decoder starts from (BART: ``</s>``, T5: ``<pad>``)."""
    config = model.config
    start = config.decoder_start_token_id
    return config.pad_token_id if start is None else start


def shift_right(input_ids: torch.Tensor, start: int) -> torch.Tensor:
    """``input_ids`` one position to the right behind ``start`` (the last token falls off)."""
    return torch.cat([input_ids.new_full((input_ids.shape[0], 1), start), input_ids[:, :-1]], 1)


def last_eos(input_ids: torch.Tensor, attention_mask: torch.Tensor, eos_id: int) -> torch.Tensor:
    """[B] position of each row's last end-of-sequence token under the mask (a row without one: its
    last real token)."""
    positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
    eos = (input_ids == eos_id) & attention_mask.bool()
    last = torch.where(eos, positions, -1).max(1).values
    return torch.where(last >= 0, last, (attention_mask.sum(1) - 1).clamp(min=0))


def _encoder_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The encoder's token ids, or the (noised) ``inputs_embeds`` R3F passes instead."""
    key = "inputs_embeds" if "inputs_embeds" in batch else "input_ids"
    return {key: batch[key], "attention_mask": batch["attention_mask"]}


def decoder_states(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """[B, L, H] final decoder states over the input: the encoder reads ``input_ids`` (or
    ``inputs_embeds``), the decoder reads ``input_ids`` shifted right behind its start token and
    attends to the encoder's states (the padding at the right end is hidden by the causal mask)."""
    encoded = model.get_encoder()(**_encoder_inputs(batch)).last_hidden_state
    return model.get_decoder()(
        input_ids=shift_right(batch["input_ids"], decoder_start(model)),
        encoder_hidden_states=encoded,
        encoder_attention_mask=batch["attention_mask"],
    ).last_hidden_state


class OwnDecoderHead(nn.Module):
    """Summarization with the backbone's own decoder and language-model head; it holds no weights.

    A feature's decoder input starts with the tokenizer's own first token (BART's ``<s>``) or, for a
    tokenizer that puts none (T5's), with the padding token. Where that is not the decoder's start
    token (BART starts from ``</s>``) the start token is put in front, as BART reads ``</s> <s> ...``,
    and the logits of that extra position are left out, so that they line up with the labels.
    """

    def _prefix(self, model: nn.Module, first: torch.Tensor) -> torch.Tensor:
        start = decoder_start(model)
        if bool((first == start).all()):
            return first
        return torch.cat([torch.full_like(first, start), first], 1)

    def logits(self, model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, T, vocabulary] next-token logits for the batch's ``decoder_input_ids``."""
        lm = model.encoder
        prefix = self._prefix(lm, batch["decoder_input_ids"][:, :1])
        extra = prefix.shape[1] - 1
        decoder_ids = torch.cat([prefix[:, :extra], batch["decoder_input_ids"]], 1)
        mask = torch.cat([torch.ones_like(prefix[:, :extra]), batch["decoder_attention_mask"]], 1)
        out = lm(**_encoder_inputs(batch), decoder_input_ids=decoder_ids, decoder_attention_mask=mask)
        return out.logits[:, extra:]

    @torch.no_grad()
    def decode(self, model, batch: dict[str, torch.Tensor], start_id: int, stop_id: int, max_new_tokens: int, num_beams: int = 1) -> list[list[int]]:
        """Greedy decoding, or beam search with ``num_beams`` > 1 (``muppet_core.models.decoding``), from
        ``start_id`` over the backbone's key/value cache; the checkpoint's generation config plays no part.

        Returns:
            Each row's new token ids, up to (without) its first ``stop_id``, at most ``max_new_tokens``.
        """
        from transformers.modeling_outputs import BaseModelOutput

        lm = model.encoder
        prompt = self._prefix(lm, batch["input_ids"].new_full((batch["input_ids"].shape[0], 1), start_id))
        hidden = lm.get_encoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        encoded = BaseModelOutput(last_hidden_state=hidden.repeat_interleave(num_beams, 0))
        mask, key = batch["attention_mask"].repeat_interleave(num_beams, 0), cache_argument(lm)

        def step(decoder_input_ids: torch.Tensor, cache):
            out = lm(encoder_outputs=encoded, attention_mask=mask, decoder_input_ids=decoder_input_ids, use_cache=True, **{key: cache})
            return out.logits[:, -1], out[key]

        if num_beams == 1:
            return greedy(step, prompt, stop_id, max_new_tokens)
        return beam_search(step, prompt, stop_id, max_new_tokens, num_beams)
