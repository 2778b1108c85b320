"""The multi-task model: a shared encoder and a named ModuleDict of heads.

Classification datasets each get a head named after the dataset; all multiple-choice datasets
share the ``ranking`` head and all extractive datasets share the ``span`` head (the paper found
per-dataset heads overfit for those families).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from muppet_core.data.encoding import TEXT_KEYS
from muppet_core.models.heads import ClassificationHead, DecoderHead, SpanHead
from muppet_core.tasks.catalog import TaskSpec

RANKING_HEAD = "ranking"
SPAN_HEAD = "span"
GENERATION_HEAD = "generation"


def head_name(spec: TaskSpec) -> str:
    """The head a task trains: its own for classification/regression, the shared one otherwise."""
    return {"multiple_choice": RANKING_HEAD, "span": SPAN_HEAD, "summarization": GENERATION_HEAD}.get(spec.family, spec.name)


def head_shape(spec: TaskSpec) -> dict:
    """What a head needs to be rebuilt: its kind and output size."""
    if spec.family == "span":
        return {"kind": "span", "outputs": 2}
    if spec.family == "summarization":
        return {"kind": "decoder", "outputs": 0}
    if spec.family == "classification":
        return {"kind": "classification", "outputs": len(spec.labels or [])}
    return {"kind": "classification", "outputs": 1}


def _build_head(shape: dict, encoder: nn.Module) -> nn.Module:
    hidden = encoder.config.hidden_size
    if shape["kind"] == "decoder":
        return DecoderHead(encoder)
    return SpanHead(hidden) if shape["kind"] == "span" else ClassificationHead(hidden, shape["outputs"])


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors under the attention mask."""
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class MultiTaskModel(nn.Module):
    """A shared encoder with named heads.

    Args:
        encoder: a Hugging Face encoder (``AutoModel``).
        head_shapes: head name -> ``{"kind": ..., "outputs": ...}``.
    """

    def __init__(self, encoder: nn.Module, head_shapes: dict[str, dict]):
        super().__init__()
        self.encoder = encoder
        self.head_shapes = dict(head_shapes)
        self.heads = nn.ModuleDict({name: _build_head(shape, encoder) for name, shape in head_shapes.items()})

    def _encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        keys = ("inputs_embeds", "attention_mask", "token_type_ids") if "inputs_embeds" in batch else TEXT_KEYS
        return self.encoder(**{k: batch[k] for k in keys if k in batch}).last_hidden_state

    def forward(self, head: str, family: str, batch: dict[str, torch.Tensor]):
        """Logits of ``head`` for a collated batch of ``family``.

        Returns:
            [B, classes] for classification, [B, 1] for regression, [B, choices] for multiple
            choice (padding choices at -inf), a (start, end) pair of [B, L] for span, or
            [B, T, vocabulary] for summarization.
        """
        if family == "multiple_choice":
            b, c, length = batch["attention_mask"].shape
            flat = {k: v.reshape(b * c, length, *v.shape[3:]) for k, v in batch.items() if k in (*TEXT_KEYS, "inputs_embeds")}
            hidden = self._encode(flat)
            scores = self.heads[head](mean_pool(hidden, flat["attention_mask"])).view(b, c)
            return scores.masked_fill(~batch["choice_mask"], float("-inf"))
        hidden = self._encode(batch)
        if family == "summarization":
            return self.heads[head](batch["decoder_input_ids"], batch["decoder_attention_mask"], hidden, batch["attention_mask"])
        if family == "span":
            logits = self.heads[head](hidden)
            return logits[..., 0], logits[..., 1]
        return self.heads[head](mean_pool(hidden, batch["attention_mask"]))

    @torch.no_grad()
    def generate(self, head: str, batch: dict[str, torch.Tensor], start_id: int, stop_id: int, max_new_tokens: int) -> list[list[int]]:
        """Greedy output of the decoder ``head`` for a collated summarization batch (see DecoderHead.generate)."""
        hidden = self._encode(batch)
        return self.heads[head].generate(hidden, batch["attention_mask"], start_id, stop_id, max_new_tokens)

    def save(self, directory: Path, tokenizer) -> None:
        """Encoder and tokenizer via save_pretrained (safetensors), heads as heads.safetensors."""
        directory = Path(directory)
        self.encoder.save_pretrained(directory / "encoder", safe_serialization=True)
        tokenizer.save_pretrained(directory / "encoder")
        state = {k: v.detach().clone().contiguous() for k, v in self.heads.state_dict().items()}
        save_file(state, str(directory / "heads.safetensors"))
        (directory / "heads.json").write_text(json.dumps(self.head_shapes, indent=1, sort_keys=True))

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


def build_multitask_model(encoder: nn.Module, specs: list[TaskSpec]) -> MultiTaskModel:
    """A model with the heads the given tasks train (shared heads created once)."""
    shapes: dict[str, dict] = {}
    for spec in specs:
        shapes.setdefault(head_name(spec), head_shape(spec))
    return MultiTaskModel(encoder, shapes)
