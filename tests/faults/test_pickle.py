"""Pickled code never runs: a backbone whose weights are a pickle is refused, and so is a checkpoint
file holding one. Every payload would create a marker file when unpickled; the tests check the
refusal and that the marker was never created."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.config import DataConfig, FinetuneConfig, Optimization
from muppet_core.data.stage import data_stage
from muppet_core.errors import BackboneError
from muppet_core.evaluation.results import read_result
from muppet_core.families.build import build_multitask_model
from muppet_core.models.backbone import base_variant, load_encoder
from muppet_core.stages import FINETUNE as STAGE
from muppet_core.tasks.catalog import get_task
from muppet_core.training.checkpoint import (
    CheckpointError,
    checkpoint_folder,
    load_checkpoint,
    save_checkpoint,
)
from muppet_core.training.finetune import FinetuneRun, finetune_key, finetune_stage
from muppet_core.training.loop import build_engine
from muppet_core.training.settings import LoopSettings


class Payload:
    """Unpickling this runs ``touch MARKER`` (through os.system, via __reduce__)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_payload(path: Path, marker: Path, style: str) -> None:
    """A malicious file: ``torch.save`` of tensors beside the payload (zip format), or a bare pickle."""
    if style == "torch.save":
        torch.save({"state": {"weight": torch.zeros(2)}, "param_groups": Payload(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(Payload(marker), protocol=2))


def test_the_payload_runs_when_unpickled_unsafely(tmp_path):
    """The control: this payload does create its marker when loaded the unsafe way."""
    marker = tmp_path / "control"
    write_payload(tmp_path / "evil.pt", marker, "torch.save")
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


def _pickled_backbone(tiny_backbone: str, root: Path, marker: Path, keep_safetensors: bool) -> Path:
    path = root / "backbone"
    shutil.copytree(tiny_backbone, path)
    if not keep_safetensors:
        (path / "model.safetensors").unlink()
    write_payload(path / "pytorch_model.bin", marker, "torch.save")
    return path


def test_backbone_with_pickled_weights_only_is_refused(tiny_backbone, tmp_path, fault_report):
    marker = tmp_path / "pwned-backbone"
    path = _pickled_backbone(tiny_backbone, tmp_path, marker, keep_safetensors=False)
    with pytest.raises(BackboneError, match="safetensors is required") as refused:
        load_encoder(str(base_variant(str(path), tmp_path / "cache").encoder_path))
    assert "save_pretrained" in str(refused.value) and "arbitrary code" in str(refused.value)
    assert not marker.exists()
    fault_report("security", "backbone folder whose only weights are a pytorch_model.bin with an os.system pickle payload",
                 "refused: BackboneError ('has no safetensors weights (model.safetensors): safetensors is required ... convert it once: "
                 "...save_pretrained(..., safe_serialization=True)'); payload not executed")


def test_pickled_weights_beside_safetensors_are_never_read(tiny_backbone, tmp_path, fault_report):
    marker = tmp_path / "pwned-backbone"
    path = _pickled_backbone(tiny_backbone, tmp_path, marker, keep_safetensors=True)
    encoder, _ = load_encoder(str(path))
    assert encoder.config.num_hidden_layers == 2 and not marker.exists()
    fault_report("security", "backbone folder with model.safetensors and a pytorch_model.bin pickle payload beside it",
                 "loaded from model.safetensors only; the pickle was never read, payload not executed")


@pytest.fixture(scope="module")
def rte_store(mirror, tmp_path_factory):
    store = ArtifactStore(str(tmp_path_factory.mktemp("store")))
    return store, data_stage("rte", DataConfig(mirror=mirror), store)


def _plant_checkpoint(directory: Path, backbone: str) -> None:
    """A genuine checkpoint of the rte fine-tune's model, as the loop writes it."""
    encoder, _ = load_encoder(backbone)
    model = build_multitask_model(encoder, [get_task("rte")])
    settings = LoopSettings(Optimization(warmup_ratio=0.1, weight_decay=0.01), steps=10, tasks_per_step=1, micro_batch_size=4, learning_rate=1e-3)
    engine = build_engine(model, settings, 1, 1)
    loop = {"positions": {"rte": [0, 2]}, "history": [], "seen": {"rte": 8}, "tokens": [1, 1], "callbacks": [{}, {}]}
    save_checkpoint(directory, 2, engine, loop)


@pytest.mark.parametrize(("poisoned", "style"), [("optimizer.rank0.pt", "torch.save"), ("scheduler.pt", "pickle"), ("rng.rank0.pt", "torch.save")])
def test_checkpoint_file_with_a_pickle_payload_is_refused(rte_store, tiny_backbone, tmp_path, poisoned, style, fault_report):
    store, data = rte_store
    marker = tmp_path / f"pwned-{poisoned}"
    config = FinetuneConfig(benchmarks=["rte"], batch_size=4, max_length=32, max_train_examples=40, max_eval_examples=8, checkpoint_every=2)
    run = FinetuneRun(base_variant(tiny_backbone, tmp_path / "cache"), "rte", 0, 1e-3)
    checkpoints = store.scratch(STAGE, finetune_key(run, data, config))
    _plant_checkpoint(checkpoints, tiny_backbone)
    write_payload(checkpoint_folder(checkpoints) / poisoned, marker, style)

    output = finetune_stage("faults", run, data, config, store)  # the real resume path: finds and loads the checkpoint
    record = read_result(store, output)
    assert record.status == "failed" and record.error.startswith("CheckpointError: checkpoint file refused")
    assert "refused" in record.error and "posix.system" in record.error
    assert not store.has(STAGE, output.key) and not marker.exists()
    with pytest.raises(CheckpointError):  # and directly
        _plant_engine_and_load(checkpoints, tiny_backbone)
    assert not marker.exists()
    shutil.rmtree(checkpoints)
    fault_report("security", f"fine-tune checkpoint whose {poisoned} is a {style} file with an os.system pickle payload",
                 "refused: the run failed with CheckpointError ('checkpoint file refused: loading it could run arbitrary code (... GLOBAL "
                 "posix.system ...)'), nothing published; payload not executed")


def _plant_engine_and_load(directory: Path, backbone: str):
    encoder, _ = load_encoder(backbone)
    model = build_multitask_model(encoder, [get_task("rte")])
    settings = LoopSettings(Optimization(warmup_ratio=0.1, weight_decay=0.01), steps=10, tasks_per_step=1, micro_batch_size=4, learning_rate=1e-3)
    return load_checkpoint(directory, build_engine(model, settings, 1, 1))
