"""Starting training processes: the pre-finetuning workers (one local process, torchrun, or the
deepspeed launcher) and the fine-tune processes of the ``process`` executor.

A job is a pydantic model written as a JSON file and given to the command as its last argument.
The processes' output is streamed line by line to a callback (the Prefect run's logger), and a
failed launch raises with the last lines of that output.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from muppet_core.config import PrefinetuneConfig
from muppet_core.errors import MuppetError
from muppet_core.training.worker import WorkerJob

WORKER = "muppet_core.training.worker"


class LaunchError(MuppetError):
    """The training processes exited with an error."""


def launch_command(config: PrefinetuneConfig) -> list[str]:
    """The command line that starts every rank of a pre-finetuning job (the job file follows it)."""
    if config.launcher == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={config.nproc_per_node}", "-m", WORKER]
    if config.launcher == "deepspeed":
        hostfile = ["--hostfile", config.hostfile] if config.hostfile else [f"--num_gpus={config.nproc_per_node}"]
        return ["deepspeed", *hostfile, "--module", WORKER]
    return [sys.executable, "-m", WORKER]


def exit_status(code: int) -> str:
    """``exited with status 1``, or for a process a signal ended, ``exited with status -9 (killed by SIGKILL)``."""
    if code >= 0:
        return f"exited with status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"exited with status {code} (killed by {name})"


def run_job(
    job: BaseModel, folder: Path, command: list[str], log: Callable[[str], None], what: str, env: dict[str, str] | None = None
) -> None:
    """Write ``job`` into ``folder``, run ``command`` with the job file as its last argument and
    stream its output to ``log``.

    The job file is named per launch: two runs of the same key (on machines sharing a store)
    never read each other's. ``env`` is added to this process's environment.

    Raises:
        LaunchError: the command exited non-zero or was killed (the message says which, and holds
            the last lines it printed); ``what`` names the processes in it.
    """
    job_file = Path(folder) / f"job-{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
    job_file.parent.mkdir(parents=True, exist_ok=True)
    job_file.write_text(job.model_dump_json(indent=1))
    full_env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1", **(env or {})}
    tail: collections.deque[str] = collections.deque(maxlen=15)
    try:
        with subprocess.Popen([*command, str(job_file)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env) as proc:
            for line in proc.stdout:
                line = line.rstrip()
                if line:
                    tail.append(line)
                    log(line)
    finally:
        job_file.unlink(missing_ok=True)
    if proc.returncode:
        raise LaunchError(f"{what} {exit_status(proc.returncode)}\nlast output:\n" + "\n".join(tail))


def run_workers(job: WorkerJob, log: Callable[[str], None]) -> None:
    """Start the pre-finetuning workers with the job file beside the checkpoints.

    Raises:
        LaunchError: the launcher exited non-zero (the message holds the last lines it printed).
    """
    run_job(job, Path(job.checkpoint_dir), launch_command(job.config), log, "pre-finetuning workers")
