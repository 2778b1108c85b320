"""Warm workers of the ``process`` executor: fine-tune processes that stay up and run jobs one after
another, so a fan-out pays Python's, torch's and the libraries' start once per device of its pool
instead of once per fine-tune.

A worker is ``python -m muppet_core.training --serve`` (``SERVE``; ``muppet_core.training.__main__.serve``).
It reads job file paths on its stdin, one a line, and runs each as a process of its own would:
every random generator is first put back as a fresh process has it, and the job then pins the
process to its device, seeds torch and builds its own model, data and optimizer, so its result is
bit-identical to a fresh process's. After each job it prints a control line, its token (a random
one the launcher gives it in ``WORKER_TOKEN``) and ``done``, on the stdout whose other lines are the
job's output, streamed to the run's log; the control line is written on a line of its own, in one
write. Between jobs the worker frees what the last one held (the garbage collector, then CUDA's
cached blocks), as a process that ends would. A failed fine-tune is a failure record, a normal end,
but its worker then retires (its control word is ``RETIRE``, and it exits): what failed may have
left the process unusable (a CUDA error poisons the device's context), and a fresh process would not
carry it into the next run. A job that raises ends the worker as it ends a fresh process (status 1).

The launcher side (``WorkerPool``) keeps the idle workers by the device and the environment they
were started with: a worker runs only jobs of its device that a fresh process would have run with
that same environment (plugins, catalogs, caches, GPU and thread count). A worker that exits before its
control line raises as ``launch.stream`` does (``LaunchError``, with the last lines it printed, or
``Stopped`` when the run was asked to stop) and is never used again: the executor's retries start
the job again, in a new worker, from its last checkpoint.

A worker dies with its launcher: closing its stdin (``WorkerPool.close``, at the end of a fan-out,
or this process gone) ends it between jobs, and on Linux it asks the kernel to SIGKILL it when this
process dies, mid-job too (``launch.die_with_launcher``). The kernel sends that signal when the
*thread* that started the worker ends, so every worker is started from one long-lived thread.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydantic import BaseModel

from muppet_core.stopping import on_stop
from muppet_core.training.launch import LAUNCHER_PID, MAIN, TAIL_LINES, LaunchError, end_process, exit_error, process_env, read_output
from muppet_core.training.pinning import Device

SERVE = "--serve"
"""The argument that makes ``python -m muppet_core.training`` a warm worker (job files on stdin)."""
WORKER_TOKEN = "MUPPET_WORKER_TOKEN"
"""The environment variable holding a worker's token, which starts its control lines."""
DONE = "done"
"""The control line's word after the token: the job ended and wrote its output."""
RETIRE = "retire"
"""The control word of a job that ended with a failure record: it wrote its output, and the worker exits."""
CLOSE_WAIT_S = 30.0
"""How long a closed worker has to exit before it is SIGKILLed (an interpreter with torch loaded takes seconds to end on a busy machine)."""

_STARTER = ThreadPoolExecutor(1, thread_name_prefix="muppet-warm-starter")
"""The one thread every worker is started from: it lives as long as this process (see the module's docstring)."""


class Worker:
    """One warm worker process, started with the environment ``env`` (this process's, with the device's)."""

    def __init__(self, env: dict[str, str]):
        self.token = uuid.uuid4().hex
        full_env = {**env, WORKER_TOKEN: self.token, LAUNCHER_PID: str(os.getpid())}
        command = [sys.executable, "-m", MAIN, SERVE]
        self.proc: subprocess.Popen = _STARTER.submit(
            subprocess.Popen, command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env,
        ).result()
        self.jobs = 0
        """Jobs it has finished."""
        self.retired = False
        """Whether its last job ended with ``RETIRE``: it is exiting and takes no other."""

    @property
    def alive(self) -> bool:
        """Whether its process is still there."""
        return self.proc.poll() is None

    def run(self, job_file: Path, log_line: Callable[[str], None], what: str) -> None:
        """Hand it ``job_file`` and stream its output to ``log_line`` until its control line.

        Raises:
            LaunchError: it exited before the job's end (the message says how, with the last lines it printed);
                ``what`` names it.
            Stopped: the run was asked to stop, and the worker with it.
        """
        done, retire = f"{self.token} {DONE}", f"{self.token} {RETIRE}"
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        with on_stop(lambda: end_process(self.proc)):
            try:
                self.proc.stdin.write(f"{job_file}\n")
                self.proc.stdin.flush()
            except OSError:  # it is gone already: its exit status says how, below
                pass
            # the control line is a line of its own; a write of another thread could still precede it on that line
            control = read_output(self.proc, log_line, tail, until=lambda line: line.endswith((done, retire)))
        if control is not None:
            self.jobs += 1
            self.retired = control.endswith(retire)
            return
        code = self.proc.wait()
        if code:
            raise exit_error(code, what, tail)
        raise LaunchError(f"{what} exited with status 0 before its job ended\nlast output:\n" + "\n".join(tail))

    def close(self) -> None:
        """Close its stdin, which ends it between jobs (see ``reap``)."""
        with contextlib.suppress(OSError):
            self.proc.stdin.close()

    def reap(self, timeout: float = CLOSE_WAIT_S) -> None:
        """``close`` it and wait for it to exit, SIGKILL it after ``timeout`` seconds."""
        self.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(OSError):
            self.proc.stdout.close()


class WorkerPool:
    """The idle warm workers of this process, by the device and the environment they were started with.

    ``session`` counts the fan-outs using it: when the last one ends, every worker goes (``close``).
    A worker busy at ``close`` goes when its job ends.
    """

    def __init__(self) -> None:
        self._idle: dict[str, list[Worker]] = {}
        self._lock = threading.Lock()
        self._generation = 0
        self._sessions = 0

    def _take(self, key: str) -> Worker | None:
        """An idle worker started with the environment ``key``, None when none is left alive."""
        with self._lock:
            idle = self._idle.get(key, [])
            while idle:
                worker = idle.pop()
                if worker.alive:
                    return worker
                worker.reap()
        return None

    @contextlib.contextmanager
    def worker(self, device: Device) -> Iterator[Worker]:
        """A worker pinned to ``device``: an idle one started with the environment a fresh process would
        get now, else a new one. It is idle again when the block ends, and ended when the block raises."""
        env = process_env(device.env())
        # its cores too (its threads were started on them); a digest, so an idle worker's key is short
        key = hashlib.sha256(json.dumps([device.model_dump(), sorted(env.items())]).encode()).hexdigest()
        generation = self._generation
        worker = self._take(key)
        if worker is None:
            worker = Worker(env)
        try:
            yield worker
        except BaseException:
            if worker.alive:
                worker.proc.kill()
            worker.reap()
            raise
        with self._lock:
            if self._generation == generation and worker.alive and not worker.retired:
                self._idle.setdefault(key, []).append(worker)
                return
        worker.close()
        worker.reap()

    def run(self, job: BaseModel, job_file: Path, device: Device, log_line: Callable[[str], None], what: str) -> None:
        """Write ``job`` to ``job_file`` and run it in a worker pinned to ``device``, its output streamed to ``log_line``
        after a line naming the worker (``warm worker PID, job N``: its Nth job).

        Raises:
            LaunchError: the worker exited before the job's end; ``what`` names it.
            Stopped: the run was asked to stop.
        """
        job_file.parent.mkdir(parents=True, exist_ok=True)
        job_file.write_text(job.model_dump_json(indent=1))
        try:
            with self.worker(device) as worker:
                log_line(f"warm worker {worker.proc.pid}, job {worker.jobs + 1}")
                worker.run(job_file, log_line, what)
        finally:
            job_file.unlink(missing_ok=True)

    def close(self) -> None:
        """End every idle worker (their stdin closed, then SIGKILL after ``CLOSE_WAIT_S``); those busy end when their job does."""
        with self._lock:
            self._generation += 1
            workers = [w for idle in self._idle.values() for w in idle]
            self._idle.clear()
        for worker in workers:
            worker.close()
        for worker in workers:
            worker.reap()

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Around a fan-out: when the last fan-out using the pool ends, its workers go (``close``)."""
        with self._lock:
            self._sessions += 1
        try:
            yield
        finally:
            with self._lock:
                self._sessions -= 1
                last = self._sessions == 0
            if last:
                self.close()

    def pids(self) -> list[int]:
        """The process ids of the idle workers."""
        with self._lock:
            return [w.proc.pid for idle in self._idle.values() for w in idle]


WORKERS = WorkerPool()
"""This process's warm workers: the ``process`` executor's, closed at the end of each fan-out and when this process exits."""
atexit.register(WORKERS.close)
