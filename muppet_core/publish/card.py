"""The scores of a pre-finetuned encoder on its model card: a ``model-index`` the Hub reads and a
table, added to the card the export wrote (``muppet_core.training.export``) once a leaderboard has
scored the variant."""

from __future__ import annotations

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from muppet_core.families import get_family
from muppet_core.leaderboard.schema import Leaderboard, Row
from muppet_core.tasks.catalog import get_task

SCORES = """
## Scores

Fine-tuned on each benchmark from this encoder and scored on its validation split, as the
leaderboard of the Muppet pipeline `{pipeline}` shows them (row `{model}`, {selection}):

| benchmark | metric | score | runs |
| --- | --- | --- | --- |
{rows}
"""


def eval_results(board: Leaderboard, row: Row) -> list[EvalResult]:
    """One result per benchmark cell of ``row`` that has a score, in the benchmark's main metric."""
    results = []
    for column in board.columns:
        cell = row.cells.get(column.name)
        if column.kind != "benchmark" or cell is None or cell.value is None:
            continue
        hub = get_task(column.name).hub
        results.append(EvalResult(
            task_type=get_family(column.family).hub_task, dataset_type=hub.path, dataset_name=column.name,
            dataset_config=hub.name, dataset_split="validation", metric_type=column.metric, metric_value=cell.value,
            metric_name=f"{column.metric} ({board.selection} of {cell.n} run(s))", verified=False,
        ))
    return results


def scored_card(card: ModelCard, board: Leaderboard, row: Row, model_name: str, base_model: str | None = None) -> ModelCard:
    """``card`` with the ``model-index`` of ``row``'s scores and a table of them (``base_model`` set
    when given)."""
    data = ModelCardData(**card.data.to_dict())
    data.model_name, data.eval_results = model_name, eval_results(board, row)
    if base_model:
        data.base_model = base_model
    lines = [f"| {r.dataset_name} | {r.metric_type} | {r.metric_value:.4f} | {row.cells[r.dataset_name].n} |" for r in data.eval_results]
    table = SCORES.format(pipeline=board.pipeline, model=row.model, selection=board.selection_text, rows="\n".join(lines))
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{card.text.rstrip()}\n{table}")
