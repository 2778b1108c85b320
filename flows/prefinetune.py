"""pre-finetune: the multi-task stage, producing the pre-finetuned variant (and the task-count experiment's)."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.progress import Progress
from muppet_core.artifacts.stage import StageOutput
from muppet_core.callbacks import CallbackSpec
from muppet_core.config import PipelineConfig
from muppet_core.models.backbone import Variant
from muppet_core.pipelines import open_store
from muppet_core.training.prefinetune import plan_prefinetunes, prefinetune_stage, prefinetuned_variant


@flow(name="pre-finetune")
def prefinetune(
    pipeline: PipelineConfig, base: Variant, data: dict[str, StageOutput], callbacks: list[CallbackSpec] | None = None
) -> list[Variant]:
    """Pre-finetune the base backbone on the pipeline's task mix, then on each nested subset of the
    task-count experiment; the workers' log streams into this run, a progress artifact follows
    their updates, and ``callbacks`` go to every pre-finetune (the pipeline run's tracker; None: none)."""
    store = open_store(pipeline)
    logger = get_run_logger()
    variants = []
    for planned in plan_prefinetunes(pipeline.prefinetune):
        progress = Progress(lambda done, total, name=planned.name: f"{name}: update {done} of {total}")
        output = prefinetune_stage(planned.config, base, data, store, logger.info, callbacks or [], progress)
        logger.info(output.describe())
        variants.append(prefinetuned_variant(output, store, planned, base.backbone))
    return variants
