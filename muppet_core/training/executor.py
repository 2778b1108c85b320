"""Where each fine-tune of the fan-out runs (``finetune.executor``).

- ``thread``: in the calling thread, inside the flow's process. With several at once they share
  torch's global random generator and the process: their results are not bit-exact across runs,
  and a crash takes the others down.
- ``process``: in a process of its own (``muppet_core.training.finetune_worker``), started by the
  launcher that starts the pre-finetuning workers, pinned to one device of this process's pool
  (one GPU through CUDA_VISIBLE_DEVICES, and its share of the CPU cores with torch's thread count
  to match; ``finetune.threads`` fixes that count). Its data and its result travel through the
  artifact store. A process that dies is
  started again up to ``finetune.retries`` times, resuming from its last checkpoint, and is then a
  failure record.
- ``auto``: ``process`` where several devices or several fine-tunes at once would share one
  process, ``thread`` otherwise (see ``pick_executor``).
- ``deployment``: a flow run on a Prefect work pool, whose workers run the same job model on other
  machines (``flows.finetune_remote``); the fan-out submits those, not this module.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from muppet_core.artifacts.stage import StageOutput
from muppet_core.artifacts.store import ArtifactStore
from muppet_core.callbacks import CallbackSpec
from muppet_core.config import FinetuneConfig
from muppet_core.errors import MuppetError, first_line
from muppet_core.training.finetune import FinetuneRun, finetune_key, finetune_stage, record_failure
from muppet_core.training.finetune_worker import FinetuneJob
from muppet_core.training.launch import LaunchError, job_path, run_job
from muppet_core.training.pinning import Device, device_pool, gpu_count

log = logging.getLogger(__name__)
FINETUNE_WORKER = "muppet_core.training.finetune_worker"
LOCAL_EXECUTORS = ("thread", "process")
"""The executors ``run_finetune`` runs; the fan-out hands ``deployment``'s runs to a work pool instead."""


def pick_executor(config: FinetuneConfig, gpus: int | None = None) -> str:
    """The executor a fan-out uses: the configured one, or for ``auto`` ``process`` when there is
    more than one GPU or more than one fine-tune at once (each then has its own random generator
    and cores, and results are bit-identical at any concurrency), else ``thread`` (no process to
    start per run). ``gpus`` defaults to the GPUs this process sees."""
    if config.executor != "auto":
        return config.executor
    return "process" if config.concurrency > 1 or (gpu_count() if gpus is None else gpus) > 1 else "thread"


def run_finetune(
    pipeline: str, run: FinetuneRun, data: StageOutput, config: FinetuneConfig, store: ArtifactStore,
    log_line: Callable[[str], None] = log.info, callbacks: list[CallbackSpec] | tuple[CallbackSpec, ...] = (),
) -> StageOutput:
    """One fine-tune through the store (``finetune_stage``, with ``callbacks``: a tracker among them), on the
    executor ``pick_executor`` picks; a process's output is streamed to ``log_line``. Returns the
    result's output, or a failure's.

    Raises:
        MuppetError: the executor is not one that runs here (``deployment`` submits flow runs to a
            work pool, ``flows.finetune_remote``; it never runs as a local process).
    """
    executor = pick_executor(config)
    if executor not in LOCAL_EXECUTORS:
        raise MuppetError(f"finetune.executor '{executor}' does not run a fine-tune in this process: run_finetune runs "
                          f"{' or '.join(LOCAL_EXECUTORS)} (a deployment's fine-tunes go to its work pool through flows.finetune_remote)")
    if executor == "thread":
        if config.threads:
            torch.set_num_threads(config.threads)  # the flow process's own count: threads share it
        return finetune_stage(pipeline, run, data, config, store, callbacks)
    with device_pool(config.concurrency, config.threads).lease() as device:
        return finetune_in_process(pipeline, run, data, config, store, device, log_line, callbacks)


def finetune_in_process(
    pipeline: str, run: FinetuneRun, data: StageOutput, config: FinetuneConfig, store: ArtifactStore, device: Device,
    log_line: Callable[[str], None] = log.info, callbacks: list[CallbackSpec] | tuple[CallbackSpec, ...] = (),
) -> StageOutput:
    """Run ``finetune_stage`` in a process of its own pinned to ``device``. A process that dies
    without a result is started again (``config.retries`` times), then recorded as a failure."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="muppet-finetune-job-") as tmp:
        result = Path(tmp) / "output.json"
        job = FinetuneJob(
            pipeline=pipeline, run=run, data=data, config=config, store=store.root, cache_dir=str(store.cache_dir),
            device=device, output=str(result), callbacks=list(callbacks),
        )
        log_line(f"fine-tune {run.name}: own process on {device.describe()}")
        for attempt in range(config.retries + 1):
            try:
                run_job(job, job_path(tmp), [sys.executable, "-m", FINETUNE_WORKER], log_line, "the fine-tune process", device.env())
                return StageOutput(**json.loads(result.read_text(encoding="utf-8")))
            except LaunchError as exc:
                error = exc
                if attempt < config.retries:
                    log_line(f"fine-tune {run.name}: {first_line(exc)}; starting it again from its last checkpoint ({attempt + 1} of {config.retries})")
    log.error("fine-tune %s failed: %s", run.name, error)
    return record_failure(pipeline, run, finetune_key(run, data, config), store, started, error)
