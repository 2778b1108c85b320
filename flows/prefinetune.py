"""pre-finetune: the multi-task stage, producing the pre-finetuned variant (and the task-count experiment's)."""

from __future__ import annotations

from prefect import flow, get_run_logger

from muppet_core.artifacts.stage import StageOutput
from muppet_core.config import PipelineConfig
from muppet_core.models.backbone import Variant
from muppet_core.pipelines import open_store
from muppet_core.training.prefinetune import nested_task_subsets, prefinetune_stage, prefinetuned_variant


@flow(name="pre-finetune")
def prefinetune(pipeline: PipelineConfig, base: Variant, data: dict[str, StageOutput]) -> list[Variant]:
    """Pre-finetune the base backbone on the pipeline's task mix, then on each nested subset of the
    task-count experiment; the workers' log streams into this run."""
    store = open_store(pipeline)
    logger = get_run_logger()
    config = pipeline.prefinetune
    output = prefinetune_stage(config, base, data, store, logger.info)
    logger.info(output.describe())
    variants = [prefinetuned_variant(output, store, config.tasks, backbone=base.backbone)]
    for k, tasks in nested_task_subsets(config).items():
        subset = config.model_copy(update={"tasks": tasks, "task_counts": []})
        out = output if k == len(config.tasks) else prefinetune_stage(subset, base, data, store, logger.info)
        logger.info(out.describe())
        variants.append(prefinetuned_variant(out, store, tasks, f"prefinetuned-{k}tasks", "task_count", base.backbone))
    return variants
