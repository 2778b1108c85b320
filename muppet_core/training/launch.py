"""Starting training processes: the pre-finetuning workers (one local process, torchrun, or the
deepspeed launcher) and the fine-tune processes of the ``process`` executor.

Every one runs ``python -m muppet_core.training`` (``MAIN``) on a job (``muppet_core.training.jobs``)
written as a JSON file and given to the command as its last argument. The processes' output is
streamed line by line to a callback (the Prefect run's logger), and a failed launch raises with the
last lines of that output.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from pydantic import BaseModel

from muppet_core.config import PrefinetuneConfig
from muppet_core.errors import MuppetError, first_line
from muppet_core.stopping import Stopped, on_stop, stop_requested

MAIN = "muppet_core.training"
"""The module every training process runs (its ``__main__``), on the job file that follows it."""
PR_SET_PDEATHSIG = 1
"""Linux prctl option: the signal this process gets when its parent dies."""
LAUNCHER_PID = "MUPPET_LAUNCHER_PID"
"""The environment variable that gives a process the pid of the launcher it must not outlive (see ``die_with_launcher``)."""
KILL_AFTER_S = 10.0
"""A training process asked to stop (SIGTERM) is SIGKILLed when it is still there this much later."""
STOP_NOTICE_S = 2.0
"""How long a process that SIGINT or SIGTERM ended waits for the run's own stop request before it counts as failed."""
log = logging.getLogger(__name__)


class LaunchError(MuppetError):
    """The training processes exited with an error."""


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


def launch_command(config: PrefinetuneConfig, rdzv_id: str = "") -> list[str]:
    """The command line that starts this node's ranks of a pre-finetuning job (the job file follows it).

    One torchrun node rendezvouses on a free local port; several meet at ``rdzv_endpoint`` under
    ``rdzv_id`` (c10d), each node starting this same command (see ``muppet_core.training.nodes``).
    """
    if config.launcher == "torchrun":
        nodes = ([f"--nnodes={config.nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={config.rdzv_endpoint}", f"--rdzv-id={rdzv_id}"]
                 if config.nnodes > 1 else ["--standalone"])
        return [sys.executable, "-m", "torch.distributed.run", *nodes, f"--nproc-per-node={config.nproc_per_node}", "-m", MAIN]
    if config.launcher == "deepspeed":
        hostfile = ["--hostfile", config.hostfile] if config.hostfile else [f"--num_gpus={config.nproc_per_node}"]
        return ["deepspeed", *hostfile, "--module", MAIN]
    return [sys.executable, "-m", MAIN]


def die_with_launcher() -> None:
    """Under torchrun the agent starts each worker in a session of its own, so a worker whose agent
    was killed (a preempted or lost node) would go on training as an orphan; a warm fine-tune worker
    (``muppet_core.training.warm``) would outlive the flow that started it. On Linux, ask to be
    SIGKILLed when the agent (the launcher, whose pid a warm worker finds in ``LAUNCHER_PID``) dies,
    and go at once when it is already gone."""
    if not sys.platform.startswith("linux"):
        return
    if "TORCHELASTIC_RUN_ID" in os.environ:
        parent = os.getppid()
    elif os.environ.get(LAUNCHER_PID, "").isdigit():
        parent = int(os.environ[LAUNCHER_PID])
    else:
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)


def exit_status(code: int) -> str:
    """``exited with status 1``, or for a process a signal ended, ``exited with status -9 (killed by SIGKILL)``."""
    if code >= 0:
        return f"exited with status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"exited with status {code} (killed by {name})"


def job_path(folder: str | Path) -> Path:
    """A job file in ``folder`` named per launch: two runs of the same key (on machines sharing a
    store) never read each other's."""
    return Path(folder) / f"job-{os.getpid()}-{uuid.uuid4().hex[:8]}.json"


TAIL_LINES = 15
"""How many of a training process's last output lines an error about it quotes."""


def stream(command: list[str], log: Callable[[str], None], what: str, env: dict[str, str] | None = None) -> None:
    """Run ``command`` and stream its output to ``log`` line by line. ``env`` is added to this process's environment.

    Raises:
        LaunchError: the command exited non-zero or was killed (the message says which, and holds
            the last lines it printed); ``what`` names the processes in it.
        Stopped: the run was asked to stop (``muppet_core.stopping``), and the process with it.
    """
    full_env = process_env(env)
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env) as proc, on_stop(lambda: end_process(proc)):
        read_output(proc, log, tail)
    if proc.returncode:
        raise exit_error(proc.returncode, what, tail)


def read_output(proc: subprocess.Popen, log: Callable[[str], None], tail: collections.deque[str],
                until: Callable[[str], bool] | None = None) -> str | None:
    """Read ``proc``'s stdout line by line: each non-empty line goes to ``log`` and to ``tail`` (the last
    lines, for an error), until its end (``None``) or a line ``until`` accepts, which is returned and
    neither logged nor kept. An interrupt of this thread (Ctrl-C, a stop) ends the process with it."""
    try:
        for line in proc.stdout:
            line = line.rstrip()
            if until is not None and until(line):
                return line
            if line:
                tail.append(line)
                log(line)
    except BaseException:
        end_process(proc)
        raise
    return None


def process_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a training process is started with: this process's, with ``env`` added."""
    return {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1", **(env or {})}


def exit_error(code: int, what: str, tail: Iterable[str]) -> BaseException:
    """What a training process that ended with ``code`` (non-zero) raises: ``Stopped`` when the run's
    stop ended it (or the terminal's Ctrl-C, which reaches it first), else a ``LaunchError`` saying
    how it ended, with ``tail``, the last lines it printed; ``what`` names it."""
    if stop_requested(within=STOP_NOTICE_S if -code in (signal.SIGINT, signal.SIGTERM) else 0.0):
        return Stopped(f"{what} stopped: {exit_status(code)}")
    return LaunchError(f"{what} {exit_status(code)}\nlast output:\n" + "\n".join(tail))


def end_process(proc: subprocess.Popen, grace: float = KILL_AFTER_S) -> None:
    """SIGTERM to ``proc`` (a launcher passes it on to its workers), SIGKILL ``grace`` seconds later if it is still there."""
    if proc.poll() is not None:
        return
    proc.terminate()
    timer = threading.Timer(grace, lambda: proc.poll() is None and proc.kill())
    timer.daemon = True
    timer.start()


def run_job(
    job: BaseModel, job_file: Path, command: list[str], log: Callable[[str], None], what: str, env: dict[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Write ``job`` to ``job_file``, run ``command`` with the job file as its last argument and
    stream its output to ``log`` (see ``stream``). With ``progress``, ``progress(update, total)``
    follows the file beside the job file with the suffix ``.progress`` (see ``nodes.run_workers``).

    Raises:
        LaunchError: the command exited non-zero or was killed.
    """
    progress_file = job_file.with_suffix(".progress")
    job_file.parent.mkdir(parents=True, exist_ok=True)
    job_file.write_text(job.model_dump_json(indent=1))
    try:
        with _following(progress_file, progress):
            stream([*command, str(job_file)], log, what, env)
    finally:
        job_file.unlink(missing_ok=True)
        progress_file.unlink(missing_ok=True)
