"""The fault-injection suite: every test records what it injected or fed in and what the system
did, and the run ends with one table of them (also written to test-output/faults.md)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.conftest import REPO

REPORT = REPO / "test-output" / "faults.md"


@dataclass(frozen=True)
class Outcome:
    """One fault injected or bad input tried, and what the system did."""

    kind: str
    """``fault``, ``bad input`` or ``security``."""
    tried: str
    """What was injected or fed in."""
    outcome: str
    """What the system did, as the test observed it."""


_OUTCOMES: list[Outcome] = []


@pytest.fixture
def fault_report():
    """Call ``fault_report(kind, tried, outcome)`` after the test has checked the outcome."""

    def record(kind: str, tried: str, outcome: str) -> None:
        _OUTCOMES.append(Outcome(kind, tried, outcome))

    return record


def render(outcomes: list[Outcome]) -> str:
    """The outcomes as a Markdown table."""
    lines = ["| kind | injected / tried | outcome |", "| --- | --- | --- |"]
    lines += [f"| {o.kind} | {o.tried} | {o.outcome} |".replace("\n", " ") for o in outcomes]
    return "\n".join(lines) + "\n"


def pytest_terminal_summary(terminalreporter):
    if not _OUTCOMES:
        return
    table = render(sorted(_OUTCOMES, key=lambda o: (o.kind, o.tried)))
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text("# Faults injected and inputs tried\n\n" + table)
    terminalreporter.section(f"faults injected and inputs tried ({len(_OUTCOMES)})")
    terminalreporter.write(table)
