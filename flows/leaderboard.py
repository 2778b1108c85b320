"""leaderboard: result records -> tables in the store and a Prefect table artifact."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from muppet_core.artifacts.stage import StageOutput
from muppet_core.config import PipelineConfig
from muppet_core.leaderboard.stage import leaderboard_stage, published_path
from muppet_core.pipelines import open_store
from muppet_core.training.finetune import read_result


@flow(name="leaderboard")
def build_leaderboard(pipeline_name: str, pipeline: PipelineConfig, results: list[StageOutput]) -> str:
    """Aggregate the fine-tune results; returns the published CSV's location."""
    store = open_store(pipeline)
    records = [read_result(store, r) for r in results]
    output = leaderboard_stage(pipeline_name, pipeline.finetune.benchmarks, results, records, store)
    logger = get_run_logger()
    logger.info(output.describe())
    markdown = store.read_text(published_path(pipeline_name, "md"))
    create_markdown_artifact(markdown, key=f"leaderboard-{pipeline_name}", description=f"Leaderboard of {pipeline_name}")
    csv_uri = f"{store.root}/{published_path(pipeline_name, 'csv')}"
    logger.info("leaderboard CSV: %s", csv_uri)
    return csv_uri
