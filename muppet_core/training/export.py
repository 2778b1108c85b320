"""Export of a pre-finetuned model: a Hugging Face encoder directory with a model card as the Hub
reads one (YAML metadata, ``base_model``, ``datasets``, ``license``, ``tags``, built with
``huggingface_hub``'s ``ModelCardData``), the task heads beside it, the training summary and a plot
of the per-task loss curves. Once a leaderboard has scored the variant, ``muppet_core.publish.card``
adds its scores."""

from __future__ import annotations

import json
import os
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData

from muppet_core.models.multitask import MultiTaskModel
from muppet_core.models.sources import hub_id_of
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

def base_metadata(base: str) -> dict:
    """``base_model`` and ``license`` of the backbone where they are known: a hub id is its own
    base model (also as its snapshot in the Hugging Face cache); a model folder's card (README.md) may name both."""
    if hub := hub_id_of(base):
        return {"base_model": hub}
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


def _final_losses(history: list[dict], window: int = 20) -> dict[str, float]:
    seen: dict[str, list[float]] = {}
    for entry in history:
        for task, loss in entry["tasks"].items():
            seen.setdefault(task, []).append(loss)
    return {t: sum(v[-window:]) / len(v[-window:]) for t, v in seen.items()}


def plot_losses(history: list[dict], path: Path) -> None:
    """Per-task loss against the update step, one line per task, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    tasks = sorted({t for h in history for t in h["tasks"]})
    for task in tasks:
        points = [(h["step"], h["tasks"][task]) for h in history if task in h["tasks"]]
        ax.plot(*zip(*points), marker=".", linewidth=1, markersize=3, label=task)
    ax.set_xlabel("update")
    ax.set_ylabel("scaled loss")
    ax.set_title("Pre-finetuning loss per task")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def export_model(model: MultiTaskModel, tokenizer, out_dir: Path, config, info: dict, history: list[dict], base: str) -> None:
    """Write ``encoder/`` (+ README.md, a model card of the Hub's format), the heads,
    ``train_summary.json`` and ``loss_curves.png``; ``base`` is the base encoder's directory or hub id."""
    out_dir = Path(out_dir)
    model.save(out_dir, tokenizer)
    final = _final_losses(history)
    settings = {k: v for k, v in config.model_dump().items() if k not in ("tasks",)}
    export_card(base, config.tasks, info, settings, final).save(out_dir / "encoder" / "README.md")
    (out_dir / "train_summary.json").write_text(json.dumps({**info, "final_loss_per_task": final}, indent=1))
    (out_dir / "history.json").write_text(json.dumps(history))
    if history:
        plot_losses(history, out_dir / "loss_curves.png")
