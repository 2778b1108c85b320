"""The pre-finetuning stage: the multi-task model trained on the pipeline's task mix, by the workers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from muppet_core import stages
from muppet_core.artifacts.fingerprints import library_versions
from muppet_core.artifacts.stage import StageOutput, run_cached
from muppet_core.artifacts.store import ArtifactStore, code_version
from muppet_core.callbacks import CallbackSpec, computing
from muppet_core.config import PrefinetuneConfig
from muppet_core.models.backbone import Variant
from muppet_core.schema import result_settings
from muppet_core.tasks.catalog import entry_modules, get_task
from muppet_core.training.nodes import run_workers
from muppet_core.training.worker import PrefinetuneJob

log = logging.getLogger(__name__)
WORKER = "muppet_core.training.worker"


def prefinetune_key(config: PrefinetuneConfig, backbone_key: str, data: dict[str, StageOutput]) -> str:
    """The content key: backbone, data, every setting but those marked execution or plan, the code
    the workers run (and this module, and the plugin modules that define the tasks' families), and
    the training libraries' versions."""
    return ArtifactStore.key(
        stages.PREFINETUNE,
        backbone=backbone_key,
        data={t: data[t].key for t in config.tasks},
        config=result_settings(config),
        code=code_version(WORKER, __name__, *sorted({m for t in config.tasks for m in entry_modules(get_task(t), "family")})),
        libraries=library_versions(),
    )


def prefinetune_stage(
    config: PrefinetuneConfig,
    base: Variant,
    data: dict[str, StageOutput],
    store: ArtifactStore,
    log_line: Callable[[str], None] = log.info,
    callbacks: list[CallbackSpec] = (),
    progress: Callable[[int, int], None] | None = None,
) -> StageOutput:
    """Pre-finetune through the store.

    A run's checkpoints live in the store's scratch area under the same key
    (``ArtifactStore.scratch_uri``), so a killed run re-launched with the same pipeline resumes from
    its last checkpoint, on this machine or another; they are removed once the model is published.
    Over several nodes (``config.nnodes``) the store must be one every node reaches: the job, the
    checkpoints and rank 0's export go through it, and the rendezvous id derives from the key.
    ``callbacks`` are installed in every worker, and stage callbacks (a tracker, see
    ``muppet_core.tracking``) hear a computed run start and end (see ``CallbackSpec``);
    ``progress(update, total)`` follows its updates (on one node).

    Raises:
        StoreError: several nodes and a store only this machine reaches (before any work).
    """
    if config.multi_node():
        store.require_shared(config.multi_node(), config.shared_store)
    key = prefinetune_key(config, base.key, data)
    scratch = ArtifactStore(store.scratch_uri(stages.PREFINETUNE, key))

    def build(out) -> dict:
        settings = {"backbone": base.backbone or base.encoder_path, **result_settings(config)}
        nodes = bool(config.multi_node())
        with computing(callbacks, f"pre-finetune {base.label or base.name} ({len(config.tasks)} tasks)", key, settings) as hooks:
            job = PrefinetuneJob(
                config=config, backbone_path=(base.backbone or base.encoder_path) if nodes else base.encoder_path, store=store.root, store_options=store.options,
                data_keys={t: data[t].key for t in config.tasks}, out_dir=f"{scratch.root}/export" if nodes else str(out),
                checkpoint_dir=scratch.root, callbacks=hooks.loop,
            )
            run_workers(job, log_line, progress, rdzv_id=f"muppet-{key}")
            if nodes:  # rank 0 exported on whichever node it ran
                scratch.get_folder("export", out)
        return {"tasks": config.tasks, "steps": config.steps}

    output = run_cached(store, stages.PREFINETUNE, "+".join(config.tasks), key, build)
    scratch.remove("")
    return output


@dataclass(frozen=True)
class PlannedPrefinetune:
    """One pre-finetune of a pipeline: the variant it makes, its settings, and its experiment (None
    for the pipeline's own pre-finetuned variant)."""

    name: str
    config: PrefinetuneConfig
    experiment: str | None = None


def nested_task_subsets(config: PrefinetuneConfig) -> dict[int, list[str]]:
    """The task-count experiment's subsets: the first k tasks of one seeded order, so each subset
    contains every smaller one."""
    order = [config.tasks[i] for i in np.random.default_rng([config.seed, 7]).permutation(len(config.tasks))]
    return {k: sorted(order[:k]) for k in sorted(set(config.task_counts)) if 0 < k <= len(order)}


def plan_prefinetunes(config: PrefinetuneConfig) -> list[PlannedPrefinetune]:
    """The pipeline's pre-finetune, then one per count of the task-count experiment (the count of
    all tasks is the pipeline's own run, taken from the store)."""
    planned = [PlannedPrefinetune("prefinetuned", config)]
    for k, tasks in nested_task_subsets(config).items():
        subset = config if k == len(config.tasks) else config.model_copy(update={"tasks": tasks, "task_counts": []})
        planned.append(PlannedPrefinetune(f"prefinetuned-{k}tasks", subset, "task_count"))
    return planned


def prefinetuned_variant(output: StageOutput, store: ArtifactStore, planned: PlannedPrefinetune, backbone: str | None = None) -> Variant:
    """The pre-finetuned encoder as a variant to fine-tune (``backbone``: the base's, as configured)."""
    return Variant(planned.name, output.key, str(store.fetch(stages.PREFINETUNE, output.key) / "encoder"), tuple(planned.config.tasks), planned.experiment, backbone)
