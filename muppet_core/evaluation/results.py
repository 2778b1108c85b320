"""The one typed result record: everything the leaderboard reads, and nothing else feeds it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ResultRecord(BaseModel):
    """One fine-tune-and-evaluate run."""

    model_config = ConfigDict(extra="forbid")

    pipeline: str
    """Pipeline name."""
    variant: str
    """Backbone variant: ``base`` or ``prefinetuned``."""
    variant_key: str
    """Artifact key of the variant's weights (backbone fingerprint or pre-finetune key)."""
    benchmark: str
    """Catalog name of the benchmark."""
    seed: int
    """Fine-tuning seed."""
    learning_rate: float
    """Fine-tuning learning rate."""
    metrics: dict[str, float]
    """Every metric on the validation split."""
    main_metric: str
    """The benchmark's main metric (a key of ``metrics``)."""
    train_examples: int
    """Training examples available to the run."""
    examples_seen: int
    """Examples processed during training (with repeats)."""
    eval_examples: int
    """Validation examples evaluated."""
    wall_seconds: float
    """Training plus evaluation wall time."""
    code_version: str
    """Digest of the fine-tuning code."""

    @property
    def score(self) -> float:
        """The main metric's value."""
        return self.metrics[self.main_metric]
