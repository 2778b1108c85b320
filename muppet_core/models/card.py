"""The model card of a pre-finetuned encoder, as the Hugging Face Hub reads one: YAML metadata
(``base_model``, ``datasets``, ``license``, ``tags``) built with ``huggingface_hub``'s
``ModelCardData``, and, once a leaderboard has scored the variant, a ``model-index`` with its scores."""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from muppet_core.families import get_family
from muppet_core.leaderboard.schema import Leaderboard, Row
from muppet_core.tasks.catalog import get_task

TAGS = ["muppet", "pre-finetuning", "multi-task"]

BODY = """# Pre-finetuned encoder

Pre-finetuned with Muppet (multi-task pre-finetuning, Aghajanyan et al., EMNLP 2021) on
{n_tasks} tasks for {steps} updates ({examples} examples, {world_size} process(es)), from {base}.
Load it with `AutoModel.from_pretrained(...)` (a seq2seq backbone, BART or T5, with `AutoModelForSeq2SeqLM`:
its own decoder is the summarization head). The task heads are in `heads.safetensors`
(`heads.json` lists their shapes): beside this card in a pushed repository, beside the `encoder/`
folder in a Muppet store.

| setting | value |
| --- | --- |
{settings}

| task | examples | loss scale 1/log n(i) | final loss |
| --- | --- | --- | --- |
{tasks}
"""

SCORES = """
## Scores

Fine-tuned on each benchmark from this encoder and scored on its validation split, as the
leaderboard of the Muppet pipeline `{pipeline}` shows them (row `{model}`, {selection}):

| benchmark | metric | score | runs |
| --- | --- | --- | --- |
{rows}
"""


def base_metadata(base: str) -> dict:
    """``base_model`` and ``license`` of the backbone where they are known: a hub id is its own
    base model; a model folder's card (README.md) may name both."""
    if not os.path.isdir(base):
        return {"base_model": base}
    readme = Path(base, "README.md")
    if not readme.is_file():
        return {}
    data = ModelCard.load(readme, ignore_metadata_errors=True).data
    return {k: v for k, v in {"base_model": data.base_model, "license": data.license}.items() if v}


def export_card(base: str, tasks: list[str], info: dict, settings: dict, final_loss: dict[str, float]) -> ModelCard:
    """The card written with the export: metadata and the training summary, no scores yet.

    Args:
        base: the base encoder's directory or hub id.
        tasks: the pre-finetuning tasks (their hub datasets become ``datasets``).
        info: the workers' summary (``summary``, ``world_size``, ``tasks``).
        settings: the pre-finetuning settings, shown in a table.
        final_loss: task -> its loss over the last updates.
    """
    data = ModelCardData(
        library_name="transformers", pipeline_tag="feature-extraction", tags=TAGS,
        datasets=sorted({get_task(t).hub.path for t in tasks}), **base_metadata(base),
    )
    body = BODY.format(
        n_tasks=len(tasks), steps=info["summary"]["steps"], examples=info["summary"]["examples_seen"],
        world_size=info["world_size"], base=f"`{data.base_model}`" if data.base_model else "its base encoder",
        settings="\n".join(f"| {k} | {v} |" for k, v in settings.items()),
        tasks="\n".join(
            f"| {t} | {d['examples']} | {d['loss_scale']:.3f} | {final_loss.get(t, float('nan')):.4f} |" for t, d in sorted(info["tasks"].items())
        ),
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


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
