"""The tiny pipeline (a 2-layer random BERT, four pre-finetuning families, two benchmarks), run
once per session and shared by the integration tests that read what it wrote."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from muppet_core.artifacts.store import MANIFEST
from tests.conftest import REPO

PRETRAIN_TASKS = ["rotten_tomatoes", "snli", "commonsenseqa", "squad"]
BENCHMARKS = ["sst2", "rte"]
SMALL_TASKS = ["rotten_tomatoes", "trec"]
"""Two pre-finetuning tasks whose data prepares in about a second, for the tests that pre-finetune but
check something other than the families (the store, credentials, a race, the study's table): a
pipeline's data stage measures every row's length in tokens, seconds of CPU for SQuAD or SNLI."""
UNTRAINED_TASKS = ["trec"]
"""The pre-finetuning tasks of a pipeline with pre-finetuning off: the data stage still prepares every
task named and nothing trains on them, so one small one."""


def write_pipeline(
    path: Path, backbone: str, mirror: str, store: Path, seeds: list[int], name: str = "tiny", prefinetune: bool = True, finetune: dict | None = None,
    tasks: list[str] | None = None,
) -> Path:
    """The tiny pipeline's file; ``finetune`` updates its fine-tune settings, ``tasks`` are the
    pre-finetuning tasks (default: ``PRETRAIN_TASKS``, or ``UNTRAINED_TASKS`` with pre-finetuning off). Its fine-tunes run as
    threads unless ``finetune`` says otherwise (the tests that replace fine-tuning code need it in
    this process)."""
    if tasks is None:
        tasks = PRETRAIN_TASKS if prefinetune else UNTRAINED_TASKS
    doc = {
        "pipelines": {
            name: {
                "description": "2-layer random BERT, four families, two benchmarks",
                "backbone": backbone,
                "store": str(store),
                "data": {"mirror": mirror},
                "prefinetune": {"enabled": prefinetune, "tasks": tasks, "steps": 3, "micro_batch_size": 4, "tasks_per_step": 3, "max_length": 64, "max_train_examples": 64},
                "finetune": {"benchmarks": BENCHMARKS, "seeds": seeds, "batch_size": 8, "max_length": 64, "max_train_examples": 32, "max_eval_examples": 40, "concurrency": 2,
                             "executor": "thread", **(finetune or {})},
            }
        }
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def artifact_keys(store: Path, stage: str) -> dict[str, float]:
    """Complete artifacts of a stage, with their manifests' modification times."""
    return {p.parent.name: p.stat().st_mtime_ns for p in (store / stage).glob(f"*/{MANIFEST}")}


def muppet(*args: str, cwd=REPO) -> subprocess.CompletedProcess:
    """The `muppet` command in a fresh process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="session")
def first_run(prefect_harness, tiny_backbone, mirror, tmp_path_factory):
    """The tiny pipeline run once end to end: (root folder, pipelines.yaml, leaderboard CSV URI)."""
    from flows.reproduce import reproduce

    root = tmp_path_factory.mktemp("tiny-pipeline")
    config = write_pipeline(root / "pipelines.yaml", tiny_backbone, mirror, root / "store", seeds=[0])
    csv_uri = reproduce(pipeline="tiny", config=str(config))
    return root, config, csv_uri
