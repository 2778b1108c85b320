"""A seq2seq backbone refuses pooling ``cls``: its decoder's first state has seen only the start token."""

from __future__ import annotations

import pytest

from muppet_core.config import FinetuneConfig
from muppet_core.errors import BackboneError
from muppet_core.families.build import build_multitask_model
from muppet_core.models.backbone import Variant, load_encoder
from muppet_core.tasks.catalog import get_task
from muppet_core.training.finetune import FinetuneRun, finetune


@pytest.mark.parametrize("kind", ["bart", "t5"])
def test_cls_pooling_is_refused_for_a_seq2seq_backbone(kind, request):
    backbone = request.getfixturevalue(f"tiny_{kind}")
    encoder, _ = load_encoder(backbone)
    with pytest.raises(BackboneError) as refused:
        build_multitask_model(encoder, [get_task("rte")], "cls")
    message = str(refused.value)
    assert "\n" not in message and f"{kind} backbone '{backbone}'" in message and "set pooling to 'eos'" in message
    assert [build_multitask_model(encoder, [get_task("rte")], p).pooling for p in ("eos", "mean")] == ["eos", "mean"]


def test_a_bart_fine_tune_with_cls_pooling_is_refused_before_it_reads_data(tiny_bart, tmp_path):
    config = FinetuneConfig(benchmarks=["rte"], pooling="cls", batch_size=8, max_length=32, max_train_examples=8, max_eval_examples=8)
    run = FinetuneRun(Variant("base", "k", tiny_bart), "rte", 0, 1e-3)
    with pytest.raises(BackboneError, match=r"^pooling 'cls' would read the first decoder state of bart backbone"):
        finetune(run, tmp_path, config, "unit")  # tmp_path holds no prepared data
