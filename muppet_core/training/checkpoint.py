"""Checkpoints that a killed run resumes from: weights, optimizer, scheduler, data position, RNG.

Weights are safetensors; optimizer, scheduler and RNG states are tensors and plain values,
loaded back with ``torch.load(weights_only=True)``, so nothing pickled is ever executed.
A checkpoint is written into a staging folder and renamed into place, so a kill during the write
leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

LATEST = "latest"


def save_checkpoint(directory: Path, step: int, engine, positions: dict[str, list[int]], history: list[dict]) -> Path:
    """Write the state after ``step`` completed updates as ``directory/latest``."""
    directory = Path(directory)
    staging = directory / f".tmp-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    state = {k: v.detach().cpu().clone().contiguous() for k, v in engine.module.state_dict().items()}
    save_file(state, str(staging / "model.safetensors"))
    torch.save(engine.optimizer.state_dict(), staging / "optimizer.pt")
    torch.save(engine.scheduler.state_dict(), staging / "scheduler.pt")
    torch.save({"cpu": torch.get_rng_state()}, staging / "rng.pt")
    (staging / "state.json").write_text(json.dumps({"step": step, "positions": positions, "history": history}))
    target = directory / LATEST
    old = directory / f".old-{uuid.uuid4().hex[:8]}"
    if target.exists():
        os.rename(target, old)
    os.rename(staging, target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def load_checkpoint(directory: Path | None, engine) -> dict[str, Any] | None:
    """Restore the latest checkpoint into ``engine`` (weights, optimizer, scheduler, RNG); None when there is none."""
    latest = Path(directory) / LATEST if directory else None
    if latest is None or not (latest / "state.json").is_file():
        return None
    engine.module.load_state_dict(load_file(str(latest / "model.safetensors")))
    engine.optimizer.load_state_dict(torch.load(latest / "optimizer.pt", weights_only=True))
    engine.scheduler.load_state_dict(torch.load(latest / "scheduler.pt", weights_only=True))
    torch.set_rng_state(torch.load(latest / "rng.pt", weights_only=True)["cpu"])
    return json.loads((latest / "state.json").read_text())
