"""Result records made by hand for the leaderboard tests."""

from __future__ import annotations

import pytest

from muppet_core.artifacts.stage import StageOutput
from muppet_core.artifacts.store import ArtifactStore
from muppet_core.evaluation.results import ResultRecord


def make_record(variant: str, benchmark: str, seed: int, score: float | None, backbone: str = "minilm", train_examples: int = 8, **extra) -> ResultRecord:
    """A finished run (``score`` given) or a failed one (``score`` None, with an error)."""
    metric = "f1" if benchmark == "mrpc" else "accuracy"
    failed = score is None
    return ResultRecord(
        pipeline="p", variant=variant, variant_key=f"key-{variant}", benchmark=benchmark, seed=seed, learning_rate=1e-5,
        metrics={} if failed else {metric: score}, main_metric=metric, train_examples=None if failed else train_examples,
        examples_seen=None if failed else 8, eval_examples=None if failed else 8, wall_seconds=0.1, code_version="c",
        status="failed" if failed else "ok", error="RuntimeError: CUDA out of memory" if failed else None,
        backbone=backbone, **extra,
    )


@pytest.fixture
def records() -> list[ResultRecord]:
    """Two variants x (sst2, rte, copa), three seeds; the pre-finetuned rte runs all failed."""
    scores = {
        ("base", "sst2"): [0.80, 0.90, 0.84], ("prefinetuned", "sst2"): [0.86, 0.88, 0.87],
        ("base", "rte"): [0.50, 0.70, 0.60], ("prefinetuned", "rte"): [None, None, None],
        ("base", "copa"): [0.55, 0.65, 0.60], ("prefinetuned", "copa"): [0.70, None, 0.66],
    }
    return [make_record(v, b, seed, s) for (v, b), values in scores.items() for seed, s in enumerate(values)]


def stored(store: ArtifactStore, records: list[ResultRecord]) -> list[StageOutput]:
    """The records published as the fine-tune stage publishes them (a failed one as a failure
    record): one output per record, for the leaderboard stage to keep."""
    from muppet_core.evaluation.results import failure_path
    from muppet_core.stages import FINETUNE as STAGE, FINETUNE_FAILED as FAILED_STAGE

    outputs = []
    for record in records:
        key = ArtifactStore.key("test-record", record=record.model_dump_json())
        if record.status == "ok":
            uri = store.write_json(STAGE, key, record.model_dump())
            outputs.append(StageOutput(STAGE, record.benchmark, key, uri, False))
        else:
            uri = store.write_text(failure_path(key), record.model_dump_json())
            outputs.append(StageOutput(FAILED_STAGE, record.benchmark, key, uri, False))
    return outputs
