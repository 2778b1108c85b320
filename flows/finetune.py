"""fine-tune: the fan-out, one cached task per backbone variant x benchmark x seed."""

from __future__ import annotations

from prefect import flow, get_run_logger, task

from muppet_core.artifacts.stage import StageOutput
from muppet_core.config import PipelineConfig
from muppet_core.models.backbone import Variant
from muppet_core.pipelines import open_store
from muppet_core.training.finetune import FAILED_STAGE, finetune_stage


@task(name="finetune-benchmark", task_run_name="finetune-{variant.name}-{benchmark}-seed{seed}")
def finetune_one(pipeline_name: str, pipeline: PipelineConfig, variant: Variant, benchmark: str, data: StageOutput, seed: int) -> StageOutput:
    output = finetune_stage(
        pipeline_name, variant.name, variant.key, variant.encoder_path, benchmark, data, pipeline.finetune, seed, open_store(pipeline)
    )
    if output.stage == FAILED_STAGE:
        get_run_logger().error("fine-tune failed; the leaderboard shows its cell as missing and a re-run retries it: %s", output.uri)
    else:
        get_run_logger().info(output.describe())
    return output


@flow(name="fine-tune")
def finetune_all(pipeline_name: str, pipeline: PipelineConfig, variants: list[Variant], data: dict[str, StageOutput]) -> list[StageOutput]:
    """Submit every fine-tune at once; the flow's task runner bounds how many run together."""
    futures = [
        finetune_one.submit(pipeline_name, pipeline, variant, benchmark, data[benchmark], seed)
        for variant in variants
        for benchmark in pipeline.finetune.benchmarks
        for seed in pipeline.finetune.seeds
    ]
    return [f.result() for f in futures]
