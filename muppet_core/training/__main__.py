"""The one entry of every training process: ``python -m muppet_core.training JOB.json``.

The job file (a local path, or a URI in the store) holds one job (``muppet_core.training.jobs``);
``JOBS`` names the model of each kind, imported when a job of that kind comes. The launchers start
it for pre-finetuning's ranks (``launch.launch_command``: one process, torchrun, deepspeed, and
``muppet join`` on the other nodes), and the ``process`` executor for each fine-tune. Each kind's
code is in the keys of what it computes; this dispatch is in none, and changes no result.
"""

from __future__ import annotations

import json
import logging
import sys

from muppet_core.errors import MuppetError
from muppet_core.plugins import load_plugins
from muppet_core.registry import Registry
from muppet_core.tracking import without_mlflow
from muppet_core.training.jobs import Job, read_text
from muppet_core.training.launch import die_with_launcher

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


def main(argv: list[str] | None = None) -> int:
    """Run the job whose file is the last argument."""
    die_with_launcher()
    # Libraries speak at WARNING and above; the project's own progress at INFO.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    logging.getLogger("muppet_core").setLevel(logging.INFO)
    load_plugins()  # before the job's backbone source and kind are looked up
    with without_mlflow():  # the tracking callback, where installed, loads it
        read_job((argv or sys.argv)[-1]).execute()
    return 0


if __name__ == "__main__":
    sys.exit(main())
