"""Where a pre-finetuning job's workers run: on this node alone, or over several nodes (the flow's
node, and the nodes that join it).

The flow's node writes the job into the store beside the run's checkpoints, announces it with a
launch record ``_launch/<rdzv_id>.json`` in the store and starts its torchrun agent. Every other
node runs ``muppet join STORE`` (started by the cluster's scheduler: Slurm's srun, a Kubernetes
indexed Job): it waits for a launch record, starts the same torchrun agent with the job's
rendezvous, and waits for the next. Every node reads its data, resumes its checkpoints and rank 0
exports through the store, so nothing lives on one node only. A node that dies fails the run on
every node (their collectives break); started again, the run resumes from its last checkpoint.
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.callbacks import CallbackSpec
from muppet_core.training.launch import LaunchError, job_path, launch_command, run_job, stream
from muppet_core.training.worker import PrefinetuneJob

LAUNCHES = "_launch"
"""The store folder of the launch records of running multi-node jobs."""
log = logging.getLogger(__name__)


class LaunchRecord(BaseModel):
    """A running multi-node job, as the joining nodes find it in the store."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job: str
    """URI of the job file in the store."""
    rdzv_id: str
    """The job's c10d rendezvous id (derived from the artifact key)."""


def run_first_node(job: PrefinetuneJob, rdzv_id: str, log_line: Callable[[str], None]) -> None:
    """Run a job whose ranks span several nodes from the flow's node: the job file goes to the store;
    under torchrun the job is announced for the joining nodes and this node's agent runs until the
    job ends on every node; DeepSpeed's launcher starts every host's ranks itself, over ssh.

    Raises:
        LaunchError: this node's launcher exited non-zero (a rank failed, or another node died).
    """
    store = job.open_store()
    place = ArtifactStore(job.checkpoint_dir)  # after the store: a checkpoint folder inside it takes its options
    name, record = f"job-{uuid.uuid4().hex[:12]}.json", f"{LAUNCHES}/{rdzv_id}.json"
    job_uri = place.write_text(name, job.model_dump_json(indent=1))
    nodes = job.config.nnodes > 1
    if nodes:
        store.write_text(record, LaunchRecord(job=job_uri, rdzv_id=rdzv_id).model_dump_json())
        log_line(f"pre-finetuning on {job.config.nnodes} nodes: the others join with `muppet join {store.root}` "
                 f"(rendezvous {rdzv_id} at {job.config.rdzv_endpoint})")
    what = f"pre-finetuning workers (node 1 of {job.config.nnodes})" if nodes else "pre-finetuning workers (hostfile)"
    try:
        stream([*launch_command(job.config, rdzv_id), job_uri], log_line, what)
    finally:
        if nodes:
            store.remove(record)
        place.remove(name)


def join(root: str, log_line: Callable[[str], None] = print, once: bool = False, idle_s: float | None = None, poll_s: float = 2.0) -> int:
    """Run this node's agent of every multi-node job announced in the store ``root``, one after the
    other, until ``idle_s`` seconds pass without a new one (None: forever) or, with ``once``, after
    the first. A job that fails on this node is reported and the next awaited (``once``: raised).

    Returns:
        The number of jobs this node took part in.

    Raises:
        LaunchError: with ``once``, the job failed on this node.
    """
    store, seen, since = ArtifactStore(root), set(), time.monotonic()
    log_line(f"waiting for multi-node jobs in {store.root}/{LAUNCHES}/")
    while idle_s is None or time.monotonic() - since < idle_s:
        for name in store.list(LAUNCHES, ".json"):
            try:
                record = LaunchRecord.model_validate_json(store.read_text(f"{LAUNCHES}/{name}"))
                job = PrefinetuneJob.read(record.job)
            except FileNotFoundError:  # ended since it was listed
                continue
            if record.job in seen:
                continue
            seen.add(record.job)
            log_line(f"joining {record.rdzv_id} ({job.config.nnodes} nodes, {job.config.nproc_per_node} per node)")
            try:
                stream([*launch_command(job.config, record.rdzv_id), record.job], log_line, "pre-finetuning workers (joined node)")
            except LaunchError as exc:
                if once:
                    raise
                log_line(f"{record.rdzv_id} failed on this node: {str(exc).splitlines()[0]}")
            if once:
                return len(seen)
            since = time.monotonic()
        time.sleep(poll_s)
    return len(seen)


def run_workers(
    job: PrefinetuneJob, log: Callable[[str], None], progress: Callable[[int, int], None] | None = None, rdzv_id: str = "muppet",
) -> None:
    """Start this node's pre-finetuning workers and stream their output to ``log``.

    On one node the job file is local; with ``progress``, rank 0 writes its update count to a file
    beside it, and ``progress(update, total)`` is called (in the caller's context) as it changes,
    and once more at the end. Over several nodes the job goes through the store and the other
    nodes join it under ``rdzv_id`` (``run_first_node``).

    Raises:
        LaunchError: the launcher exited non-zero (the message holds the last lines it printed).
    """
    if job.config.multi_node():
        run_first_node(job, rdzv_id, log)
        return
    job_file = job_path(tempfile.gettempdir())
    if progress:
        spec = CallbackSpec(target="muppet_core.training.callbacks:ProgressFile", options={"path": str(job_file.with_suffix(".progress"))}, rank_zero=True)
        job = job.model_copy(update={"callbacks": [*job.callbacks, spec]})
    run_job(job, job_file, launch_command(job.config), log, "pre-finetuning workers", progress=progress)
