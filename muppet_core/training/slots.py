"""Who holds this machine's fine-tune slots: the fan-out's fine-tunes take a slot of the machine's
Prefect concurrency limit (``flows.finetune``) for their work, and each holder is one small file here,
so a run that waits for a slot can say whose work it waits for.

Prefect counts the slots but does not say who holds them; the files do, on this machine (the limit's
name carries the host, so every holder is one of its processes). A file whose process is gone is
stale and removed when read.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ValidationError

LIMIT_PREFIX = "muppet-finetune-on-"
"""The fine-tune limit's name, before the host it counts the slots of."""


def limit_name(host: str | None = None) -> str:
    """The name of the concurrency limit of the fine-tunes running on ``host`` (default: this machine):
    ``muppet-finetune-on-<host>``; every pipeline run of the machine shares it, whatever its Prefect server."""
    host = re.sub(r"[^a-z0-9.-]+", "-", (host or socket.gethostname()).lower()).strip("-.") or "localhost"
    return LIMIT_PREFIX + host


class SlotHolder(BaseModel):
    """One fine-tune that holds a slot."""

    pid: int
    """Its process (the flow's)."""
    pipeline: str
    """The pipeline it computes for."""
    flow_run: str
    """The name of the pipeline's Prefect flow run."""
    work: str
    """The fine-tune (``variant/benchmark/seed/lr``)."""
    since: str
    """When it took the slot (UTC, ISO 8601)."""

    def describe(self) -> str:
        """``pipeline busy (flow run 'calm-lobster', pid 123): base/sst2/seed0/lr3e-05 since 07:28:10``."""
        return f"pipeline {self.pipeline} (flow run '{self.flow_run}', pid {self.pid}): {self.work} since {self.since[11:19]}"


def holders_dir(limit: str) -> Path:
    """The folder of the limit's holder files (under this machine's temporary folder)."""
    return Path(tempfile.gettempdir()) / "muppet-slots" / limit


@contextlib.contextmanager
def holding(limit: str, pipeline: str, flow_run: str, work: str) -> Iterator[SlotHolder]:
    """Record this process as a holder of one of ``limit``'s slots for the block."""
    holder = SlotHolder(pid=os.getpid(), pipeline=pipeline, flow_run=flow_run, work=work,
                        since=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    folder = holders_dir(limit)
    for level in (folder.parent, folder):  # every user's runs of the machine record their holders here, as in /tmp itself
        if not level.is_dir():
            level.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(PermissionError):
                level.chmod(0o1777)
    path = folder / f"{holder.pid}-{uuid.uuid4().hex[:8]}.json"
    path.write_text(holder.model_dump_json(), encoding="utf-8")
    try:
        yield holder
    finally:
        path.unlink(missing_ok=True)


def holders(limit: str) -> list[SlotHolder]:
    """The live holders of ``limit``'s slots on this machine, oldest first; stale files are removed."""
    found = []
    for path in sorted(holders_dir(limit).glob("*.json")):
        try:
            holder = SlotHolder.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValidationError):
            continue  # being written, or gone since the listing
        if _alive(holder.pid):
            found.append(holder)
        else:
            path.unlink(missing_ok=True)
    return sorted(found, key=lambda h: h.since)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def describe_wait(limit: str, slots: int | None, waited: float) -> str:
    """The log line of a run waiting ``waited`` seconds for one of ``limit``'s ``slots``: who holds them."""
    held = holders(limit)
    size = f"{slots} slot{'s' if slots != 1 else ''}" if slots is not None else "its slots"
    who = "; ".join(h.describe() for h in held) if held else "no process of this machine (a run elsewhere on its Prefect server, or a lease not yet expired)"
    return f"waiting for a slot of '{limit}' ({size}) for {waited:.0f} s, held by {who}"
