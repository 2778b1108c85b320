"""Pre-finetuning workers for real: torchrun with two processes, kill -9 and resume, export.

The plain torch engine keeps these fast; DeepSpeed runs in the flow's integration test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from muppet_core.config import PrefinetuneConfig
from muppet_core.training.checkpoint import checkpoint_folder
from muppet_core.training.nodes import run_workers
from muppet_core.training.worker import PrefinetuneJob
from tests.unit.training.conftest import TASKS

pytestmark = pytest.mark.slow  # torchrun with two processes, kills and resumes: minutes of a core


def _job(store, keys, backbone, tmp: Path, name: str, **overrides) -> PrefinetuneJob:
    settings = {"tasks": TASKS, "steps": 6, "micro_batch_size": 4, "tasks_per_step": 4, "max_length": 48, "max_train_examples": 64,
                "checkpoint_every": 2, "engine": "torch", **overrides}
    return PrefinetuneJob(config=PrefinetuneConfig(**settings), backbone_path=backbone, store=store.root, data_keys=keys,
                          out_dir=str(tmp / name / "out"), checkpoint_dir=str(tmp / name / "ckpt"), trace=str(tmp / name / "trace"))


def _weights(out: str) -> dict[str, torch.Tensor]:
    return {**load_file(f"{out}/encoder/model.safetensors"), **{f"heads.{k}": v for k, v in load_file(f"{out}/heads.safetensors").items()}}


@pytest.fixture(scope="module")
def dropout_free_backbone(tiny_backbone, tmp_path_factory) -> str:
    """The tiny BERT without dropout (its heads take the encoder's): a run is then a function of the examples alone."""
    from transformers import AutoConfig

    path = tmp_path_factory.mktemp("tiny-bert-no-dropout")
    shutil.copytree(tiny_backbone, path, dirs_exist_ok=True)
    config = AutoConfig.from_pretrained(path)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    config.save_pretrained(path)
    return str(path)


def _merged(ranks: list[dict], key: str, step: int, per_step: int) -> list:
    """The update's global sequence of micro-batches: draw j was computed by rank j % w as its (j // w)-th."""
    world = len(ranks)
    rows = [r[key][step] if key == "order" else r[key][str(step)] for r in ranks]
    return [rows[j % world][j // world] for j in range(per_step)]


def test_world_size_one_and_two_consume_the_same_examples_and_end_with_the_same_weights(store_with_data, dropout_free_backbone, tmp_path):
    store, keys = store_with_data
    lines: list[str] = []
    # AdamW per operation: where a parameter's true gradient is zero up to rounding (a word embedding seen
    # once, a bias that softmax ignores), Adam turns the all-reduce's rounding into steps of size lr, and the
    # fused kernel's arithmetic makes that visible in more of them (4.8e-5 on two embedding rows, measured).
    same = {"learning_rate": 1e-3, "optimizer": "adamw_torch"}
    job = _job(store, keys, dropout_free_backbone, tmp_path, "w1", **same)
    run_workers(job, lines.append)
    job2 = _job(store, keys, dropout_free_backbone, tmp_path, "w2", launcher="torchrun", nproc_per_node=2, **same)
    run_workers(job2, lines.append)
    one = json.loads(Path(job.trace + ".rank0").read_text())
    ranks = [json.loads(Path(job2.trace + f".rank{r}").read_text()) for r in range(2)]
    assert [r["world_size"] for r in ranks] == [2, 2] and one["world_size"] == 1
    assert [_merged(ranks, "order", step, 4) for step in range(6)] == one["order"]
    assert [_merged(ranks, "examples", step, 4) for step in range(6)] == [one["examples"][str(step)] for step in range(6)]
    drawn = [tuple(i) for step in one["examples"].values() for _, i in step]
    assert len(set(drawn)) == len(drawn), "no micro-batch is drawn twice"
    assert sum(len(set(step)) > 1 for step in one["order"]) >= 4, "updates should mix several tasks"
    summary = json.loads(Path(job2.out_dir, "train_summary.json").read_text())
    alone = json.loads(Path(job.out_dir, "train_summary.json").read_text())["summary"]
    # examples and tokens (the "examples per pre-finetuning task" table reads these) are counted over both
    # ranks: the totals of the one-process run
    assert summary["world_size"] == 2 and summary["summary"]["examples_seen"] == alone["examples_seen"] > 6 * 4 * 3
    assert summary["summary"]["examples_per_task"] == alone["examples_per_task"]
    assert summary["summary"]["tokens_seen"] == alone["tokens_seen"]
    assert any("pre-finetune done" in line for line in lines)
    a, b = _weights(job.out_dir), _weights(job2.out_dir)
    # Two biases shift every score that a softmax compares alike (the ranking head's over the choices, the span
    # head's over the positions), so their gradient is zero up to rounding, and Adam's first steps turn that
    # rounding into steps of size lr: they are left out of the comparison (their differences are printed).
    inert = {"heads.ranking.out_proj.bias", "heads.span.qa_outputs.bias"}
    diff = max(float((a[k] - b[k]).abs().max()) for k in a if k not in inert)
    print(f"largest weight difference, 1 vs 2 processes: {diff:.3g} (inert biases: "
          f"{', '.join(f'{k} {float((a[k] - b[k]).abs().max()):.3g}' for k in sorted(inert))})")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a if k not in inert)
    start = load_file(f"{dropout_free_backbone}/model.safetensors")
    assert max(float((a[k] - start[k]).abs().max()) for k in start) > 1e-3, "the runs trained"

    run_workers(job2, lines.append)  # the same job again resumes from its update-4 checkpoint
    assert any("resumed from the checkpoint at step 4 of 6" in line for line in lines)
    again = [json.loads(Path(job2.trace + f".rank{r}").read_text()) for r in range(2)]
    assert [_merged(again, "examples", step, 4) for step in (4, 5)] == [one["examples"][str(step)] for step in (4, 5)]
    resumed = _weights(job2.out_dir)
    assert all(torch.equal(resumed[k], b[k]) for k in b)


def test_export_loads_with_automodel_and_heads_load_back(store_with_data, tiny_backbone, tmp_path):
    from transformers import AutoModel

    from muppet_core.models.backbone import load_encoder
    from muppet_core.families.build import build_multitask_model
    from muppet_core.tasks.catalog import get_task

    store, keys = store_with_data
    job = _job(store, keys, tiny_backbone, tmp_path, "export", r3f_eps=1e-5)
    run_workers(job, lambda line: None)
    out = Path(job.out_dir)
    assert AutoModel.from_pretrained(out / "encoder").config.num_hidden_layers == 2
    card = (out / "encoder" / "README.md").read_text()
    assert all(f"| {t} |" in card for t in TASKS) and "6 updates" in card
    assert (out / "loss_curves.png").stat().st_size > 1000
    encoder, _ = load_encoder(str(out / "encoder"))
    model = build_multitask_model(encoder, [get_task(t) for t in TASKS])
    assert sorted(model.load_heads(out)) == ["ranking", "rotten_tomatoes", "snli", "span"]


def test_deepspeed_zero2_run_resumes_from_its_sharded_checkpoint(store_with_data, tiny_backbone, tmp_path):
    store, keys = store_with_data
    job = _job(store, keys, tiny_backbone, tmp_path, "zero2", engine="deepspeed", zero_stage=2, steps=4)
    run_workers(job, lambda line: None)
    first = _weights(job.out_dir)
    assert (checkpoint_folder(job.checkpoint_dir) / "optimizer.rank0.pt").is_file()  # the step-2 checkpoint stays
    lines: list[str] = []
    run_workers(job, lines.append)  # the same job again resumes at step 2 and redoes steps 3-4
    assert any("resumed from the checkpoint at step 2 of 4" in line for line in lines)
    again = _weights(job.out_dir)
    assert all(torch.equal(first[k], again[k]) for k in first)
