"""Accelerator kinds (``hardware.yaml``) and the device rate a plan uses: a stored ``bench/gpu_check.py`` result for
the kind, else the datasheet peak at an assumed MFU, or what ``--mfu`` says."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from muppet_core.errors import MuppetError
from muppet_core.registry import did_you_mean
from muppet_core.yamlfile import load_yaml

HARDWARE = load_yaml(Path(__file__).with_name("hardware.yaml"))
BENCH_RESULTS_ENV = "MUPPET_BENCH_RESULTS"
"""Where ``bench/gpu_check.py --record`` writes ``gpu_check-<kind>.json`` and plans read it (default: ``bench/results``
beside the pipelines file)."""


@dataclass(frozen=True)
class Device:
    """One accelerator kind as a plan uses it.

    Attributes:
        kind: the kind's name (``h100``, ``cpu``, ...).
        name: in words.
        memory_gib: memory per device (None: not bounded here, a CPU's).
        peak_flops: the peak FLOP/s the MFU is taken against, for the run's precision.
        mfu: the share of the peak a run reaches.
        rate_source: where ``peak_flops`` and ``mfu`` come from, in words.
        runtime_gib: memory a training process holds besides the model (an assumption).
        fixed_s: seconds besides FLOPs (``run``, ``prefinetune``, each ``finetune``) and the data stage's rows per second
            (``data_rows_per_s``): assumptions of ``hardware.yaml``.
    """

    kind: str
    name: str
    memory_gib: float | None
    peak_flops: float
    mfu: float
    rate_source: str
    runtime_gib: float
    fixed_s: dict

    @property
    def flops_per_second(self) -> float:
        """The rate a run is expected to reach: peak x MFU."""
        return self.peak_flops * self.mfu


def matmul_rate(device: str, dtype: str, n: int) -> float:
    """FLOP/s of an n x n x n matrix product on ``device`` (``cpu``, ``cuda``) in ``dtype`` (a torch dtype's name): the mean
    of 10 after 3 warm-ups; the ceiling a run on that device is held to."""
    import time

    import torch

    where = torch.device(device)
    a, b = (torch.randn(n, n, device=where, dtype=getattr(torch, dtype)) for _ in range(2))
    sync = torch.cuda.synchronize if where.type == "cuda" else (lambda: None)
    for _ in range(3):
        a @ b
    sync()
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    sync()
    return 10 * 2 * n**3 / (time.perf_counter() - start)


def local_kind() -> str:
    """This machine's kind for a run's own plan: its first CUDA device's, by name; ``cpu`` without CUDA; ``a100`` (the slowest
    kind of ``hardware.yaml`` with bf16) for a GPU it does not name."""
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    name = torch.cuda.get_device_name(0).lower()
    return next((kind for kind in HARDWARE["kinds"] if kind != "cpu" and kind in name), "a100")


def results_dir(config_path: str | os.PathLike[str]) -> Path:
    """Where stored bench results are read: $MUPPET_BENCH_RESULTS, else ``bench/results`` beside the pipelines file."""
    return Path(os.environ.get(BENCH_RESULTS_ENV) or Path(config_path).resolve().parent / "bench" / "results")


def stored_result(folder: Path, kind: str) -> dict | None:
    """The last ``bench/gpu_check.py`` result recorded for ``kind`` in ``folder`` (None: none, or unreadable)."""
    path = folder / f"gpu_check-{kind}.json"
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return result if isinstance(result.get("mfu"), (int, float)) and isinstance(result.get("peak_flops"), (int, float)) else None


def device(kind: str, precision: str, folder: Path, mfu: float | None = None) -> Device:
    """The device of ``kind`` for a run in ``precision``, its rate from ``mfu`` (given), a stored result, or the assumption.

    Raises:
        MuppetError: an unknown kind, a kind without that precision, a CPU without a stored result, or an MFU outside (0, 1].
    """
    kinds = HARDWARE["kinds"]
    if kind not in kinds:
        raise MuppetError(f"unknown GPU kind '{kind}'{did_you_mean(kind, list(kinds))}; known: {', '.join(kinds)}")
    if mfu is not None and not 0 < mfu <= 1:
        raise MuppetError(f"--mfu {mfu}: a share of the peak, in (0, 1]")
    spec, stored = kinds[kind], stored_result(folder, kind)
    peak = spec["peak_flops"].get(precision)
    if stored is not None:
        peak_used = float(stored["peak_flops"]) if peak is None else peak
        source = f"{folder / f'gpu_check-{kind}.json'} (bench/gpu_check.py on {stored.get('device_name', kind)}: MFU {stored['mfu']:.4g} of {peak_used:.3g} FLOP/s)"
        if mfu is None:
            return Device(kind, spec["name"], spec["memory_gib"], peak_used, float(stored["mfu"]), source, spec["runtime_gib"], spec["fixed_s"])
        return Device(kind, spec["name"], spec["memory_gib"], peak_used, mfu, f"--mfu {mfu} of {peak_used:.3g} FLOP/s", spec["runtime_gib"], spec["fixed_s"])
    if peak is None and kind == "cpu":
        peak, precision = matmul_rate("cpu", "float32", 512), "measured fp32 matrix-product"
    if peak is None:
        raise MuppetError(f"{kind} has no {precision} rate in muppet_core/planning/hardware.yaml; known: {', '.join(spec['peak_flops'])}")
    if mfu is not None:
        return Device(kind, spec["name"], spec["memory_gib"], peak, mfu, f"--mfu {mfu} of the {precision} peak {peak:.3g} FLOP/s", spec["runtime_gib"], spec["fixed_s"])
    assumed = HARDWARE["assumed_mfu"]
    return Device(kind, spec["name"], spec["memory_gib"], peak, assumed,
                  f"ASSUMED MFU {assumed} of the {precision} peak {peak:.3g} FLOP/s (no bench/gpu_check.py result stored for {kind} in {folder}; "
                  f"`python bench/gpu_check.py --record` on one stores it)",
                  spec["runtime_gib"], spec["fixed_s"])
