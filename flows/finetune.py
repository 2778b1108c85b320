"""fine-tune: the fan-out, one cached task per variant x benchmark x seed x learning rate (and experiment run)."""

from __future__ import annotations

from prefect import flow, get_run_logger, task

from muppet_core.artifacts.stage import StageOutput
from muppet_core.config import PipelineConfig
from muppet_core.models.backbone import Variant
from muppet_core.pipelines import open_store
from muppet_core.training.finetune import FAILED_STAGE, FinetuneRun, finetune_stage, plan_runs


@task(name="finetune-benchmark", task_run_name="finetune-{run.name}")
def finetune_one(pipeline_name: str, pipeline: PipelineConfig, run: FinetuneRun, data: StageOutput) -> StageOutput:
    output = finetune_stage(pipeline_name, run, data, pipeline.finetune, open_store(pipeline))
    if output.stage == FAILED_STAGE:
        get_run_logger().error("fine-tune failed; the leaderboard shows its cell as missing and a re-run retries it: %s", output.uri)
    else:
        get_run_logger().info(output.describe())
    return output


@flow(name="fine-tune")
def finetune_all(pipeline_name: str, pipeline: PipelineConfig, variants: list[Variant], data: dict[str, StageOutput]) -> list[StageOutput]:
    """Submit every planned fine-tune at once; the flow's task runner bounds how many run together."""
    runs = plan_runs(pipeline.finetune, variants)
    futures = [finetune_one.submit(pipeline_name, pipeline, run, data[run.benchmark]) for run in runs]
    return [f.result() for f in futures]
