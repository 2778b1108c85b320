"""The fault-injection suite: every test records what it injected or fed in and what the system
did (tests/faults/report.py); the run ends with one table of them."""

from __future__ import annotations

import sys
import types

import pytest
import s3fs

from flows.cli import main
from tests.faults.report import Outcome, record


@pytest.fixture
def fault_report():
    """Call ``fault_report(kind, tried, outcome)`` after the test has checked the outcome."""

    def report(kind: str, tried: str, outcome: str) -> None:
        record(Outcome(kind, tried, outcome))

    return report


@pytest.fixture
def muppet(tmp_path, monkeypatch, capsys, plugins_undone):
    """``muppet(*argv)``: `muppet` run here in ``tmp_path`` -> (exit code, stdout, stderr lines). What
    a run leaves in this process (catalog folders, plugins, the import path) is undone after the
    test (``plugins_undone``), and a pipeline that passed its checks would stop at a stub instead of starting a flow."""
    for name in ("MUPPET_STORE", "MUPPET_DATA_MIRROR", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no credentials from the instance metadata service either
    s3fs.S3FileSystem.clear_instance_cache()  # none made earlier in this process with another test's credentials
    monkeypatch.chdir(tmp_path)

    def passed(*args, **kwargs):
        raise AssertionError("the checks let it through: a flow would start")

    for module, attr in (("flows.reproduce", "reproduce"), ("flows.deployments", "build_deployments")):
        monkeypatch.setitem(sys.modules, module, types.SimpleNamespace(**{attr: passed}))

    def run(*argv: str) -> tuple[int, str, list[str]]:
        capsys.readouterr()
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err.splitlines()

    return run
