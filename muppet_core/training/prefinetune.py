"""The pre-finetuning stage: the multi-task model trained on the pipeline's task mix, by the workers."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable

import numpy as np

from muppet_core.artifacts.stage import StageOutput, run_cached
from muppet_core.artifacts.store import ArtifactStore, code_version
from muppet_core.config import PrefinetuneConfig
from muppet_core.models.backbone import Variant
from muppet_core.training.launch import run_workers

log = logging.getLogger(__name__)
STAGE = "prefinetune"
CODE = (
    "muppet_core.families",
    "muppet_core.models",
    "muppet_core.training.callbacks",
    "muppet_core.training.checkpoint",
    "muppet_core.training.engine",
    "muppet_core.training.loop",
    "muppet_core.training.sampling",
    "muppet_core.training.streams",
    "muppet_core.training.worker",
)
# Settings that change how a run executes, not what it computes.
EXECUTION_SETTINGS = {"enabled", "checkpoint_every", "launcher", "nproc_per_node", "hostfile", "task_counts"}


def prefinetune_key(config: PrefinetuneConfig, backbone_key: str, data: dict[str, StageOutput]) -> str:
    """The content key: backbone, data, the settings that change the result, code."""
    return ArtifactStore.key(
        STAGE,
        backbone=backbone_key,
        data={t: data[t].key for t in config.tasks},
        config=config.model_dump(exclude=EXECUTION_SETTINGS),
        code=code_version(*CODE),
    )


def prefinetune_stage(
    config: PrefinetuneConfig,
    base: Variant,
    data: dict[str, StageOutput],
    store: ArtifactStore,
    log_line: Callable[[str], None] = log.info,
) -> StageOutput:
    """Pre-finetune through the store.

    A run's checkpoints live in the store's scratch area under the same key, so a killed run
    re-launched with the same pipeline resumes from its last checkpoint; they are removed once
    the model is published.
    """
    key = prefinetune_key(config, base.key, data)
    checkpoints = store.scratch(STAGE, key)

    def build(out) -> dict:
        job = {
            "config": config.model_dump(),
            "backbone_path": base.encoder_path,
            "store": store.root,
            "data_keys": {t: data[t].key for t in config.tasks},
            "out_dir": str(out),
            "checkpoint_dir": str(checkpoints),
        }
        run_workers(config, job, log_line)
        return {"tasks": config.tasks, "steps": config.steps}

    output = run_cached(store, STAGE, "+".join(config.tasks), key, build)
    shutil.rmtree(checkpoints, ignore_errors=True)
    return output


def prefinetuned_variant(
    output: StageOutput, store: ArtifactStore, tasks: list[str], name: str = "prefinetuned", experiment: str | None = None,
    backbone: str | None = None,
) -> Variant:
    """The pre-finetuned encoder as a variant to fine-tune (``backbone``: the base's, as configured)."""
    return Variant(name, output.key, str(store.fetch(STAGE, output.key) / "encoder"), tuple(tasks), experiment, backbone)


def nested_task_subsets(config: PrefinetuneConfig) -> dict[int, list[str]]:
    """The task-count experiment's subsets: the first k tasks of one seeded order, so each subset
    contains every smaller one."""
    order = [config.tasks[i] for i in np.random.default_rng([config.seed, 7]).permutation(len(config.tasks))]
    return {k: sorted(order[:k]) for k in sorted(set(config.task_counts)) if 0 < k <= len(order)}
