"""The devices fine-tune processes are pinned to: one GPU each where there are GPUs, and on every
machine a share of the CPU cores with torch's thread count to match."""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


class Device(BaseModel):
    """What one fine-tune process may use."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpu: int | None = None
    """The GPU it sees (as ``CUDA_VISIBLE_DEVICES``), or None on a machine without CUDA."""
    cores: list[int] = Field(default_factory=list)
    """The CPU cores it runs on (empty: any)."""
    threads: int = Field(1, gt=0)
    """torch's intra-op threads (and OpenMP's and MKL's)."""

    def env(self) -> dict[str, str]:
        """The environment variables that pin a process started with them."""
        env = dict.fromkeys(THREAD_VARIABLES, str(self.threads))
        if self.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(self.gpu)
        return env

    def apply(self) -> None:
        """Pin the calling process: its cores and torch's thread count."""
        import torch

        if self.cores and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, self.cores)
        torch.set_num_threads(self.threads)

    def describe(self) -> str:
        """``GPU 1, cores 2,3 (2 threads)``, for logs."""
        cores = f"core{'s' if len(self.cores) > 1 else ''} {','.join(map(str, self.cores))}" if self.cores else "any core"
        return f"{f'GPU {self.gpu}, ' if self.gpu is not None else ''}{cores} ({self.threads} thread{'s' if self.threads > 1 else ''})"


def describe_process() -> str:
    """What the calling process runs on, as it sees it: ``cores [0] with 1 torch thread(s)`` (and its GPUs)."""
    import torch

    gpus = f", GPU(s) {os.environ.get('CUDA_VISIBLE_DEVICES', 'all')}" if gpu_count() else ""
    return f"cores {usable_cores()} with {torch.get_num_threads()} torch thread(s){gpus}"


def gpu_count() -> int:
    """The CUDA devices this process sees (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def usable_cores() -> list[int]:
    """The CPU cores this process may run on."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def plan_devices(slots: int, gpus: int, cores: list[int], threads: int | None = None) -> list[Device]:
    """One device per slot: GPUs in turn, and each slot ``threads`` of ``cores`` (None: its share,
    len // slots, at least 1), the next ones in turn."""
    share = threads or max(1, len(cores) // slots)
    return [
        Device(gpu=i % gpus if gpus else None, cores=sorted({cores[(i * share + j) % len(cores)] for j in range(share)}), threads=share)
        for i in range(slots)
    ]


class DevicePool:
    """Devices handed out one per running fine-tune; a lease waits while every device is taken."""

    def __init__(self, devices: list[Device]):
        self._free: queue.Queue[Device] = queue.Queue()
        for device in devices:
            self._free.put(device)

    @contextlib.contextmanager
    def lease(self) -> Iterator[Device]:
        """A free device, given back when the block ends."""
        device = self._free.get()
        try:
            yield device
        finally:
            self._free.put(device)


_POOLS: dict[tuple[int, int | None], DevicePool] = {}
_POOLS_LOCK = threading.Lock()


def device_pool(slots: int, threads: int | None = None) -> DevicePool:
    """This process's pool of ``slots`` devices of ``threads`` threads (see ``plan_devices``);
    every fan-out with those settings shares it."""
    with _POOLS_LOCK:
        if (slots, threads) not in _POOLS:
            _POOLS[slots, threads] = DevicePool(plan_devices(slots, gpu_count(), usable_cores(), threads))
        return _POOLS[slots, threads]
