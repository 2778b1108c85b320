"""leaderboard: result records -> tables in the store, a results history, and Prefect artifacts."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from muppet_core import stages
from muppet_core.artifacts.stage import StageOutput
from muppet_core.callbacks import CallbackSpec
from muppet_core.config import PipelineConfig
from muppet_core.evaluation.results import read_result
from muppet_core.leaderboard.stage import CHART, artifact_keys, leaderboard_stage, row_origins
from muppet_core.pipelines import open_store
from muppet_core.tracking import attach_files


@flow(name="leaderboard")
def build_leaderboard(
    pipeline_name: str, pipeline: PipelineConfig, backbones: list[str], results: list[StageOutput],
    callbacks: list[CallbackSpec] | None = None, owners: dict[str, str] | None = None,
) -> str:
    """Keep the fine-tune results of every backbone evaluated (failed runs included) and publish
    the table of every backbone the pipeline keeps; returns the published CSV's location. A new
    table's CSV and chart go to the pipeline run's tracker among ``callbacks``; ``owners`` names the
    backbone (as configured) of each variant key."""
    store = open_store(pipeline)
    records = [read_result(store, r) for r in results]
    published = leaderboard_stage(
        pipeline_name, backbones, pipeline.finetune.benchmarks, results, records, store,
        selection=pipeline.finetune.selection, run=str(flow_run.root_flow_run_id), finetune=pipeline.finetune, own=pipeline.backbone,
        owners=owners,
    )
    logger = get_run_logger()
    logger.info(published.output.describe())
    for line in row_origins(published.board, str(flow_run.root_flow_run_id)):
        logger.info(line)
    if not published.output.cache_hit:
        folder = store.fetch(stages.LEADERBOARD, published.output.key)
        attach_files(callbacks or [], [folder / "leaderboard.csv", folder / CHART])
    markdown_key, table_key = artifact_keys(pipeline_name)
    create_markdown_artifact(published.markdown, key=markdown_key, description=f"Leaderboard of {pipeline_name}")
    create_table_artifact(published.table, key=table_key, description=f"Leaderboard of {pipeline_name} (the CSV's rows)")
    for line in published.board.missing():
        logger.warning("missing cell: %s", line)
    for out in published.board.left_out:
        logger.warning("left out of the table: %s (%d rows): %s", out.backbone, out.rows, out.reason)
    logger.info("leaderboard CSV: %s; history: %s", published.csv_uri, published.history_uri)
    return published.csv_uri
