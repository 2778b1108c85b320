"""Task heads: one per classification dataset, one shared ranking head, one shared span head, and
for summarization a decoder warm-started from the encoder (an encoder backbone's; a seq2seq
backbone summarizes with its own decoder, see ``muppet_core.models.seq2seq``)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from muppet_core.models.decoding import Step, beam_search, cache_argument, greedy


DEFAULT_INIT_STD = 0.02
"""The standard deviation of a new head's weights where the backbone's config names none (BERT's)."""


def init_std(config) -> float:
    """The standard deviation a backbone initialises its linear layers with: ``initializer_range``
    (BERT, RoBERTa), ``init_std`` (BART), else 0.02."""
    for name in ("initializer_range", "init_std"):
        value = getattr(config, name, None)
        if isinstance(value, (int, float)) and value > 0:
            return float(value)
    return DEFAULT_INIT_STD


def init_linear(module: nn.Module, std: float) -> nn.Module:
    """Every ``nn.Linear`` of ``module`` drawn as fairseq's ``init_bert_params`` and Hugging Face's
    ``_init_weights`` draw a new head: weights from N(0, std^2), biases zero. Returns ``module``."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, mean=0.0, std=std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


class ClassificationHead(nn.Module):
    """Dense-tanh-dropout-projection over a pooled sentence vector (also used for regression).

    Args:
        hidden_size: encoder width.
        num_outputs: classes (1 for regression, 1 for the ranking head's score).
        dropout: dropout before each projection.
    """

    def __init__(self, hidden_size: int, num_outputs: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.out_proj = nn.Linear(hidden_size, num_outputs)

    @classmethod
    def for_encoder(cls, encoder: nn.Module, num_outputs: int) -> ClassificationHead:
        """A new head as wide as ``encoder``, with its hidden dropout (0.1 when its config names none),
        initialised as the backbone initialises its linear layers (``init_linear``)."""
        config = encoder.config
        return init_linear(cls(config.hidden_size, num_outputs, getattr(config, "hidden_dropout_prob", 0.1)), init_std(config))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.dense(self.dropout(pooled)))
        return self.out_proj(self.dropout(x))


class SpanHead(nn.Module):
    """Start and end logits for every token.

    Args:
        hidden_size: encoder width.
    """

    def __init__(self, hidden_size: int):
        super().__init__()
        self.qa_outputs = nn.Linear(hidden_size, 2)

    @classmethod
    def for_encoder(cls, encoder: nn.Module) -> SpanHead:
        """A new head as wide as ``encoder``, initialised as the backbone initialises its linear layers (``init_linear``)."""
        return init_linear(cls(encoder.config.hidden_size), init_std(encoder.config))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.qa_outputs(hidden)


class DecoderHead(nn.Module):
    """A causal decoder with cross-attention over the encoder's states, warm-started from the encoder
    (as EncoderDecoderModel.from_encoder_decoder_pretrained does); its language-model head is the
    summarization "head".

    Args:
        encoder: the shared encoder, whose config and weights the decoder starts from.
    """

    def __init__(self, encoder: nn.Module):
        super().__init__()
        from transformers import AutoModelForCausalLM

        config = copy.deepcopy(encoder.config)
        config.is_decoder, config.add_cross_attention, config.tie_word_embeddings = True, True, False
        self.decoder = AutoModelForCausalLM.from_config(config)
        getattr(self.decoder, self.decoder.base_model_prefix).load_state_dict(encoder.state_dict(), strict=False)
        with torch.no_grad():
            self.decoder.get_output_embeddings().weight.copy_(encoder.get_input_embeddings().weight)

    def forward(self, decoder_input_ids, decoder_attention_mask, encoder_hidden, encoder_mask) -> torch.Tensor:
        return self.decoder(
            input_ids=decoder_input_ids,
            attention_mask=decoder_attention_mask,
            encoder_hidden_states=encoder_hidden,
            encoder_attention_mask=encoder_mask,
        ).logits

    def logits(self, model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, T, vocabulary] next-token logits for the batch's ``decoder_input_ids`` over ``model``'s encoder states."""
        return self(batch["decoder_input_ids"], batch["decoder_attention_mask"], model.encode(batch), batch["attention_mask"])

    def _step(self, encoder_hidden: torch.Tensor, encoder_mask: torch.Tensor) -> Step:
        """One decoder step over ``encoder_hidden`` [N, L, H] with its mask, on the decoder's key/value cache."""
        key = cache_argument(self.decoder)

        def step(input_ids: torch.Tensor, cache):
            out = self.decoder(input_ids=input_ids, encoder_hidden_states=encoder_hidden, encoder_attention_mask=encoder_mask,
                               use_cache=True, **{key: cache})
            return out.logits[:, -1], out[key]

        return step

    def decode(self, model, batch: dict[str, torch.Tensor], start_id: int, stop_id: int, max_new_tokens: int, num_beams: int = 1) -> list[list[int]]:
        """Greedy output for a collated batch (see ``generate``), or beam search's with ``num_beams`` > 1 (see ``beam_search``)."""
        with torch.no_grad():
            hidden, mask = model.encode(batch), batch["attention_mask"]
            if num_beams == 1:
                return self.generate(hidden, mask, start_id, stop_id, max_new_tokens)
            return self.beam_search(hidden, mask, start_id, stop_id, max_new_tokens, num_beams)

    @torch.no_grad()
    def beam_search(self, encoder_hidden, encoder_mask, start_id: int, stop_id: int, max_new_tokens: int, num_beams: int) -> list[list[int]]:
        """Beam search from ``start_id`` as ``generate`` of Hugging Face runs it with ``num_beams`` beams,
        ``length_penalty`` 1 and ``early_stopping`` False (see ``muppet_core.models.decoding``).

        Returns:
            Each row's best hypothesis: its new token ids, without ``stop_id``, at most ``max_new_tokens``.
        """
        prompt = torch.full((encoder_hidden.shape[0], 1), start_id, dtype=torch.long, device=encoder_hidden.device)
        step = self._step(encoder_hidden.repeat_interleave(num_beams, 0), encoder_mask.repeat_interleave(num_beams, 0))
        return beam_search(step, prompt, stop_id, max_new_tokens, num_beams)

    @torch.no_grad()
    def generate(self, encoder_hidden, encoder_mask, start_id: int, stop_id: int, max_new_tokens: int) -> list[list[int]]:
        """Greedy decoding from ``start_id``, one token a step over the decoder's key/value cache.

        Returns:
            Each row's new token ids, up to (without) its first ``stop_id``, at most ``max_new_tokens``.
        """
        prompt = torch.full((encoder_hidden.shape[0], 1), start_id, dtype=torch.long, device=encoder_hidden.device)
        return greedy(self._step(encoder_hidden, encoder_mask), prompt, stop_id, max_new_tokens)
