"""Backbone kinds: how a backbone of one kind loads, which pooling it reads by default, which states
its heads read and which head writes its summaries; one registry member each.

A backbone's kind follows from its Hugging Face config (``kind_of``): the one kind that claims the
config, or ``encoder`` when none does. Built in are ``encoder`` (``AutoModel``: heads read its last
hidden states, summaries come from a decoder warm-started from it) and ``seq2seq`` (BART, T5:
``AutoModelForSeq2SeqLM``, see ``muppet_core.models.seq2seq``).

The registry is filled here with the built-in kinds; ``KINDS.register_object`` adds one built
elsewhere (a plugin's, or a test's).
"""

from __future__ import annotations

import torch
from torch import nn

# Imported here, once, rather than inside the loaders: transformers resolves these names lazily,
# and that first resolution is not safe when several data or fine-tune tasks load at once.
from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM

from muppet_core.errors import BackboneError, first_line
from muppet_core.models.heads import DecoderHead
from muppet_core.models.inputs import TEXT_KEYS
from muppet_core.models.seq2seq import OwnDecoderHead, decoder_states
from muppet_core.registry import Registry

FALLBACK = "encoder"
"""The kind of a backbone no other kind claims."""


def backbone_config(directory: str):
    """The Hugging Face config of the backbone in ``directory`` (no model code from it is run).

    Raises:
        BackboneError: there is no readable config.
    """
    try:
        return AutoConfig.from_pretrained(directory, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise BackboneError(f"backbone '{directory}' could not be loaded: {first_line(exc)}") from None


def from_pretrained(model_class, directory: str) -> nn.Module:
    """``model_class`` loaded from the safetensors weights in ``directory``, running no model code of its own.

    Raises:
        BackboneError: the weights cannot be loaded.
    """
    try:
        return model_class.from_pretrained(directory, use_safetensors=True, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise BackboneError(f"backbone '{directory}' could not be loaded: {first_line(exc)}") from None


class BackboneKind:
    """How backbones of one kind load, pool, encode and summarize. A subclass overrides ``claims``
    (except the fallback, ``encoder``) and whatever of the rest differs from an encoder's."""

    default_pooling: str = "cls"
    """The pooling heads read when neither the pipeline nor the backbone's folder names one (``cls``, ``mean`` or ``eos``)."""

    def claims(self, config) -> bool:
        """Whether a backbone with the Hugging Face ``config`` is of this kind."""
        return False

    def load(self, directory: str) -> nn.Module:
        """The backbone in ``directory`` (a model directory with safetensors weights)."""
        return from_pretrained(AutoModel, directory)

    def pooling_problem(self, pooling: str, config) -> str | None:
        """Why heads cannot read ``pooling`` on this backbone, or None."""
        return None

    def encode(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, L, H] the states the heads read: the last hidden states over the batch's token ids (or ``inputs_embeds``)."""
        keys = ("inputs_embeds", "attention_mask", "token_type_ids") if "inputs_embeds" in batch else TEXT_KEYS
        return model(**{k: batch[k] for k in keys if k in batch}).last_hidden_state

    def generation_head(self, encoder: nn.Module) -> nn.Module:
        """The summarization head: a decoder warm-started from the encoder and cross-attending to it."""
        return DecoderHead(encoder)


class EncoderKind(BackboneKind):
    """An encoder (BERT, RoBERTa, MiniLM), as ``BackboneKind`` reads one: every backbone no other kind claims."""


class Seq2SeqKind(BackboneKind):
    """An encoder-decoder (BART, T5): heads read its decoder, which also writes its summaries."""

    default_pooling = "eos"

    def claims(self, config) -> bool:
        """A config with ``is_encoder_decoder``."""
        return bool(getattr(config, "is_encoder_decoder", False))

    def load(self, directory: str) -> nn.Module:
        """The whole ``AutoModelForSeq2SeqLM``."""
        return from_pretrained(AutoModelForSeq2SeqLM, directory)

    def pooling_problem(self, pooling: str, config) -> str | None:
        """``cls``: the decoder's first state has seen only the start token."""
        if pooling != "cls":
            return None
        return (
            f"pooling 'cls' would read the first decoder state of {config.model_type} backbone '{config.name_or_path}', "
            "which has seen only the start token: set pooling to 'eos' (a seq2seq backbone's default) or 'mean'"
        )

    def encode(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The decoder's final states (see ``seq2seq.decoder_states``)."""
        return decoder_states(model, batch)

    def generation_head(self, encoder: nn.Module) -> nn.Module:
        """The backbone's own decoder (``OwnDecoderHead``)."""
        return OwnDecoderHead()


SEQ2SEQ = Seq2SeqKind()

KINDS = Registry("backbone kind")
KINDS.register_object(FALLBACK, EncoderKind())
KINDS.register_object("seq2seq", SEQ2SEQ)


def kind_of(config) -> BackboneKind:
    """The kind of a backbone with the Hugging Face ``config``: the one kind that claims it, else ``encoder``.

    Raises:
        BackboneError: several kinds claim it (one line).
    """
    claiming = [name for name in KINDS.names() if KINDS.get(name).claims(config)]
    if len(claiming) > 1:
        raise BackboneError(f"backbone '{config.name_or_path}' is claimed by several backbone kinds: {', '.join(claiming)}")
    return KINDS.get(claiming[0] if claiming else FALLBACK)
