"""Checkpoints hold everything a resumed run needs: every RNG, the engine's counters, the loop's
counters and its callbacks' state (early stopping's best weights included)."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import torch

from muppet_core.callbacks import Callback, CallbackSpec, build_callbacks
from muppet_core.config import Optimization
from muppet_core.families import get_family
from muppet_core.families.build import build_multitask_model
from muppet_core.families.classification import ClassificationRecord
from muppet_core.models.backbone import load_encoder
from muppet_core.tasks.catalog import get_task
from muppet_core.training.callbacks import EarlyStopping
from muppet_core.training.checkpoint import checkpoint_folder, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from muppet_core.training.loop import TaskStream, build_engine, train
from muppet_core.training.settings import LoopSettings

SETTINGS = LoopSettings(Optimization(warmup_ratio=0.25, weight_decay=0.01), steps=8, tasks_per_step=1, micro_batch_size=4, learning_rate=1e-3, seed=1)


def _draws() -> tuple:
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]


def test_rng_states_of_torch_numpy_and_python_round_trip():
    saved = rng_state()
    first = _draws()
    set_rng_state(saved)
    assert _draws() == first


def _model(backbone: str):
    torch.manual_seed(0)
    encoder, tokenizer = load_encoder(backbone)
    return build_multitask_model(encoder, [get_task("sst2")]), tokenizer


def test_checkpoint_restores_weights_optimizer_scheduler_counters_rng_and_loop_tensors(tiny_backbone, tmp_path):
    model, _ = _model(tiny_backbone)
    engine = build_engine(model, SETTINGS, 1, 1)
    engine.micro_steps = 5
    loop = {"history": [{"loss": 0.1 + 0.2}], "best": float("-inf"), "nested": {"w": torch.arange(4.0), "none": None}}
    save_checkpoint(tmp_path, 5, engine, loop)
    expected = _draws()
    state = {k: v.clone() for k, v in model.state_dict().items()}

    other, _ = _model(tiny_backbone)
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    fresh = build_engine(other, SETTINGS, 1, 1)
    resumed = load_checkpoint(tmp_path, fresh)
    assert resumed["step"] == 5 and fresh.micro_steps == 5
    assert resumed["loop"]["history"] == loop["history"] and resumed["loop"]["best"] == float("-inf")
    assert torch.equal(resumed["loop"]["nested"]["w"], torch.arange(4.0)) and resumed["loop"]["nested"]["none"] is None
    assert all(torch.equal(state[k], v) for k, v in other.state_dict().items())
    assert fresh.scheduler.state_dict() == engine.scheduler.state_dict()
    assert _draws() == expected
    assert sorted(p.name for p in checkpoint_folder(tmp_path).iterdir()) == [
        "loop.safetensors", "model.safetensors", "optimizer.rank0.pt", "rng.rank0.pt", "scheduler.pt", "state.json",
    ]


def _run(backbone: str, checkpoint_dir):
    """Train 8 updates with early stopping scored every 2 updates; the first score is the best."""
    model, tokenizer = _model(backbone)
    records = [ClassificationRecord(f"good film {i}" if i % 2 else f"bad film {i}", None, i % 2) for i in range(24)]
    features, _ = get_family("classification").encode(records, tokenizer, 32)
    stopper = EarlyStopping(model, lambda: 0.0, every=2, patience=100)
    stopper.score = lambda: 0.0 if stopper.scores else 1.0
    settings = dataclasses.replace(SETTINGS, optim=SETTINGS.optim.model_copy(update={"checkpoint_every": 3}), checkpoint_dir=str(checkpoint_dir))
    summary = train(model, {"sst2": TaskStream(get_family("classification"), "sst2", features, 1.0)}, settings, tokenizer.pad_token_id, [stopper])
    stopper.keep_best()
    return model, summary, stopper


def test_a_resumed_loop_ends_exactly_as_an_uninterrupted_one_early_stopping_included(tiny_backbone, tmp_path):
    straight, summary, stopper = _run(tiny_backbone, tmp_path)  # leaves its last checkpoint, at update 6
    assert stopper.scores[0] == (2, 1.0)
    resumed, again, resumed_stopper = _run(tiny_backbone, tmp_path)  # a run that finds it resumes at update 6
    assert again["resumed_from_step"] == 6 and resumed_stopper.scores == stopper.scores
    volatile = {"wall_seconds", "examples_per_second", "resumed_from_step"}
    assert {k: v for k, v in again.items() if k not in volatile} == {k: v for k, v in summary.items() if k not in volatile}
    a, b = straight.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # the best weights (update 2) came back from the checkpoint


def test_callbacks_from_specs_see_every_backward_pass(tiny_backbone, tmp_path):
    """A CallbackSpec is built where the loop runs, and on_backward runs once per micro-batch."""
    spec = CallbackSpec(target="tests.unit.training.test_checkpoint:BackwardCounter", options={"label": "x"})
    counter = build_callbacks([spec])[0]
    model, tokenizer = _model(tiny_backbone)
    records = [ClassificationRecord(f"film {i}", None, i % 2) for i in range(16)]
    features, _ = get_family("classification").encode(records, tokenizer, 32)
    settings = dataclasses.replace(SETTINGS, steps=3, tasks_per_step=2)
    train(model, {"sst2": TaskStream(get_family("classification"), "sst2", features, 1.0)}, settings, tokenizer.pad_token_id, [counter])
    assert counter.label == "x" and counter.steps == [0, 0, 1, 1, 2, 2]


class BackwardCounter(Callback):
    """Records the update of every backward pass."""

    def __init__(self, label: str):
        self.label, self.steps = label, []

    def on_backward(self, step: int) -> None:
        self.steps.append(step)


def _two_tasks(backbone: str, checkpoint_dir, prefetch: bool | None):
    """8 updates of two micro-batches each over two tasks (SST-2 and RTE heads), checkpoints every 3 updates."""
    torch.manual_seed(0)
    encoder, tokenizer = load_encoder(backbone)
    model = build_multitask_model(encoder, [get_task("sst2"), get_task("rte")])
    family = get_family("classification")
    single = [ClassificationRecord(f"good film {i}" if i % 2 else f"a bad and long film number {i}", None, i % 2) for i in range(20)]
    pairs = [ClassificationRecord(f"it rained on day {i}", f"day {i} was {'wet' if i % 3 else 'dry'}", int(i % 3 == 0)) for i in range(20)]
    streams = {"sst2": TaskStream(family, "sst2", family.encode(single, tokenizer, 32)[0], 1.0),
               "rte": TaskStream(family, "rte", family.encode(pairs, tokenizer, 32)[0], 1.0)}
    optim = SETTINGS.optim.model_copy(update={"checkpoint_every": 3, "prefetch": prefetch})
    settings = dataclasses.replace(SETTINGS, optim=optim, tasks_per_step=2, checkpoint_dir=str(checkpoint_dir))
    summary = train(model, streams, settings, tokenizer.pad_token_id)
    return model.state_dict(), summary


def test_prefetched_batches_train_and_resume_exactly_as_batches_collated_in_turn(tiny_backbone, tmp_path):
    """``prefetch`` (on a CUDA device by default; forced here on the CPU, where only the helper thread
    applies): the next micro-batch, the next update's first at an update's end, is drawn before the
    current one computes and collated on a helper thread. The losses, examples, weights and the
    positions a checkpoint saves are those of batches collated in turn, and a run resumed from a
    prefetching run's checkpoint ends as the straight run."""
    volatile = {"wall_seconds", "examples_per_second", "resumed_from_step"}
    plain, expected = _two_tasks(tiny_backbone, tmp_path / "plain", False)
    ahead, got = _two_tasks(tiny_backbone, tmp_path / "ahead", True)
    assert {k: v for k, v in got.items() if k not in volatile} == {k: v for k, v in expected.items() if k not in volatile}
    assert all(torch.equal(plain[k], ahead[k]) for k in plain)
    assert sorted({len(h["order"]) for h in got["history"]}) == [2]
    saved = [load_checkpoint(d, build_engine(build_multitask_model(load_encoder(tiny_backbone)[0], [get_task("sst2"), get_task("rte")]), SETTINGS, 2, 1))
             for d in (tmp_path / "plain", tmp_path / "ahead")]
    assert saved[0]["step"] == saved[1]["step"] == 6 and saved[0]["loop"]["positions"] == saved[1]["loop"]["positions"]
    resumed, again = _two_tasks(tiny_backbone, tmp_path / "ahead", True)  # finds the prefetching run's checkpoint at update 6
    assert again["resumed_from_step"] == 6
    assert {k: v for k, v in again.items() if k not in volatile} == {k: v for k, v in expected.items() if k not in volatile}
    assert all(torch.equal(plain[k], resumed[k]) for k in plain)
