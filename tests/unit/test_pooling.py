"""Pooling is a setting: cls reads the first token, mean the masked mean; the default is the backbone's own."""

from __future__ import annotations

import pytest
import torch

from muppet_core.config import FinetuneConfig
from muppet_core.data.prepare import prepare_task
from muppet_core.families import get_family
from muppet_core.families.build import build_multitask_model
from muppet_core.models.backbone import Variant, default_pooling, load_encoder
from muppet_core.tasks.catalog import get_task
from muppet_core.training.finetune import FinetuneRun, finetune


def test_default_pooling_follows_the_backbone(minilm_path, tiny_backbone, tmp_path):
    assert default_pooling(minilm_path) == "mean"  # sentence-transformers: 1_Pooling says mean tokens
    assert default_pooling(tiny_backbone) == "cls"  # a plain BERT: the first token, as the paper's heads
    encoder, tokenizer = load_encoder(tiny_backbone)
    build_multitask_model(encoder, [get_task("rte")], "mean").save(tmp_path / "pft", tokenizer)
    assert default_pooling(str(tmp_path / "pft" / "encoder")) == "mean"  # a saved model keeps the pooling it trained with


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_heads_read_the_pooled_vector(pooling, tiny_backbone):
    spec = get_task("rte")
    family = get_family("classification")
    encoder, tokenizer = load_encoder(tiny_backbone)
    torch.manual_seed(0)
    model = build_multitask_model(encoder, [spec], pooling).eval()
    enc = tokenizer(["A man is sleeping.", "Two dogs run across the green field today."], padding=True, return_tensors="pt")
    batch = dict(enc)
    with torch.no_grad():
        logits = model("rte", family, batch)
        hidden = encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = hidden[:, 0] if pooling == "cls" else (hidden * mask).sum(1) / mask.sum(1)
        torch.testing.assert_close(logits, model.heads["rte"](pooled))
    with pytest.raises(ValueError, match="unknown pooling 'max'"):
        build_multitask_model(encoder, [spec], "max")


def test_the_pooling_setting_is_used_and_in_the_key(tiny_backbone, mirror, tmp_path):
    from muppet_core.artifacts.stage import StageOutput
    from muppet_core.training.finetune import finetune_key

    prepare_task(get_task("rte"), mirror, 0.1, 0, tmp_path)
    config = FinetuneConfig(benchmarks=["rte"], batch_size=8, max_length=32, max_train_examples=8, max_eval_examples=8)
    run = FinetuneRun(Variant("base", "k", tiny_backbone), "rte", 0, 1e-3)
    cls, mean = finetune(run, tmp_path, config, "unit"), finetune(run, tmp_path, config.model_copy(update={"pooling": "mean"}), "unit")
    assert cls.metrics == finetune(run, tmp_path, config.model_copy(update={"pooling": "cls"}), "unit").metrics  # default for a plain BERT
    data = StageOutput("data", "rte", "dk", "store/data/dk", False)
    assert finetune_key(run, data, config) != finetune_key(run, data, config.model_copy(update={"pooling": "mean"}))
    assert cls.examples_seen == mean.examples_seen == 8
