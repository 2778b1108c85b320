"""One fine-tune away from the flow's thread: a ``finetune`` job, and the one path of jobs that end
without their results (started again, then failure records).

The ``process`` executor runs a job in a process of its own (``python -m muppet_core.training
JOB.json``) pinned to a device (see ``muppet_core.training.pinning``); the ``deployment``
executor's flow runs execute jobs on a worker's machine. A job runs the same stage a thread would
(``finetune_stage``: data from the store, the result published to the store, a failure written as
a failure record) and writes where the result lives, as JSON, to its ``output``: a local file, or
for a job from another machine a file under the store's root.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from muppet_core import stages
from muppet_core.artifacts.stage import StageOutput
from muppet_core.artifacts.store import ArtifactStore
from muppet_core.config import FinetuneConfig
from muppet_core.errors import BackboneError, first_line
from muppet_core.models.backbone import Variant
from muppet_core.models.sources import source_of
from muppet_core.training.finetune import FinetuneRun, finetune_key, finetune_stage, record_failure
from muppet_core.training.jobs import Job
from muppet_core.training.pinning import Device, describe_process

log = logging.getLogger(__name__)


class FinetuneJob(Job):
    """One fine-tune; its ``callbacks`` are installed besides progress, logging and early stopping."""

    kind: Literal["finetune"] = "finetune"
    pipeline: str
    """The pipeline that asked for the run (written in its record)."""
    run: FinetuneRun
    """The run: variant, benchmark, seed, learning rate, fraction, experiment."""
    data: StageOutput
    """The benchmark's data artifact."""
    config: FinetuneConfig
    """The fine-tune settings."""
    cache_dir: str | None = None
    """The store's local cache folder (the parent's, so artifacts are fetched once per machine);
    None: this machine's (``MUPPET_CACHE``, else the store's default)."""
    device: Device | None = None
    """The GPU, CPU cores and thread count it is pinned to; None: as the process is."""
    output: str
    """Where it writes its ``StageOutput``, as JSON: a local file, or a URI under ``store``."""

    def execute(self) -> StageOutput:
        """Pin this process to the job's device, run the fine-tune through the store and write where its result lives."""
        if self.device:
            self.device.apply()
        log.info("fine-tune %s runs on %s", self.run.name, describe_process())
        store = self.open_store(self.cache_dir)
        run = dataclasses.replace(self.run, variant=variant_here(self.run.variant, store))
        output = finetune_stage(self.pipeline, run, self.data, self.config, store, self.callbacks)
        text = json.dumps(dataclasses.asdict(output))
        if self.output.startswith(f"{store.root}/"):
            store.write_text(self.output.removeprefix(f"{store.root}/"), text)
        else:
            Path(self.output).write_text(text, encoding="utf-8")
        return output


def variant_here(variant: Variant, store: ArtifactStore) -> Variant:
    """The variant with its encoder folder on this machine. The flow that planned the job resolved the
    folder on its own machine; a worker on another one finds nothing there, so a pre-finetuned
    encoder is fetched from the store by its key (into this machine's cache) and a base backbone is
    resolved again by its source. A folder that exists here is kept: a pre-finetuned one is named by
    its key in the cache, so it holds the same files.

    Raises:
        BackboneError: a base variant whose folder is missing here and whose backbone is not known.
        FileNotFoundError: the pre-finetuned encoder is not in the store.
    """
    if Path(variant.encoder_path).is_dir():
        return variant
    if variant.tasks:
        path = store.fetch(stages.PREFINETUNE, variant.key) / "encoder"
    elif variant.backbone:
        path = Path(source_of(variant.backbone).resolve(variant.backbone, store.cache_dir))
    else:
        raise BackboneError(f"{variant.name}: its encoder folder {variant.encoder_path} is not on this machine, and its backbone is not named")
    log.info("%s: encoder %s on this machine", variant.name, path)
    return dataclasses.replace(variant, encoder_path=str(path))


def retry_or_fail(
    jobs: list[FinetuneJob], attempt: int, retries: int, error: BaseException, store: ArtifactStore, started: float,
    log_line: Callable[[str], None],
) -> list[StageOutput] | None:
    """What follows try ``attempt`` (0 for the first) of ``jobs`` that ended without their results
    (their process or their worker died): while tries are left (``attempt < retries``) None, said in
    ``log_line``, and the caller starts them again, each resuming from its last checkpoint; then their
    failure records, which give ``error`` as the reason (``started``: when the first try began, as
    ``time.perf_counter``)."""
    one = len(jobs) == 1
    what = f"fine-tune {jobs[0].run.name}" + ("" if one else f" and {len(jobs) - 1} more")
    if attempt < retries:
        log_line(f"{what}: {first_line(error)}; starting {'it' if one else 'them'} again from {'its last checkpoint' if one else 'their last checkpoints'} "
                 f"({attempt + 1} of {retries})")
        return None
    log.error("%s failed: %s", what, error)
    return [record_failure(job.pipeline, job.run, finetune_key(job.run, job.data, job.config), store, started, error) for job in jobs]
