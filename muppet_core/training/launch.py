"""Starting the pre-finetuning workers: one local process, torchrun, or the deepspeed launcher.

The workers' output is streamed line by line to a callback (the Prefect run's logger), and a
failed launch raises with the last lines of that output.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import json
import logging
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from muppet_core.config import PrefinetuneConfig
from muppet_core.errors import MuppetError, first_line
from muppet_core.training.callbacks import CallbackSpec
from muppet_core.training.worker import WorkerJob

WORKER = "muppet_core.training.worker"
log = logging.getLogger(__name__)


class LaunchError(MuppetError):
    """The training workers exited with an error."""


def _read_progress(path: Path) -> tuple[int, int] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return int(data["step"]), int(data["total"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextlib.contextmanager
def _following(path: Path, progress: Callable[[int, int], None] | None, every: float = 2.0) -> Iterator[None]:
    """Call ``progress`` from a thread (in the caller's context) while ``path`` changes, then with the last value."""
    if progress is None:
        yield
        return
    done, last = threading.Event(), [None]

    def poll() -> None:
        while True:
            stopping = done.wait(every)
            current = _read_progress(path)
            if current is not None and current != last[0]:
                last[0] = current
                try:
                    progress(*current)
                except Exception as exc:  # progress reports never stop the training
                    log.warning("progress report failed: %s", first_line(exc))
            if stopping:
                return

    thread = threading.Thread(target=contextvars.copy_context().run, args=(poll,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def launch_command(config: PrefinetuneConfig, job_file: Path) -> list[str]:
    """The command line that starts every rank of the job."""
    if config.launcher == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={config.nproc_per_node}", "-m", WORKER, str(job_file)]
    if config.launcher == "deepspeed":
        hostfile = ["--hostfile", config.hostfile] if config.hostfile else [f"--num_gpus={config.nproc_per_node}"]
        return ["deepspeed", *hostfile, "--module", WORKER, str(job_file)]
    return [sys.executable, "-m", WORKER, str(job_file)]


def run_workers(job: WorkerJob, log: Callable[[str], None], progress: Callable[[int, int], None] | None = None) -> None:
    """Write the job file beside the checkpoints, start the workers and stream their output to ``log``.

    The job file is named per launch: two runs of the same key (on machines sharing a store)
    never read each other's output folder. With ``progress``, rank 0 writes its update count to a
    file beside the job file, and ``progress(update, total)`` is called (in the caller's context)
    as it changes, and once more at the end.

    Raises:
        LaunchError: the launcher exited non-zero (the message holds the last lines it printed).
    """
    job_file = Path(job.checkpoint_dir) / f"job-{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
    progress_file = job_file.with_suffix(".progress")
    if progress:
        spec = CallbackSpec(target="muppet_core.training.callbacks:ProgressFile", options={"path": str(progress_file)}, rank_zero=True)
        job = job.model_copy(update={"callbacks": [*job.callbacks, spec]})
    job_file.parent.mkdir(parents=True, exist_ok=True)
    job_file.write_text(job.model_dump_json(indent=1))
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    tail: collections.deque[str] = collections.deque(maxlen=15)
    with _following(progress_file, progress), subprocess.Popen(
        launch_command(job.config, job_file), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as proc:
        for line in proc.stdout:
            line = line.rstrip()
            if line:
                tail.append(line)
                log(line)
    job_file.unlink(missing_ok=True)
    progress_file.unlink(missing_ok=True)
    if proc.returncode:
        raise LaunchError(f"pre-finetuning workers exited with status {proc.returncode}; last output:\n" + "\n".join(tail))
