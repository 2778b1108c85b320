"""The table of faults injected and inputs tried: each `fault_report` call appends one JSON line to
a file of its process (so it also works with several pytest workers), and the session ends by
printing every line as one table, also written to test-output/faults.md."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUTCOMES = REPO / "test-output" / "fault-outcomes"
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


def record(outcome: Outcome) -> None:
    OUTCOMES.mkdir(parents=True, exist_ok=True)
    with open(OUTCOMES / f"{os.getpid()}.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(asdict(outcome)) + "\n")


def clear() -> None:
    shutil.rmtree(OUTCOMES, ignore_errors=True)


def collected() -> list[Outcome]:
    lines = [line for f in sorted(OUTCOMES.glob("*.jsonl")) for line in f.read_text(encoding="utf-8").splitlines()]
    return sorted((Outcome(**json.loads(line)) for line in lines), key=lambda o: (o.kind, o.tried))


def render(outcomes: list[Outcome]) -> str:
    """The outcomes as a Markdown table."""
    lines = ["| kind | injected / tried | outcome |", "| --- | --- | --- |"]
    lines += [f"| {o.kind} | {o.tried} | {o.outcome} |".replace("\n", " ") for o in outcomes]
    return "\n".join(lines) + "\n"


def summarize(terminalreporter) -> None:
    outcomes = collected()
    if not outcomes:
        return
    table = render(outcomes)
    REPORT.write_text("# Faults injected and inputs tried\n\n" + table)
    terminalreporter.section(f"faults injected and inputs tried ({len(outcomes)})")
    terminalreporter.write(table)
