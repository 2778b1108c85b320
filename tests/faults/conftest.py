"""The fault-injection suite: every test records what it injected or fed in and what the system
did (tests/faults/report.py); the run ends with one table of them."""

from __future__ import annotations

import pytest

from tests.faults.report import Outcome, record


@pytest.fixture
def fault_report():
    """Call ``fault_report(kind, tried, outcome)`` after the test has checked the outcome."""

    def report(kind: str, tried: str, outcome: str) -> None:
        record(Outcome(kind, tried, outcome))

    return report
