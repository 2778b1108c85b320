"""The plan of a run as its callers want it: ``muppet plan``'s and every run's own, and the budget a run is held to."""

from __future__ import annotations

import os

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.config import PipelineConfig
from muppet_core.errors import MuppetError, OverBudgetError
from muppet_core.planning.estimate import Plan, plan_pipeline
from muppet_core.planning.hardware import device, local_kind, results_dir


def pipeline_gpus(cfg: PipelineConfig) -> int:
    """The devices a pipeline's pre-finetuning runs on: nodes x processes per node."""
    return cfg.prefinetune.nnodes * cfg.prefinetune.nproc_per_node


def make_plan(name: str, cfg: PipelineConfig, store: ArtifactStore, config_path: str | os.PathLike[str],
              gpus: int | None = None, kind: str | None = None, mfu: float | None = None) -> Plan:
    """The plan of pipeline ``name`` on ``gpus`` devices (default: its own nodes x processes) of ``kind`` (default: this
    machine's), at ``mfu`` (default: the kind's stored bench result, else the stated assumption).

    Raises:
        MuppetError: an unknown kind, an MFU outside (0, 1], fewer than one GPU.
    """
    if gpus is not None and gpus < 1:
        raise MuppetError(f"--gpus {gpus}: at least 1")
    kind = kind or local_kind()
    return plan_pipeline(name, cfg, store, device(kind, cfg.prefinetune.precision, results_dir(config_path), mfu), gpus or pipeline_gpus(cfg))


def check_budget(plan: Plan, max_gpu_hours: float | None) -> None:
    """Refuse a run whose plan exceeds ``max_gpu_hours`` (None: no limit), or whose GPU-hours are unknown under one.

    Raises:
        OverBudgetError: one line naming the plan's figure and the limit.
    """
    if max_gpu_hours is None:
        return
    hours = plan.gpu_hours
    if hours is None:
        raise OverBudgetError(f"pipeline '{plan.pipeline}': its plan's GPU-hours are unknown (see its plan artifact), so max_gpu_hours "
                              f"{max_gpu_hours:g} cannot be held: nothing was run")
    if hours > max_gpu_hours:
        raise OverBudgetError(f"pipeline '{plan.pipeline}': its plan needs {hours:.3g} GPU-hours on {plan.gpus} x {plan.device.kind}, over "
                              f"max_gpu_hours {max_gpu_hours:g}: nothing was run")
