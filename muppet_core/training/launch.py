"""Starting the pre-finetuning workers: one local process, torchrun, or the deepspeed launcher.

The workers' output is streamed line by line to a callback (the Prefect run's logger), and a
failed launch raises with the last lines of that output.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

from muppet_core.config import PrefinetuneConfig
from muppet_core.errors import MuppetError
from muppet_core.training.worker import WorkerJob

WORKER = "muppet_core.training.worker"


class LaunchError(MuppetError):
    """The training workers exited with an error."""


def launch_command(config: PrefinetuneConfig, job_file: Path) -> list[str]:
    """The command line that starts every rank of the job."""
    if config.launcher == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={config.nproc_per_node}", "-m", WORKER, str(job_file)]
    if config.launcher == "deepspeed":
        hostfile = ["--hostfile", config.hostfile] if config.hostfile else [f"--num_gpus={config.nproc_per_node}"]
        return ["deepspeed", *hostfile, "--module", WORKER, str(job_file)]
    return [sys.executable, "-m", WORKER, str(job_file)]


def run_workers(job: WorkerJob, log: Callable[[str], None]) -> None:
    """Write the job file beside the checkpoints, start the workers and stream their output to ``log``.

    The job file is named per launch: two runs of the same key (on machines sharing a store)
    never read each other's output folder.

    Raises:
        LaunchError: the launcher exited non-zero (the message holds the last lines it printed).
    """
    job_file = Path(job.checkpoint_dir) / f"job-{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
    job_file.parent.mkdir(parents=True, exist_ok=True)
    job_file.write_text(job.model_dump_json(indent=1))
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    tail: collections.deque[str] = collections.deque(maxlen=15)
    with subprocess.Popen(launch_command(job.config, job_file), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        for line in proc.stdout:
            line = line.rstrip()
            if line:
                tail.append(line)
                log(line)
    job_file.unlink(missing_ok=True)
    if proc.returncode:
        raise LaunchError(f"pre-finetuning workers exited with status {proc.returncode}; last output:\n" + "\n".join(tail))
