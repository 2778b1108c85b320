"""Mixed precision on the torch engine, on the CPU: bf16 autocast trains the demo mix as fp32 does,
fp16 adds a loss scaler whose state is checkpointed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
import yaml

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.config import DataConfig, PrefinetuneConfig
from muppet_core.data.stage import data_stage
from muppet_core.families.build import build_multitask_model
from muppet_core.models.backbone import load_encoder
from muppet_core.models.multitask import MultiTaskModel
from muppet_core.tasks.catalog import get_task
from muppet_core.training.checkpoint import checkpoint_folder
from muppet_core.training.loop import train
from muppet_core.training.settings import prefinetune_settings
from muppet_core.training.streams import build_streams

REPO = Path(__file__).resolve().parents[3]
FORWARD = MultiTaskModel.forward


@pytest.fixture(scope="module")
def demo_mix(mirror, tmp_path_factory) -> dict:
    """The demo pipeline's pre-finetuning tasks, as data directories."""
    tasks = yaml.safe_load((REPO / "pipelines.yaml").read_text())["pipelines"]["demo"]["prefinetune"]["tasks"]
    store = ArtifactStore(str(tmp_path_factory.mktemp("store")))
    return {t: store.fetch("data", data_stage(t, DataConfig(mirror=mirror), store).key) for t in tasks}


def _train(backbone: str, data: dict, precision: str, steps: int, monkeypatch, checkpoint_dir=None) -> tuple[dict, set]:
    config = PrefinetuneConfig(tasks=sorted(data), steps=steps, micro_batch_size=4, tasks_per_step=4, max_length=32,
                               max_train_examples=200, learning_rate=1e-3, engine="torch", precision=precision, checkpoint_every=2)
    torch.manual_seed(0)
    encoder, tokenizer = load_encoder(backbone)
    model = build_multitask_model(encoder, [get_task(t) for t in config.tasks])
    streams, _ = build_streams(config.tasks, data, tokenizer, config.max_length, config.max_train_examples, config.seed)
    dtypes = set()

    def record(self, head, family, batch):
        out = FORWARD(self, head, family, batch)
        dtypes.update(t.dtype for t in (out if isinstance(out, tuple) else (out,)))
        return out

    monkeypatch.setattr(MultiTaskModel, "forward", record)
    summary = train(model, streams, prefinetune_settings(config, checkpoint_dir), tokenizer.pad_token_id)
    return summary, dtypes


def test_bf16_autocast_trains_the_demo_mix_within_two_percent_of_fp32(tiny_backbone, demo_mix, monkeypatch):
    """30 updates of 4 x 4 examples on the 2-layer random BERT (MiniLM's bf16 on a CPU without bf16 units is minutes)."""
    started = time.perf_counter()
    full, full_dtypes = _train(tiny_backbone, demo_mix, "fp32", 30, monkeypatch)
    half, half_dtypes = _train(tiny_backbone, demo_mix, "bf16", 30, monkeypatch)
    assert full_dtypes == {torch.float32} and torch.bfloat16 in half_dtypes
    assert [h["order"] for h in half["history"]] == [h["order"] for h in full["history"]]
    mean = [sum(h["loss"] for h in s["history"]) / 30 for s in (full, half)]
    timings = [s["wall_seconds"] for s in (full, half)]
    rel = abs(mean[1] - mean[0]) / mean[0]
    print(f"fp32 mean loss {mean[0]:.5f}, bf16 {mean[1]:.5f}: {rel:.3%} apart; final {full['final_loss']:.5f} vs {half['final_loss']:.5f}"
          f" (training {timings[0]:.1f}s fp32, {timings[1]:.1f}s bf16; {time.perf_counter() - started:.1f}s in all)")
    assert rel < 0.02 and abs(half["final_loss"] - full["final_loss"]) / full["final_loss"] < 0.02
    assert full["history"][-1]["loss"] != half["history"][-1]["loss"]


def test_fp16_scales_the_loss_and_checkpoints_the_scale(tiny_backbone, demo_mix, monkeypatch, tmp_path):
    full, _ = _train(tiny_backbone, demo_mix, "fp32", 3, monkeypatch)
    half, dtypes = _train(tiny_backbone, demo_mix, "fp16", 3, monkeypatch, str(tmp_path))
    assert torch.float16 in dtypes
    state = json.loads((checkpoint_folder(tmp_path) / "state.json").read_text())["engine"]
    assert state["micro_steps"] == 2 * 4 and state["scaler"]["scale"] == 2.0**16  # no overflow: the initial scale
    assert abs(half["final_loss"] - full["final_loss"]) / full["final_loss"] < 0.02
