"""The one entry of every training process: ``python -m muppet_core.training JOB.json``, or as a
warm worker of the ``process`` executor ``python -m muppet_core.training --serve`` (job files on
stdin, see ``serve`` and ``muppet_core.training.warm``).

The job file (a local path, or a URI in the store) holds one job (``muppet_core.training.jobs``);
``JOBS`` names the model of each kind, imported when a job of that kind comes. The launchers start
it for pre-finetuning's ranks (``launch.launch_command``: one process, torchrun, deepspeed, and
``muppet join`` on the other nodes), and the ``process`` executor for each fine-tune. Each kind's
code is in the keys of what it computes; this dispatch is in none, and changes no result.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
from collections.abc import Callable

from muppet_core.errors import MuppetError
from muppet_core.plugins import load_plugins
from muppet_core.registry import Registry
from muppet_core.tracking import without_mlflow
from muppet_core.training.jobs import Job, read_text
from muppet_core.training.launch import die_with_launcher
from muppet_core.training.warm import DONE, RETIRE, SERVE, WORKER_TOKEN

JOBS = Registry("job")
JOBS.register("prefinetune", "muppet_core.training.worker:PrefinetuneJob")
JOBS.register("finetune", "muppet_core.training.finetune_worker:FinetuneJob")


def read_job(path: str) -> Job:
    """The job of the file ``path``, validated by the model of its ``kind``.

    Raises:
        MuppetError: the file's kind is not one of ``JOBS`` (one line).
    """
    text = read_text(path)
    kind = json.loads(text).get("kind")
    if kind not in JOBS:
        raise MuppetError(f"job file {path}: kind {kind!r} is not one of {', '.join(JOBS.names())}")
    return JOBS.get(kind).model_validate_json(text)


def fresh_state() -> Callable[[], None]:
    """A function that puts every random generator back as this process has it now, at its start:
    torch's (its initial seed, CUDA's generators with it, and the CPU generator's state) as it was,
    numpy's global one and Python's from fresh entropy, as a new process seeds them. A warm worker
    calls it before each job, so that whatever a job left behind (its seed, a checkpoint's restored
    states) the next starts as a fresh process would. The rest a job changes in its process is set
    again by every job (the device's cores and thread count, ``Device.apply``; the run's seed, drawn
    from by model, data order and dropout alike, ``finetune.fit``) or is cached by a name whose
    content does not change while the process lives (the catalog's tasks, the plugins, the library
    versions); none of it decides a result."""
    import numpy as np
    import torch

    seed, state = torch.initial_seed(), torch.get_rng_state()

    def reset() -> None:
        torch.manual_seed(seed)  # the initial seed, and CUDA's generators (lazily, as they start)
        torch.set_rng_state(state)
        np.random.seed()
        random.seed()

    return reset


def serve() -> int:
    """A warm worker (``muppet_core.training.warm``): run the job of each file whose path comes on
    stdin, one a line, as a fresh process would (``fresh_state`` first), and after each print the
    control line on a line of its own (the token of ``WORKER_TOKEN``, then ``DONE``, or ``RETIRE``
    after a failure record, and return); return at the end of stdin. Between jobs it frees what the
    last one held, as an ending process would. A job that raises ends the worker, as it ends a fresh
    process."""
    import gc

    import torch

    from muppet_core.stages import FINETUNE_FAILED
    from muppet_core.training import finetune_worker  # noqa: F401  (what a fine-tune job imports, once)

    token = os.environ[WORKER_TOKEN]
    reset = fresh_state()
    while line := sys.stdin.readline():
        if not line.strip():
            continue
        reset()
        with without_mlflow():  # the tracking callback, where installed, loads it
            output = read_job(line.strip()).execute()
        failed = getattr(output, "stage", None) == FINETUNE_FAILED
        gc.collect()
        if torch.cuda.is_initialized():
            torch.cuda.empty_cache()
        sys.stdout.flush()
        sys.stdout.write(f"\n{token} {RETIRE if failed else DONE}\n")  # one write, after a newline: a line of its own
        sys.stdout.flush()
        if failed:
            return 0
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the job whose file is the last argument, or with ``SERVE`` there, serve (see ``serve``)."""
    die_with_launcher()
    # Libraries speak at WARNING and above; the project's own progress at INFO.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    logging.getLogger("muppet_core").setLevel(logging.INFO)
    load_plugins()  # before the job's backbone source and kind are looked up
    last = (argv or sys.argv)[-1]
    if last == SERVE:
        return serve()
    with without_mlflow():  # the tracking callback, where installed, loads it
        read_job(last).execute()
    return 0


if __name__ == "__main__":
    sys.exit(main())
