"""The leaderboard stage: result records -> a content-addressed table, published under the pipeline's name."""

from __future__ import annotations

from pathlib import Path

from muppet_core.artifacts.stage import StageOutput, run_cached
from muppet_core.artifacts.store import ArtifactStore, code_version
from muppet_core.evaluation.results import ResultRecord
from muppet_core.leaderboard.table import leaderboard, to_csv, to_json, to_markdown

STAGE = "leaderboard"
CODE = ("muppet_core.leaderboard", "muppet_core.evaluation.results")


def published_path(pipeline: str, fmt: str) -> str:
    """Where a pipeline's latest leaderboard lives in the store: ``pipelines/<name>/leaderboard.<fmt>``."""
    return f"pipelines/{pipeline}/leaderboard.{fmt}"


def leaderboard_stage(
    pipeline: str, benchmarks: list[str], results: list[StageOutput], records: list[ResultRecord], store: ArtifactStore
) -> StageOutput:
    """Build the table from the result records and publish it as the pipeline's latest leaderboard."""
    key = store.key(STAGE, pipeline=pipeline, benchmarks=benchmarks, results=sorted(r.key for r in results), code=code_version(*CODE))
    table = leaderboard(records, benchmarks)
    renders = {"csv": to_csv(table), "md": to_markdown(table, f"Leaderboard: {pipeline}"), "json": to_json(table)}

    def build(out: Path) -> dict:
        for fmt, text in renders.items():
            (out / f"leaderboard.{fmt}").write_text(text)
        return {"pipeline": pipeline, "results": sorted(r.key for r in results)}

    output = run_cached(store, STAGE, pipeline, key, build)
    for fmt, text in renders.items():
        store.write_text(published_path(pipeline, fmt), text)
    return output
