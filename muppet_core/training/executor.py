"""Where each fine-tune of the fan-out runs (``finetune.executor``): the executors, a registry as
the task families are.

An executor is an ``Executor`` registered (``register_executor``) under the ``kind`` of its settings
model (a ``config.ExecutorSettings``, validated where pipelines.yaml is read). It takes the fan-out's
fine-tunes one at a time (``Executor.run``; the fan-out makes each a task of its own, holding a slot of
its concurrency limit), or all at once (``whole_fan_out``, ``Executor.run_all``).

- ``thread``: in the calling thread, inside the flow's process. With several at once they share
  torch's global random generator and the process: their results are not bit-exact across runs,
  and a crash takes the others down.
- ``process``: in a process of its own (a ``FinetuneJob``, ``muppet_core.training.finetune_worker``),
  started by the launcher that starts the pre-finetuning workers, pinned to one device of this
  process's pool (one GPU through CUDA_VISIBLE_DEVICES, and its share of the CPU cores with torch's
  thread count to match; its ``threads`` fixes that count). Its data and its result travel through
  the artifact store. A process that dies is started again up to ``retries`` times, resuming from its
  last checkpoint, and is then a failure record (``retry_or_fail``, as for the ``deployment``'s runs).
  With ``warm`` (the default) the processes are warm workers (``muppet_core.training.warm``): one per
  device stays up for the fan-out (``Executor.fan_out``) and runs its fine-tunes one after another,
  bit-identical to a process each, without starting Python, torch and the libraries for each.
- ``auto``: ``process`` where several devices or several fine-tunes at once would share one
  process, ``thread`` otherwise (see ``pick_executor``); it has the settings of both.
- ``deployment``: flow runs on a Prefect work pool, whose workers run the same jobs on other
  machines; registered by ``flows.finetune_remote``, since it needs Prefect deployments.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import torch

from muppet_core.artifacts.stage import StageOutput
from muppet_core.artifacts.store import ArtifactStore
from muppet_core.callbacks import CallbackSpec
from muppet_core.config import ExecutorSettings, FinetuneConfig, ProcessSettings, ThreadSettings
from muppet_core.errors import MuppetError
from muppet_core.registry import Registry, did_you_mean
from muppet_core.training.finetune import FinetuneRun, finetune_stage
from muppet_core.training.finetune_worker import FinetuneJob, retry_or_fail
from muppet_core.training.launch import MAIN, LaunchError, job_path, run_job
from muppet_core.training.pinning import Device, device_pool, gpu_count
from muppet_core.training.warm import WORKERS

log = logging.getLogger(__name__)
Callbacks = list[CallbackSpec] | tuple[CallbackSpec, ...]

EXECUTORS = Registry("executor")
"""Every executor this process runs, by name (see ``register_executor``)."""


class Executor:
    """A way to run the fan-out's fine-tunes: subclass it, name its ``settings`` model and register
    an instance (``register_executor``)."""

    settings: type[ExecutorSettings] = ExecutorSettings
    """Its settings model; the default of the model's ``kind`` is the executor's name."""
    whole_fan_out: bool = False
    """Whether it takes every fine-tune of the fan-out at once (``run_all``), not one at a time (``run``)."""

    @property
    def name(self) -> str:
        """The name it is registered under: its settings' ``kind``."""
        return self.settings.model_fields["kind"].default

    def fan_out(self) -> AbstractContextManager:
        """Around a fan-out's fine-tunes (``run`` called for each inside it): what the executor keeps for
        them lives as long as the block (the ``process`` executor's warm workers); nothing by default."""
        return contextlib.nullcontext()

    def check(self, config: FinetuneConfig, store: ArtifactStore) -> None:
        """Before any work, refuse what it cannot run (a store other machines do not reach, say);
        nothing by default.

        Raises:
            MuppetError: what is missing, in one line.
        """

    def run(
        self, pipeline: str, run: FinetuneRun, data: StageOutput, config: FinetuneConfig, store: ArtifactStore,
        log_line: Callable[[str], None], callbacks: Callbacks = (),
    ) -> StageOutput:
        """One fine-tune through the store (``finetune_stage``): its result's output, or a failure's.

        Raises:
            MuppetError: the executor takes the whole fan-out at once (``run_all``).
        """
        raise MuppetError(f"finetune.executor '{self.name}' does not run one fine-tune at a time: it takes the whole fan-out at once (Executor.run_all)")

    def run_all(
        self, pipeline: str, runs: list[FinetuneRun], data: list[StageOutput], config: FinetuneConfig, store: ArtifactStore,
        callbacks: Callbacks, log_line: Callable[[str], None], done: Callable[[int, int], None],
    ) -> list[StageOutput]:
        """Every fine-tune of the fan-out, ``runs`` with their benchmarks' ``data``, each with ``callbacks``
        (the pipeline run's tracker among them): the outputs in the order of ``runs``, ``done(finished, total)`` called as they finish (``whole_fan_out`` executors)."""
        raise MuppetError(f"finetune.executor '{self.name}' runs one fine-tune at a time (Executor.run), not the whole fan-out at once")


def register_executor(executor: Executor) -> Executor:
    """Register ``executor`` under its name, and its settings model beside the built-in ones (so
    pipelines.yaml validates them); returns it.

    Raises:
        ValueError: an executor, or another settings model, is registered under that name.
    """
    ExecutorSettings.register(executor.settings)
    EXECUTORS.register_object(executor.name, executor)
    return executor


def unregister_executor(name: str) -> None:
    """Forget the executor ``name`` and its settings model (a plugin or test taking back its own)."""
    EXECUTORS.unregister(name)
    ExecutorSettings.MEMBERS.unregister(name)


def pick_executor(config: FinetuneConfig, gpus: int | None = None) -> str:
    """The name of the executor a fan-out uses: the configured one, or for ``auto`` ``process`` when
    there is more than one GPU or more than one fine-tune at once (each then has its own random
    generator and cores, and results are bit-identical at any concurrency), else ``thread`` (no
    process to start per run). ``gpus`` defaults to the GPUs this process sees."""
    if config.executor.kind != "auto":
        return config.executor.kind
    return "process" if config.concurrency > 1 or (gpu_count() if gpus is None else gpus) > 1 else "thread"


def executor_for(config: FinetuneConfig) -> Executor:
    """The executor a fan-out with ``config`` uses (see ``pick_executor``).

    Raises:
        MuppetError: no executor of that name is registered in this process (one line naming those that are).
    """
    name = pick_executor(config)
    if name not in EXECUTORS:
        known = EXECUTORS.names()
        raise MuppetError(f"finetune.executor '{name}' is not registered in this process{did_you_mean(name, known)}; "
                          f"the executors here: {', '.join(known)}")
    return EXECUTORS.get(name)


def run_finetune(
    pipeline: str, run: FinetuneRun, data: StageOutput, config: FinetuneConfig, store: ArtifactStore,
    log_line: Callable[[str], None] = log.info, callbacks: Callbacks = (),
) -> StageOutput:
    """One fine-tune through the store (``finetune_stage``, with ``callbacks``: a tracker among them), on the
    executor ``executor_for`` picks; a process's output is streamed to ``log_line``. Returns the
    result's output, or a failure's.

    Raises:
        MuppetError: the executor is not registered here, or takes the whole fan-out at once.
    """
    return executor_for(config).run(pipeline, run, data, config, store, log_line, callbacks)


class ThreadExecutor(Executor):
    """``thread``: the fine-tune in the calling thread."""

    settings = ThreadSettings

    def run(self, pipeline, run, data, config, store, log_line, callbacks=()) -> StageOutput:
        """``finetune_stage`` here, with the executor's ``threads`` as this process's thread count when set."""
        if config.executor.threads:
            torch.set_num_threads(config.executor.threads)  # the flow process's own count: threads share it
        return finetune_stage(pipeline, run, data, config, store, callbacks)


class ProcessExecutor(Executor):
    """``process``: the fine-tune in a process of its own, pinned to a device of this process's pool."""

    settings = ProcessSettings

    def fan_out(self) -> AbstractContextManager:
        """The warm workers (``WORKERS``) end when the last fan-out using them does."""
        return WORKERS.session()

    def run(self, pipeline, run, data, config, store, log_line, callbacks=()) -> StageOutput:
        """``finetune_in_process`` on a device leased from the pool of ``concurrency`` devices."""
        with device_pool(config.concurrency, config.executor.threads).lease() as device:
            return finetune_in_process(pipeline, run, data, config, store, device, log_line, callbacks)


def finetune_in_process(
    pipeline: str, run: FinetuneRun, data: StageOutput, config: FinetuneConfig, store: ArtifactStore, device: Device,
    log_line: Callable[[str], None] = log.info, callbacks: Callbacks = (),
) -> StageOutput:
    """Run ``finetune_stage`` in a process of its own pinned to ``device``: a warm worker (``WORKERS``)
    when the executor's settings say ``warm``, else a process started for it. A process that dies
    without a result is started again (the executor's ``retries`` times), then recorded as a failure
    (``retry_or_fail``)."""
    started = time.perf_counter()
    warm = getattr(config.executor, "warm", False)
    with tempfile.TemporaryDirectory(prefix="muppet-finetune-job-") as tmp:
        result = Path(tmp) / "output.json"
        job = FinetuneJob(
            pipeline=pipeline, run=run, data=data, config=config, store=store.root, store_options=store.options, cache_dir=str(store.cache_dir),
            device=device, output=str(result), callbacks=list(callbacks),
        )
        log_line(f"fine-tune {run.name}: own process on {device.describe()}{', a warm worker' if warm else ''}")
        attempt = 0
        while True:
            try:
                if warm:
                    WORKERS.run(job, job_path(tmp), device, log_line, "the fine-tune process")
                else:
                    run_job(job, job_path(tmp), [sys.executable, "-m", MAIN], log_line, "the fine-tune process", device.env())
                return StageOutput(**json.loads(result.read_text(encoding="utf-8")))
            except LaunchError as exc:
                if (failed := retry_or_fail([job], attempt, config.executor.retries, exc, store, started, log_line)) is not None:
                    return failed[0]
                attempt += 1


THREAD = register_executor(ThreadExecutor())
PROCESS = register_executor(ProcessExecutor())
