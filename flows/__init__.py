"""Prefect flows: thin wiring of muppet_core calls (no ML logic lives here).

Importing any flow installs ``OneLineUserErrors`` on Prefect's run loggers."""

from __future__ import annotations

import logging

from muppet_core.errors import MuppetError, first_line

RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


class OneLineUserErrors(logging.Filter):
    """Prefect's run loggers log a failed task's or flow's exception with its traceback. For a
    ``MuppetError``, an error the user can mend whose message says how, they log its first line alone,
    as the ``muppet`` command prints it; any other exception keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, MuppetError):
            record.msg, record.args = f"failed: {first_line(error, limit=1000)}", ()
            record.exc_info = record.exc_text = None
        return True


for _name in RUN_LOGGERS:
    if not any(isinstance(f, OneLineUserErrors) for f in logging.getLogger(_name).filters):
        logging.getLogger(_name).addFilter(OneLineUserErrors())
