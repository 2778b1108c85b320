"""One fine-tune in its own process: ``python -m muppet_core.training.finetune_worker JOB.json``.

The ``process`` executor starts it pinned to a device (see ``muppet_core.training.pinning``); the
``deployment`` executor's flow runs call ``run`` on a worker's machine. It runs the same stage a
thread would (``finetune_stage``: data from the store, the result published to the store, a
failure written as a failure record) and writes where the result lives, as JSON, to the job's
``output``: a local file, or for a job from another machine a file under the store's root.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from muppet_core.artifacts.stage import StageOutput
from muppet_core.artifacts.store import ArtifactStore
from muppet_core.callbacks import CallbackSpec
from muppet_core.config import FinetuneConfig
from muppet_core.tracking import without_mlflow
from muppet_core.training.finetune import FinetuneRun, finetune_stage
from muppet_core.training.pinning import Device, describe_process

log = logging.getLogger("muppet_core.training.finetune_worker")  # its name also when run as __main__


class FinetuneJob(BaseModel):
    """What a fine-tune process is given, validated when it reads its job file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pipeline: str
    """The pipeline that asked for the run (written in its record)."""
    run: FinetuneRun
    """The run: variant, benchmark, seed, learning rate, fraction, experiment."""
    data: StageOutput
    """The benchmark's data artifact."""
    config: FinetuneConfig
    """The fine-tune settings."""
    store: str
    """The artifact store's root."""
    cache_dir: str | None = None
    """The store's local cache folder (the parent's, so artifacts are fetched once per machine);
    None: this machine's (``MUPPET_CACHE``, else the store's default)."""
    device: Device | None = None
    """The GPU and CPU cores it is pinned to; None: as the process is, with ``config.threads`` torch threads if set."""
    output: str
    """Where it writes its ``StageOutput``, as JSON: a local file, or a URI under ``store``."""
    callbacks: list[CallbackSpec] = Field(default_factory=list)
    """Callbacks installed besides progress, logging and early stopping, and stage callbacks: the
    pipeline run's tracker (see ``CallbackSpec``)."""


def run(job: FinetuneJob) -> StageOutput:
    """Pin this process to the job's device, run the fine-tune through the store and write where its result lives."""
    if job.device:
        job.device.apply()
    elif job.config.threads:
        import torch

        torch.set_num_threads(job.config.threads)
    log.info("fine-tune %s runs on %s", job.run.name, describe_process())
    store = ArtifactStore(job.store, job.cache_dir)
    output = finetune_stage(job.pipeline, job.run, job.data, job.config, store, job.callbacks)
    text = json.dumps(dataclasses.asdict(output))
    if job.output.startswith(f"{store.root}/"):
        store.write_text(job.output.removeprefix(f"{store.root}/"), text)
    else:
        Path(job.output).write_text(text, encoding="utf-8")
    return output


def main() -> int:
    # Libraries speak at WARNING and above; the project's own progress at INFO.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    logging.getLogger("muppet_core").setLevel(logging.INFO)
    with without_mlflow():  # the tracking callback, where installed, loads it
        run(FinetuneJob.model_validate_json(Path(sys.argv[1]).read_text(encoding="utf-8")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
