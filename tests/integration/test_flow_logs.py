"""Inside a flow, an error the user can mend reaches Prefect's run logs as one line, as the `muppet`
command prints it; a bug keeps its traceback there."""

from __future__ import annotations

import logging

import pytest

from muppet_core.errors import DataSourceError


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.text: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.text.append(logging.Formatter("%(message)s").format(record))


def test_a_user_error_in_a_task_is_logged_in_one_line_and_a_bug_with_its_traceback(prefect_harness):
    from prefect import flow, task

    from flows import RUN_LOGGERS

    @task
    def normalize(kind: str) -> None:
        if kind == "user":
            raise DataSourceError("tasks.my_rte.normalizer: raised ValueError: no label in row 3")
        raise ValueError("a bug")

    @flow
    def prepare(kind: str) -> None:
        normalize(kind)

    logs = {}
    for kind, error in (("user", DataSourceError), ("bug", ValueError)):
        lines = Lines()
        for name in RUN_LOGGERS:
            logging.getLogger(name).addHandler(lines)
        try:
            with pytest.raises(error):
                prepare(kind)
        finally:
            for name in RUN_LOGGERS:
                logging.getLogger(name).removeHandler(lines)
        logs[kind] = lines.text

    assert logs["user"] and all("Traceback" not in line and "\n" not in line for line in logs["user"]), logs["user"]
    assert "failed: tasks.my_rte.normalizer: raised ValueError: no label in row 3" in logs["user"]
    assert any("Traceback" in line and "ValueError: a bug" in line for line in logs["bug"]), logs["bug"]
