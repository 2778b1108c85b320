"""Export of a pre-finetuned model: a Hugging Face encoder directory with a model card
(``muppet_core.models.card``), the task heads beside it, the training summary and a plot of the per-task loss curves."""

from __future__ import annotations

import json
from pathlib import Path

from muppet_core.models.card import export_card
from muppet_core.models.multitask import MultiTaskModel


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
