"""The leaderboard stage: result records -> a content-addressed leaderboard (CSV, Markdown, JSON,
PNG charts), published as the pipeline's latest under ``pipelines/<name>/`` and appended to its
results history."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from muppet_core.artifacts.stage import StageOutput, run_cached
from muppet_core.artifacts.store import ArtifactStore, code_version
from muppet_core.evaluation.results import ResultRecord
from muppet_core.leaderboard.aggregate import aggregate
from muppet_core.leaderboard.history import append_history
from muppet_core.leaderboard.paper import load_references
from muppet_core.leaderboard.plots import bar_chart, curve_charts
from muppet_core.leaderboard.render import table_rows, to_csv, to_json, to_markdown
from muppet_core.leaderboard.schema import Leaderboard
from muppet_core.models.backbone import backbone_label
from muppet_core.registry import safe_name

STAGE = "leaderboard"
CHART = "leaderboard.png"


def published_path(pipeline: str, fmt: str) -> str:
    """Where a pipeline's latest leaderboard lives in the store: ``pipelines/<name>/leaderboard.<fmt>``.

    Raises:
        MuppetError: the pipeline name is not a safe name (``registry.safe_name``).
    """
    return f"pipelines/{safe_name('pipeline', pipeline)}/leaderboard.{fmt}"


def artifact_keys(pipeline: str) -> tuple[str, str]:
    """Stable Prefect artifact keys of a pipeline's leaderboard: (markdown, table).

    Prefect keeps every version of a key, so the UI shows each table's history. Keys allow
    lowercase letters, digits and dashes only.
    """
    base = f"leaderboard-{pipeline.replace('_', '-')}"
    return base, f"{base}-table"


@dataclass(frozen=True)
class Published:
    """What one run of the stage published."""

    output: StageOutput
    board: Leaderboard
    markdown: str
    table: list[dict]
    csv_uri: str
    history_uri: str


def leaderboard_stage(
    pipeline: str,
    backbones: list[str],
    benchmarks: list[str],
    results: list[StageOutput],
    records: list[ResultRecord],
    store: ArtifactStore,
    selection: str = "median",
    run: str | None = None,
) -> Published:
    """Build the leaderboard from the result records, publish it and append it to the history.

    Args:
        pipeline: pipeline name.
        backbones: the backbones evaluated, as configured (they label the rows and are matched to the
            paper; a record without a backbone label belongs to the first).
        benchmarks: the benchmark columns, in order.
        results: the fine-tune outputs the records come from (kept in the artifact's manifest).
        records: their result records, failed runs included.
        store: the artifact store.
        selection: the rule over seeds (see ``aggregate.SELECTIONS``).
        run: the Prefect flow run, kept in the history entry.

    Raises:
        MuppetError: the pipeline name is not a safe name (checked before anything is written).
    """
    safe_name("pipeline", pipeline)
    labels = {backbone_label(b): b for b in backbones}
    records = [r if r.backbone else r.model_copy(update={"backbone": backbone_label(backbones[0])}) for r in records]
    key = store.key(
        STAGE, pipeline=pipeline, backbones=backbones, benchmarks=benchmarks, selection=selection,
        records=sorted(r.model_dump_json() for r in records), code=code_version(__name__),
    )
    board = aggregate(records, benchmarks, pipeline, selection, labels, load_references())
    charts = {CHART: bar_chart(board), **{f"curves-{name}.png": png for name, png in curve_charts(records, selection).items()}}
    board.key = key
    board.links = {
        "csv": f"{store.uri(STAGE, key)}/leaderboard.csv",
        "json": f"{store.uri(STAGE, key)}/leaderboard.json",
        **{"chart" if name == CHART else name.removesuffix(".png"): f"{store.uri(STAGE, key)}/{name}" for name in charts},
        "latest": f"{store.root}/pipelines/{pipeline}/",
    }
    texts = {"leaderboard.csv": to_csv(board), "leaderboard.md": to_markdown(board), "leaderboard.json": to_json(board)}

    def build(out: Path) -> dict:
        for name, text in texts.items():
            (out / name).write_text(text)
        for name, png in charts.items():
            (out / name).write_bytes(png)
        return {"pipeline": pipeline, "results": [{"stage": r.stage, "key": r.key} for r in results]}

    output = run_cached(store, STAGE, pipeline, key, build)
    for name, text in texts.items():
        store.write_text(f"pipelines/{pipeline}/{name}", text)
    for name, png in charts.items():
        store.write_bytes(f"pipelines/{pipeline}/{name}", png)
    history_uri = append_history(store, board, run)
    return Published(output, board, texts["leaderboard.md"], table_rows(board), f"{store.root}/{published_path(pipeline, 'csv')}", history_uri)
