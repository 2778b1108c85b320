"""SIGKILL in the middle of training, then the same stage again: it resumes from the last checkpoint
and ends bit for bit where an uninterrupted run ends (weights, history, metrics), on CPU.

The kill is the fault tests' own callback (``tests/faults/killswitch.py``), installed through the
stages' ``callbacks``: the training process SIGKILLs itself in the middle of a seeded random update. Pre-finetuning is killed in its worker
process under DeepSpeed, as ``prefinetune_stage`` launches it; a fine-tune runs ``finetune_stage``
in a child process (``_finetune_child``) that is killed, and is then resumed in this process.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from muppet_core import stages
from muppet_core.artifacts.stage import StageOutput
from muppet_core.artifacts.store import ArtifactStore
from muppet_core.config import DataConfig, FinetuneConfig, PrefinetuneConfig
from muppet_core.data.stage import data_stage
from muppet_core.evaluation.results import read_result
from muppet_core.models.backbone import Variant, base_variant
from muppet_core.training import prefinetune as prefinetune_module
import muppet_core.training.finetune as finetune_module
from muppet_core.training.finetune import (
    FinetuneRun,
    finetune_key,
    finetune_stage,
)
from muppet_core.training.checkpoint import checkpoint_folder
from muppet_core.training.launch import LaunchError
from muppet_core.training.prefinetune import prefinetune_key, prefinetune_stage
from tests.conftest import REPO
from tests.faults.killswitch import kill_at as kill_switch

PRETRAIN_TASKS = ["rotten_tomatoes", "snli"]
BENCHMARK = "rte"
SEED = 20261128
# Differ between runs by nature: timing, and where the run started.
VOLATILE = {"wall_seconds", "examples_per_second", "resumed_from_step"}


@pytest.fixture(scope="module")
def data_template(mirror, tmp_path_factory) -> Path:
    """A store holding the data artifacts, copied into a fresh store for every run."""
    root = tmp_path_factory.mktemp("data-store")
    store = ArtifactStore(str(root))
    for task in [*PRETRAIN_TASKS, BENCHMARK]:
        data_stage(task, DataConfig(mirror=mirror), store)
    return root


def _fresh_store(template: Path, root: Path, mirror: str) -> tuple[ArtifactStore, dict[str, StageOutput]]:
    shutil.copytree(template / "data", root / "data")
    store = ArtifactStore(str(root))
    return store, {t: data_stage(t, DataConfig(mirror=mirror), store) for t in [*PRETRAIN_TASKS, BENCHMARK]}


def _kill_point(name: str, steps: int, every: int) -> tuple[int, int]:
    """A seeded random update to kill during (after the first checkpoint), and the checkpoint it resumes from."""
    kill_at = random.Random(f"{SEED}-{name}").randint(every + 1, steps)
    return kill_at, (kill_at - 1) // every * every


def _tensors_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> int:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ after resume: {different[:5]}"
    return len(a)


def _exported(store: ArtifactStore, key: str) -> tuple[dict[str, torch.Tensor], dict, list]:
    out = store.fetch(stages.PREFINETUNE, key)
    weights = {**load_file(str(out / "encoder" / "model.safetensors")), **{f"heads.{k}": v for k, v in load_file(str(out / "heads.safetensors")).items()}}
    summary = json.loads((out / "train_summary.json").read_text())
    summary["summary"] = {k: v for k, v in summary["summary"].items() if k not in VOLATILE}
    return weights, summary, json.loads((out / "history.json").read_text())


def test_prefinetune_worker_killed_at_a_random_update_resumes_bit_exact(data_template, mirror, tiny_backbone, tmp_path, monkeypatch, fault_report):
    config = PrefinetuneConfig(
        tasks=PRETRAIN_TASKS, steps=8, micro_batch_size=4, tasks_per_step=2, max_length=32, max_train_examples=32,
        checkpoint_every=2, engine="deepspeed", seed=3,
    )
    kill_at, resume_at = _kill_point("prefinetune", config.steps, config.checkpoint_every)
    base = base_variant(tiny_backbone, tmp_path / "cache")
    straight_store, straight_data = _fresh_store(data_template, tmp_path / "straight", mirror)
    straight = prefinetune_stage(config, base, straight_data, straight_store, lambda line: None)

    store, data = _fresh_store(data_template, tmp_path / "killed", mirror)
    key = prefinetune_key(config, base.key, data)
    with pytest.raises(LaunchError, match=r"exited with status -9"):
        prefinetune_stage(config, base, data, store, lambda line: None, callbacks=[kill_switch(kill_at)])
    scratch = store.scratch(stages.PREFINETUNE, key)
    assert not store.has(stages.PREFINETUNE, key)
    assert json.loads((checkpoint_folder(scratch) / "state.json").read_text())["step"] == resume_at

    lines: list[str] = []
    resumed = prefinetune_stage(config, base, data, store, lines.append)
    assert resumed.key == straight.key and not resumed.cache_hit
    assert any(f"resumed from the checkpoint at step {resume_at} of {config.steps}" in line for line in lines)
    assert not scratch.exists(), "checkpoints are removed once the model is published"
    weights, summary, history = _exported(store, key)
    straight_weights, straight_summary, straight_history = _exported(straight_store, key)
    compared = _tensors_equal(weights, straight_weights)
    assert summary == straight_summary and history == straight_history
    assert json.loads((store.fetch(stages.PREFINETUNE, key) / "train_summary.json").read_text())["summary"]["resumed_from_step"] == resume_at
    fault_report(
        "fault",
        f"SIGKILL of the DeepSpeed pre-finetune worker during update {kill_at} of {config.steps} (checkpoint every {config.checkpoint_every})",
        f"stage failed with LaunchError (status -9), nothing published; re-run resumed from the checkpoint at update {resume_at}; "
        f"all {compared} exported tensors torch.equal, history ({len(history)} updates) and train summary identical to the uninterrupted run; "
        "checkpoints removed after publish",
    )


def _finetune_job(run: FinetuneRun, data: StageOutput, config: FinetuneConfig, store: ArtifactStore, kill_at: int) -> dict:
    return {"variant": asdict(run.variant), "benchmark": run.benchmark, "seed": run.seed, "learning_rate": run.learning_rate,
            "data": asdict(data), "config": config.model_dump(), "store": store.root, "kill_at": kill_at}


def _finetune_child(job_file: str) -> None:
    """Child process: run ``finetune_stage`` for the job in ``job_file`` (the test kills it mid-way)."""
    job = json.loads(Path(job_file).read_text())
    variant = Variant(**{**job["variant"], "tasks": tuple(job["variant"]["tasks"])})
    run = FinetuneRun(variant, job["benchmark"], job["seed"], job["learning_rate"])
    finetune_stage(
        "faults", run, StageOutput(**job["data"]), FinetuneConfig(**job["config"]), ArtifactStore(job["store"]), callbacks=[kill_switch(job["kill_at"])]
    )


def _spy_final_weights(monkeypatch) -> list[dict[str, torch.Tensor]]:
    """Record the weights at every evaluation of a fine-tune; the last one is the final model's."""
    seen: list[dict[str, torch.Tensor]] = []
    evaluate = finetune_module.evaluate

    def spy(model, *args, **kwargs):
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return evaluate(model, *args, **kwargs)

    monkeypatch.setattr(finetune_module, "evaluate", spy)
    return seen


def test_finetune_killed_at_a_random_update_resumes_bit_exact(data_template, mirror, tiny_backbone, tmp_path, monkeypatch, fault_report):
    config = FinetuneConfig(
        benchmarks=[BENCHMARK], batch_size=4, max_length=48, max_train_examples=48, max_eval_examples=24,
        checkpoint_every=3, eval_every=2, patience=6, learning_rates=[1e-3],
    )
    base = base_variant(tiny_backbone, tmp_path / "cache")
    run = FinetuneRun(base, BENCHMARK, 0, 1e-3)

    straight_store, straight_data = _fresh_store(data_template, tmp_path / "straight", mirror)
    straight_weights = _spy_final_weights(monkeypatch)
    straight = read_result(straight_store, finetune_stage("faults", run, straight_data[BENCHMARK], config, straight_store))
    # early stopping selects on a slice carved from the 48 training examples: the rest are trained on
    steps = math.ceil(straight.train_examples / config.batch_size)
    assert straight.status == "ok" and straight.train_examples < config.max_train_examples
    assert straight.examples_seen == straight.train_examples
    kill_at, resume_at = _kill_point("finetune", steps, config.checkpoint_every)

    store, data = _fresh_store(data_template, tmp_path / "killed", mirror)
    key = finetune_key(run, data[BENCHMARK], config)
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(_finetune_job(run, data[BENCHMARK], config, store, kill_at)))
    child = "import sys; from tests.faults.test_kill_resume import _finetune_child; _finetune_child(sys.argv[1])"
    killed = subprocess.run(
        [sys.executable, "-c", child, str(job_file)], cwd=REPO, env=os.environ,
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-2000:] + killed.stderr[-2000:]
    scratch = store.scratch(stages.FINETUNE, key)
    assert not store.has(stages.FINETUNE, key)
    assert json.loads((checkpoint_folder(scratch) / "state.json").read_text())["step"] == resume_at

    resumed_weights = _spy_final_weights(monkeypatch)
    output = finetune_stage("faults", run, data[BENCHMARK], config, store)
    resumed = read_result(store, output)
    assert output.key == key and not output.cache_hit and resumed.status == "ok"
    assert not scratch.exists(), "checkpoints are removed once the result is published"
    compared = _tensors_equal(resumed_weights[-1], straight_weights[-1])
    assert resumed.metrics == straight.metrics
    assert (resumed.examples_seen, resumed.train_examples, resumed.eval_examples) == (straight.examples_seen, straight.train_examples, straight.eval_examples)
    fault_report(
        "fault",
        f"SIGKILL of a fine-tune process (finetune_stage, early stopping on) during update {kill_at} of {steps} (checkpoint every {config.checkpoint_every})",
        f"nothing published; re-run resumed from the checkpoint at update {resume_at}; all {compared} final tensors torch.equal and "
        f"metrics {resumed.metrics} identical to the uninterrupted run; checkpoints removed after publish",
    )
