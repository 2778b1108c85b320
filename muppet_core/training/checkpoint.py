"""Checkpoints that a killed run resumes from: weights, optimizer, scheduler, data position, RNG.

Weights are safetensors; optimizer, scheduler and RNG states are tensors and plain values,
loaded back with ``torch.load(weights_only=True)`` (allowing by name only the few plain-data
classes DeepSpeed keeps in its optimizer state), so nothing pickled is ever executed. Every rank
writes its own optimizer shard (ZeRO partitions the optimizer state); rank 0 writes the rest.
A checkpoint is written into a staging folder and renamed into place, so a kill during the write
leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

LATEST = "latest"


def _barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def _zero_sharded(engine) -> bool:
    """Whether the optimizer is a DeepSpeed ZeRO optimizer (its state is partitioned over ranks)."""
    return hasattr(engine.optimizer, "_load_legacy_checkpoint")


def save_checkpoint(directory: Path, step: int, engine, positions: dict[str, list[int]], history: list[dict], rank: int = 0) -> Path:
    """Write the state after ``step`` completed updates as ``directory/latest`` (called on every rank)."""
    directory = Path(directory)
    staging = directory / f".tmp-step{step}"
    if rank == 0:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    _barrier()
    torch.save(engine.optimizer.state_dict(), staging / f"optimizer.rank{rank}.pt")
    if rank == 0:
        state = {k: v.detach().cpu().clone().contiguous() for k, v in engine.module.state_dict().items()}
        save_file(state, str(staging / "model.safetensors"))
        torch.save(engine.scheduler.state_dict(), staging / "scheduler.pt")
        torch.save({"cpu": torch.get_rng_state()}, staging / "rng.pt")
    _barrier()
    if rank == 0:
        (staging / "state.json").write_text(json.dumps({"step": step, "positions": positions, "history": history}))
        target, old = directory / LATEST, directory / f".old-step{step}"
        if target.exists():
            os.rename(target, old)
        os.rename(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    _barrier()
    return directory / LATEST


def _optimizer_state_classes() -> list[type]:
    """The few plain-data classes DeepSpeed's ZeRO optimizers keep in their state, allowed by name."""
    try:
        from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
        from deepspeed.runtime.zero.config import ZeroStageEnum
        from deepspeed.utils.tensor_fragment import fragment_address
    except ImportError:
        return []
    return [LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address]


def load_checkpoint(directory: Path | None, engine, rank: int = 0) -> dict[str, Any] | None:
    """Restore the latest checkpoint into ``engine`` (weights, optimizer, scheduler, RNG); None when there is none."""
    latest = Path(directory) / LATEST if directory else None
    if latest is None or not (latest / "state.json").is_file():
        return None
    engine.module.load_state_dict(load_file(str(latest / "model.safetensors")))
    with torch.serialization.safe_globals(_optimizer_state_classes()):
        if _zero_sharded(engine):
            shards = sorted(latest.glob("optimizer.rank*.pt"), key=lambda p: int(p.stem.split("rank")[1]))
            engine.optimizer.load_state_dict([torch.load(p, weights_only=True) for p in shards])
        else:
            engine.optimizer.load_state_dict(torch.load(latest / f"optimizer.rank{rank}.pt", weights_only=True))
    engine.scheduler.load_state_dict(torch.load(latest / "scheduler.pt", weights_only=True))
    torch.set_rng_state(torch.load(latest / "rng.pt", weights_only=True)["cpu"])
    return json.loads((latest / "state.json").read_text())
