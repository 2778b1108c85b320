"""A backbone kind defined and registered in this file alone: a toy encoder kind that claims BERT
configs marked ``toy_kind``, builds the model from the config (random weights; the saved ones are
never read) and reads ``mean`` pooling by default. The multi-task model of such a backbone is built
through the normal path (``load_encoder``, ``default_pooling``, ``build_multitask_model``), takes a
training step and writes summaries; a backbone two kinds claim is refused in one line."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, BertConfig, BertModel

from muppet_core.config import Optimization
from muppet_core.errors import BackboneError
from muppet_core.families import get_family
from muppet_core.families.build import build_multitask_model
from muppet_core.families.classification import ClassificationRecord
from muppet_core.families.summarization import GENERATION_HEAD, SummarizationRecord
from muppet_core.models.backbone import default_pooling, load_encoder
from muppet_core.models.heads import DecoderHead
from muppet_core.models.kinds import KINDS, EncoderKind, backbone_config, kind_of
from muppet_core.tasks.catalog import get_task
from muppet_core.training.loop import TaskStream, train
from muppet_core.training.settings import LoopSettings


class ToyKind(EncoderKind):
    """A BERT marked ``toy_kind`` in its config, built from that config with seed 0, pooled by its mean."""

    default_pooling = "mean"

    def __init__(self) -> None:
        self.encoded = 0

    def claims(self, config) -> bool:
        return bool(getattr(config, "toy_kind", False))

    def load(self, directory: str) -> torch.nn.Module:
        torch.manual_seed(0)
        return BertModel(backbone_config(directory))

    def encode(self, model, batch):
        self.encoded += 1
        return super().encode(model, batch)


@pytest.fixture
def toy():
    """The toy kind, registered for the test only."""
    kind = ToyKind()
    KINDS.register_object("toy", kind)
    try:
        yield kind
    finally:
        KINDS.unregister("toy")


@pytest.fixture(scope="module")
def toy_backbone(tmp_path_factory, minilm_path) -> str:
    """A random 2-layer BERT (hidden 32) whose config says ``toy_kind``, with MiniLM's tokenizer."""
    path = tmp_path_factory.mktemp("toy-kind")
    torch.manual_seed(1)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, toy_kind=True)
    BertModel(config).save_pretrained(path, safe_serialization=True)
    AutoTokenizer.from_pretrained(minilm_path).save_pretrained(path)
    return str(path)


def test_a_registered_kind_loads_pools_and_trains_its_backbone(toy, toy_backbone, tiny_backbone):
    assert kind_of(backbone_config(toy_backbone)) is toy and default_pooling(toy_backbone) == "mean"
    assert default_pooling(tiny_backbone) == "cls"  # the same BERT without the mark: the encoder kind's
    encoder, tok = load_encoder(toy_backbone)
    saved = load_file(f"{toy_backbone}/model.safetensors")["embeddings.word_embeddings.weight"]
    assert not torch.equal(encoder.embeddings.word_embeddings.weight, saved)  # the toy built it from the config
    assert encoder.training

    rte, xsum = get_task("rte"), get_task("xsum")
    model = build_multitask_model(encoder, [rte, xsum], default_pooling(toy_backbone))
    assert model.kind is toy and model.pooling == "mean" and isinstance(model.heads[GENERATION_HEAD], DecoderHead)

    classification = get_family("classification").for_task(rte)
    records = [ClassificationRecord(f"premise {i}", f"hypothesis {i % 3}", i % 2) for i in range(8)]
    features, _ = classification.encode(records, tok, 32)
    settings = LoopSettings(Optimization(warmup_ratio=0.0, weight_decay=0.0), steps=1, tasks_per_step=1, micro_batch_size=8,
                            learning_rate=1e-3, seed=0)
    before = {k: v.clone() for k, v in model.heads["rte"].state_dict().items()}
    summary = train(model, {"rte": TaskStream(classification, "rte", features, 1.0)}, settings, tok.pad_token_id)
    assert toy.encoded >= 1 and math.isfinite(summary["history"][-1]["loss"])  # the model read its states through the kind
    assert any(not torch.equal(v, before[k]) for k, v in model.heads["rte"].state_dict().items())  # and took the step

    summarization = get_family("summarization").for_task(xsum)
    docs, _ = summarization.encode([SummarizationRecord("the cat sat on the mat", "a cat"), SummarizationRecord("rain all day", "rain")], tok, 32)
    written = summarization.predict(model, GENERATION_HEAD, docs, tok.pad_token_id, tokenizer=tok, max_new_tokens=4)
    assert len(written) == 2 and all(isinstance(text, str) for text in written)


def test_a_backbone_two_kinds_claim_is_refused_in_one_line(toy, toy_backbone):
    KINDS.register_object("rival", ToyKind())
    try:
        with pytest.raises(BackboneError) as refused:
            load_encoder(toy_backbone)
    finally:
        KINDS.unregister("rival")
    assert str(refused.value) == f"backbone '{toy_backbone}' is claimed by several backbone kinds: rival, toy"

