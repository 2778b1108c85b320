"""The multi-task model: a shared encoder (or a seq2seq backbone) and a named ModuleDict of heads.

Each task's family decides and builds its head (``muppet_core.families.build``): classification datasets each get a
head named after the dataset; all multiple-choice datasets share the ``ranking`` head and all
extractive datasets share the ``span`` head (the paper found per-dataset heads overfit for those
families). The backbone's kind (``muppet_core.models.kinds``) says which states the heads read: an
encoder's last hidden states, a seq2seq backbone's decoder's (see ``muppet_core.models.seq2seq``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from muppet_core.errors import BackboneError
from muppet_core.models.kinds import kind_of
from muppet_core.models.seq2seq import last_eos


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors under the attention mask."""
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class HeadFamily(Protocol):
    """What the model asks of a task family (``muppet_core.families``, the layer above): its heads' forward pass."""

    def forward(self, model: MultiTaskModel, head: str, batch: dict[str, torch.Tensor]) -> Any: ...


POOLING_FILE = "pooling.txt"  # beside heads.json: the pooling the saved heads were trained with
POOLINGS = ("cls", "mean", "eos")


class MultiTaskModel(nn.Module):
    """A shared encoder with named heads.

    Args:
        encoder: a Hugging Face encoder (``AutoModel``) or seq2seq model (``AutoModelForSeq2SeqLM``).
        heads: head name -> head module.
        head_shapes: head name -> ``{"kind": ..., "outputs": ...}``, what rebuilds the head (heads.json).
        pooling: ``cls`` (the first token's vector; refused where the backbone's kind refuses it, as
            a seq2seq backbone's, whose decoder's first state has seen only the start token), ``mean`` (the masked mean of the tokens) or
            ``eos`` (the last end-of-sequence token's vector, as BART's classification heads read).
    """

    def __init__(self, encoder: nn.Module, heads: dict[str, nn.Module], head_shapes: dict[str, dict], pooling: str = "mean"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling '{pooling}'; known: {', '.join(POOLINGS)}")
        self.encoder = encoder
        self.head_shapes = dict(head_shapes)
        self.heads = nn.ModuleDict(heads)
        self.pooling = pooling
        self.kind = kind_of(encoder.config)
        self.eos_id = getattr(encoder.config, "eos_token_id", None)
        if pooling == "eos" and not isinstance(self.eos_id, int):
            raise ValueError("pooling 'eos' needs a backbone whose config names one eos_token_id")
        if problem := self.kind.pooling_problem(pooling, encoder.config):
            raise BackboneError(problem)

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, L, H] the states the heads read for a batch's token ids (or ``inputs_embeds``) and masks,
        as the backbone's kind reads them (an encoder's last hidden states, a seq2seq backbone's decoder's)."""
        return self.kind.encode(self.encoder, batch)

    def pool(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One vector per sequence of ``batch``: its first token's vector (``cls``), the mean of its token
        vectors under the attention mask (``mean``) or its last end-of-sequence token's vector (``eos``)."""
        if self.pooling == "eos":
            return hidden[torch.arange(len(hidden), device=hidden.device), last_eos(batch["input_ids"], batch["attention_mask"], self.eos_id)]
        return hidden[:, 0] if self.pooling == "cls" else mean_pool(hidden, batch["attention_mask"])

    def forward(self, head: str, family: HeadFamily, batch: dict[str, torch.Tensor]):
        """Logits of ``head`` for a collated batch of ``family`` (see the family's ``forward``)."""
        return family.forward(self, head, batch)

    def save(self, directory: Path, tokenizer) -> None:
        """Encoder (a seq2seq backbone whole) and tokenizer via save_pretrained (safetensors), heads as heads.safetensors."""
        directory = Path(directory)
        self.encoder.save_pretrained(directory / "encoder", safe_serialization=True)
        tokenizer.save_pretrained(directory / "encoder")
        state = {k: v.detach().clone().contiguous() for k, v in self.heads.state_dict().items()}
        save_file(state, str(directory / "heads.safetensors"))
        (directory / "heads.json").write_text(json.dumps(self.head_shapes, indent=1, sort_keys=True))
        (directory / POOLING_FILE).write_text(self.pooling)

    def load_heads(self, directory: Path, names: list[str] | None = None) -> list[str]:
        """Copy saved heads (all, or ``names``) whose shape matches; returns the names loaded."""
        saved_shapes = json.loads((Path(directory) / "heads.json").read_text())
        state = load_file(str(Path(directory) / "heads.safetensors"))
        loaded = []
        for name, shape in saved_shapes.items():
            if (names is None or name in names) and self.head_shapes.get(name) == shape:
                sub = {k.split(".", 1)[1]: v for k, v in state.items() if k.split(".", 1)[0] == name}
                self.heads[name].load_state_dict(sub)
                loaded.append(name)
        return loaded
