"""A new head starts as fairseq's (``init_bert_params``) and Hugging Face's (``_init_weights``) heads
do: every linear layer's weights drawn from N(0, initializer_range^2), its biases zero. Torch's
default (uniform in +-1/sqrt(fan_in), biases too) starts MiniLM's heads five times wider, which
costs a short fine-tune its first updates."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import AutoModelForMultipleChoice, AutoModelForQuestionAnswering, AutoModelForSequenceClassification

from muppet_core.models.backbone import load_encoder
from muppet_core.families.build import build_multitask_model
from muppet_core.tasks.catalog import get_task

BENCHMARKS = ["rte", "stsb", "copa", "squad"]


def _linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def test_every_new_head_is_drawn_as_the_backbone_draws_its_layers(minilm_path):
    torch.manual_seed(0)
    encoder, _ = load_encoder(minilm_path)
    std = encoder.config.initializer_range
    model = build_multitask_model(encoder, [get_task(b) for b in BENCHMARKS])
    assert sorted(model.heads) == ["ranking", "rte", "span", "stsb"]
    weights = []
    for name, head in model.heads.items():
        for layer in _linears(head):
            assert torch.count_nonzero(layer.bias) == 0, name
            weights.append(layer.weight.detach().flatten())
    pooled = torch.cat(weights)
    assert pooled.mean().abs() < 5e-4 and pooled.std() == pytest.approx(std, rel=0.01)

    # Hugging Face's own heads over the same backbone, drawn by its _init_weights.
    peers = [AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=2).classifier,
             AutoModelForMultipleChoice.from_pretrained(minilm_path).classifier,
             AutoModelForQuestionAnswering.from_pretrained(minilm_path).qa_outputs]
    peer = torch.cat([layer.weight.detach().flatten() for p in peers for layer in _linears(p)])
    assert peer.std() == pytest.approx(std, rel=0.05)
    assert all(torch.count_nonzero(layer.bias) == 0 for p in peers for layer in _linears(p))
