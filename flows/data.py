"""prepare-data: normalize every dataset the pipeline uses, one cached task each."""

from __future__ import annotations

from prefect import flow, get_run_logger, task

from muppet_core.artifacts.stage import StageOutput
from muppet_core.config import PipelineConfig
from muppet_core.data.stage import data_stage
from muppet_core.models.backbone import Variant
from muppet_core.pipelines import open_store
from muppet_core.stopping import stop_on_interrupt


@task(name="normalize-dataset", task_run_name="normalize-{name}")
def normalize(name: str, pipeline: PipelineConfig, tokenizer: Variant) -> StageOutput:
    output = data_stage(name, pipeline.data, open_store(pipeline), tokenizer)
    get_run_logger().info(output.describe())
    return output


@flow(name="prepare-data")
def prepare_data(pipeline: PipelineConfig, tokenizer: Variant) -> dict[str, StageOutput]:
    """Every pre-finetuning task and benchmark, normalized into the store (lengths in the backbone's tokens)."""
    names = pipeline.data_tasks()
    futures = {name: normalize.submit(name, pipeline, tokenizer) for name in names}
    with stop_on_interrupt():  # SIGTERM, Ctrl-C: a dataset waiting for another run's build of it stops too
        return {name: future.result() for name, future in futures.items()}
