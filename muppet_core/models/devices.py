"""Where a rank computes: the one place that picks its device, and the one helper that moves batches there.

The training loop places the model with ``rank_device`` and moves every training batch with
``to_device``; evaluation moves its batches with ``to_device`` onto the model's device. A batch
that reaches the model without passing here is a bug the tests look for.
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import torch

from muppet_core.errors import MuppetError


T = TypeVar("T")


class DeviceError(MuppetError):
    """A device was asked for that this machine does not have."""


def device_problem(setting: str) -> str | None:
    """Why this process cannot compute on ``setting`` (``cpu``, ``cuda``, ``cuda:N``): CUDA where it has
    none, or a CUDA index beyond the devices it sees; None when it can."""
    device = torch.device(setting)
    if device.type != "cuda":
        return None
    if not torch.cuda.is_available():
        return f"device {setting!r} is set but this machine has no CUDA device (use cpu, or leave device unset)"
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        return f"device {setting!r} is set but this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1} (or leave device unset)"
    return None


def rank_device(setting: str | None = None) -> torch.device:
    """This rank's device: ``setting`` when given (``cpu``, ``cuda``, ``cuda:1``), else ``cuda:LOCAL_RANK``
    when CUDA is present, else the CPU. A bare ``cuda`` also means ``cuda:LOCAL_RANK``.

    Raises:
        DeviceError: ``setting`` names CUDA on a machine without it, or a CUDA device it does not have (``device_problem``).
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if setting is None:
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    if problem := device_problem(setting):
        raise DeviceError(problem)
    device = torch.device(setting)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def to_device(batch: dict[str, torch.Tensor], device: torch.device, non_blocking: bool = False) -> dict[str, torch.Tensor]:
    """A collated batch with every tensor on ``device`` (``non_blocking``: from page-locked memory, the copy
    queued behind the device's work instead of waited for)."""
    return {k: v.to(device, non_blocking=non_blocking) for k, v in batch.items()}


def prefetched(items: Iterable[T], collate: Callable[[T], dict[str, torch.Tensor]], device: torch.device,
               prefetch: bool | None = None) -> Iterator[tuple[T, dict[str, torch.Tensor]]]:
    """Each of ``items`` with its batch (``collate(item)``) on ``device``, in order.

    With ``prefetch`` (None: on a CUDA device), the next item is taken from ``items`` (in this thread)
    and collated on a helper thread while the caller computes on the current batch; on a CUDA device
    it is also pinned in page-locked memory and copied without blocking, so collation and the copy
    overlap the device's work. Without it each batch is collated here, when its turn comes. The
    batches are the same either way.
    """
    if prefetch is None:
        prefetch = device.type == "cuda"
    if not prefetch:
        for item in items:
            yield item, to_device(collate(item), device)
        return
    pin = device.type == "cuda"

    def load(item: T) -> dict[str, torch.Tensor]:
        batch = collate(item)
        return {k: v.pin_memory() for k, v in batch.items()} if pin else batch

    source = iter(items)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="muppet-prefetch") as pool:
        upcoming = next(source, _END)
        loading = pool.submit(load, upcoming) if upcoming is not _END else None
        while upcoming is not _END:
            item, batch = upcoming, loading
            upcoming = next(source, _END)  # the next item is taken before this one is handed out
            loading = pool.submit(load, upcoming) if upcoming is not _END else None
            yield item, to_device(batch.result(), device, non_blocking=pin)


_END = object()
