"""A fine-tune whose training loss is not a finite number is not a result: it ends in a failure
record saying so, with no score, and nothing is published under its key (a re-run tries again)."""

from __future__ import annotations

import shutil

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.config import DataConfig, FinetuneConfig
from muppet_core.data.stage import data_stage
from muppet_core.evaluation.results import read_result
from muppet_core.models.backbone import Variant
from muppet_core.stages import FINETUNE, FINETUNE_FAILED
from muppet_core.training.finetune import FinetuneRun, finetune_stage


def _poisoned(tiny_backbone: str, folder) -> str:
    """The tiny BERT with one weight NaN: every loss it computes is NaN."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(tiny_backbone, folder)
    weights = load_file(folder / "model.safetensors")
    weights["embeddings.LayerNorm.weight"] = torch.full_like(weights["embeddings.LayerNorm.weight"], float("nan"))
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return str(folder)


def test_a_nan_training_loss_fails_the_fine_tune_with_a_record_saying_so(tiny_backbone, mirror, tmp_path, fault_report):
    store = ArtifactStore(str(tmp_path / "store"))
    data = data_stage("rte", DataConfig(mirror=mirror), store)
    config = FinetuneConfig(benchmarks=["rte"], batch_size=8, max_length=32, max_train_examples=16, max_eval_examples=16, checkpoint_every=None)
    run = FinetuneRun(Variant("base", "poisoned", _poisoned(tiny_backbone, tmp_path / "nan-bert")), "rte", 0, 3e-5)
    output = finetune_stage("diverged", run, data, config, store)
    assert output.stage == FINETUNE_FAILED and not store.has(FINETUNE, output.key)
    record = read_result(store, output)
    assert record.status == "failed" and record.metrics == {} and record.score is None
    assert record.error == ("DivergedError: the training loss of task 'rte' is nan at update 1 of 2: the run diverged and nothing "
                            "it trained is scored (lower the learning rate, or check the data)"), record.error
    fault_report("fault", "a fine-tune whose training loss is NaN (a backbone weight set to NaN)",
                 f"failure record, no score, nothing published under its key: '{record.error}'")
