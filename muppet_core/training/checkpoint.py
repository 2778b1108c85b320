"""Checkpoints that a killed run resumes from, bit for bit: weights, optimizer, scheduler, the
engine's counters, the data position, the loop's counters and callbacks, and every RNG.

Weights and any other tensors of the loop's state are safetensors; optimizer, scheduler and RNG
states are tensors and plain values, loaded back with ``torch.load(weights_only=True)`` (allowing
by name only the few plain-data classes DeepSpeed keeps in its optimizer state), so nothing
pickled is ever executed: a file that would need it is refused with a CheckpointError. Every rank
writes its own optimizer shard (ZeRO partitions the optimizer state) and RNG states; rank 0 writes the rest.

A checkpoint directory is a local path or a URI in the artifact store (``s3://...``), so the ranks
of every node write to and resume from the same place. Each checkpoint is a folder ``step-N``; the
pointer ``latest.json`` moves to it once every rank's files are in, so a kill during the write
leaves the previous checkpoint in force.
"""

from __future__ import annotations

import json
import pickle
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.errors import MuppetError

POINTER = "latest.json"
TENSOR_REF = "__tensor__"


class CheckpointError(MuppetError):
    """A checkpoint file could not be loaded safely (for example one that holds pickled code)."""


def _barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def _zero_sharded(engine) -> bool:
    """Whether the optimizer is a DeepSpeed ZeRO optimizer (its state is partitioned over ranks)."""
    return hasattr(engine.optimizer, "_load_legacy_checkpoint")


def rng_state() -> dict[str, Any]:
    """The state of every RNG training may draw from: torch (CPU and CUDA), numpy's global one, Python's."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Put back the RNG states saved by ``rng_state``."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _split_tensors(value: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    """``value`` with every tensor replaced by a reference, the tensors collected in ``tensors``."""
    if isinstance(value, torch.Tensor):
        tensors[path] = value.detach().cpu().clone().contiguous()
        return {TENSOR_REF: path}
    if isinstance(value, dict):
        return {k: _split_tensors(v, f"{path}/{k}", tensors) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_split_tensors(v, f"{path}/{i}", tensors) for i, v in enumerate(value)]
    return value


def _join_tensors(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if set(value) == {TENSOR_REF}:
            return tensors[value[TENSOR_REF]]
        return {k: _join_tensors(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [_join_tensors(v, tensors) for v in value]
    return value


def _pointer(place: ArtifactStore) -> dict[str, Any] | None:
    """The checkpoint directory's pointer to its latest complete checkpoint (None: no checkpoint)."""
    if not place.exists(POINTER):
        return None
    return json.loads(place.read_text(POINTER))


def checkpoint_folder(directory: str | Path) -> Path | None:
    """The folder of the latest complete checkpoint in a local checkpoint directory (None: none)."""
    place = ArtifactStore(str(directory))
    pointer = _pointer(place)
    return place.local_path(pointer["folder"]) if pointer else None


def save_checkpoint(directory: str | Path, step: int, engine, loop_state: dict[str, Any], rank: int = 0) -> str:
    """Write the state after ``step`` completed updates (called on every rank); returns its folder's URI.

    Args:
        directory: the run's checkpoint directory: a local path, or a URI in the artifact store
            (s3://...) that the ranks of every node reach.
        step: completed updates.
        engine: the TorchEngine or DeepSpeedEngine (weights, optimizer, scheduler, counters).
        loop_state: the loop's own state (data positions, history, counters, callbacks): JSON
            values and tensors, nested in dicts and lists.
        rank: this process's rank.
    """
    place, folder = ArtifactStore(str(directory)), f"step-{step}"
    if rank == 0:
        place.remove(folder)  # what a run killed while writing this step left
    _barrier()
    with place.staged(folder) as staging:  # in place on a local directory, else uploaded at the end
        torch.save(engine.optimizer.state_dict(), staging / f"optimizer.rank{rank}.pt")
        torch.save(rng_state(), staging / f"rng.rank{rank}.pt")
        if rank == 0:
            state = {k: v.detach().cpu().clone().contiguous() for k, v in engine.module.state_dict().items()}
            save_file(state, str(staging / "model.safetensors"))
            torch.save(engine.scheduler.state_dict(), staging / "scheduler.pt")
            tensors: dict[str, torch.Tensor] = {}
            loop = _split_tensors(loop_state, "loop", tensors)
            save_file(tensors, str(staging / "loop.safetensors"))
            world = dist.get_world_size() if dist.is_initialized() else 1
            (staging / "state.json").write_text(json.dumps({"step": step, "world_size": world, "engine": engine.state(), "loop": loop}))
    _barrier()
    if rank == 0:  # the pointer moves only once every rank's files are in: a kill before leaves the previous one
        previous = _pointer(place)
        place.write_text(POINTER, json.dumps({"step": step, "folder": folder}))
        if previous and previous["folder"] != folder:
            place.remove(previous["folder"])
    _barrier()
    return f"{place.root}/{folder}"


def _optimizer_state_classes() -> list[type]:
    """The few plain-data classes DeepSpeed's ZeRO optimizers keep in their state, allowed by name."""
    try:
        from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
        from deepspeed.runtime.zero.config import ZeroStageEnum
        from deepspeed.utils.tensor_fragment import fragment_address
    except ImportError:
        return []
    return [LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address]


def safe_load(path: Path) -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain values only, never pickled code.

    Raises:
        CheckpointError: the file holds anything else (a class or callable to import or run).
    """
    try:
        with torch.serialization.safe_globals(_optimizer_state_classes()):
            return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        # torch's message opens with advice to retry with weights_only=False; keep only what was refused.
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
        reason = next((line for line in lines if "GLOBAL" in line or "Unsupported" in line), lines[-1])
        raise CheckpointError(
            f"checkpoint file refused: loading it could run arbitrary code ({reason}); it should hold only tensors and "
            f"plain values: {path}. Delete that checkpoint ({Path(path).parent}) to start the run over."
        ) from None


def load_checkpoint(directory: str | Path | None, engine, rank: int = 0) -> dict[str, Any] | None:
    """Restore the latest checkpoint into ``engine`` (weights, optimizer, scheduler, counters) and every RNG.

    Returns:
        None when there is no checkpoint, else ``{"step": completed updates, "loop": the loop state
        given to save_checkpoint}``.

    Raises:
        CheckpointError: a file of the checkpoint holds pickled code.
    """
    place = ArtifactStore(str(directory)) if directory else None
    pointer = _pointer(place) if place else None
    if pointer is None:
        return None
    with tempfile.TemporaryDirectory(prefix="muppet-checkpoint-") as tmp:

        def file(name: str) -> Path:
            return place.local_copy(f"{pointer['folder']}/{name}", tmp)

        state = json.loads(file("state.json").read_text())
        engine.module.load_state_dict(load_file(str(file("model.safetensors"))))
        if _zero_sharded(engine):
            shards = [safe_load(file(f"optimizer.rank{r}.pt")) for r in range(state["world_size"])]
            # The fp32 master weights come from the checkpoint, not from the (maybe 16-bit) model weights.
            engine.optimizer.load_state_dict(shards, load_from_fp32_weights=True)
        else:
            engine.optimizer.load_state_dict(safe_load(file(f"optimizer.rank{rank}.pt")))
        engine.scheduler.load_state_dict(safe_load(file("scheduler.pt")))
        rng = safe_load(file(f"rng.rank{rank}.pt"))
        engine.load_state(state["engine"])
        loop = _join_tensors(state["loop"], load_file(str(file("loop.safetensors"))))
    set_rng_state(rng)
    return {"step": state["step"], "loop": loop}
