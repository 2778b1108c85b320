"""prepare-data: normalize every dataset the pipeline uses, one cached task each."""

from __future__ import annotations

from prefect import flow, get_run_logger, task

from muppet_core.artifacts.stage import StageOutput
from muppet_core.config import PipelineConfig
from muppet_core.data.stage import data_stage
from muppet_core.pipelines import open_store


@task(name="normalize-dataset", task_run_name="normalize-{name}")
def normalize(name: str, pipeline: PipelineConfig) -> StageOutput:
    output = data_stage(name, pipeline.data, open_store(pipeline))
    get_run_logger().info(output.describe())
    return output


@flow(name="prepare-data")
def prepare_data(pipeline: PipelineConfig) -> dict[str, StageOutput]:
    """Every pre-finetuning task and benchmark, normalized into the store."""
    names = sorted({*pipeline.prefinetune.tasks, *pipeline.finetune.benchmarks})
    futures = {name: normalize.submit(name, pipeline) for name in names}
    return {name: future.result() for name, future in futures.items()}
