"""The fine-tune slots of this machine: a Prefect global concurrency limit, ``muppet-finetune-on-<host>``
(``muppet_core.training.slots.limit_name``), that every pipeline run of the machine shares, whatever
its Prefect server; each run sets it to its ``finetune.concurrency`` (``ensure_limit``).

A fine-tune takes a slot for its work only (the fan-out serves cache hits without one), through the
client's lease calls rather than Prefect's ``concurrency`` context manager, whose wait can be neither
interrupted nor watched: here each try is one request, a stop (SIGTERM, Ctrl-C) ends the wait within
``TRY_S``, and every ``WAIT_LOG_S`` seconds of waiting a line names who holds the slots
(``muppet_core.training.slots``). A slot whose holder was SIGKILLed together with its temporary
Prefect server has no lease left to expire; one that no live process of the machine holds, at two
looks ``WAIT_LOG_S`` apart, is given back (``release_leaked``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from uuid import UUID

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
from prefect.exceptions import ObjectNotFound

from muppet_core.errors import first_line
from muppet_core.stopping import check_stop, pause
from muppet_core.training.slots import describe_wait, holders, holding, limit_name

log = logging.getLogger(__name__)
WAIT_LOG_S = 30.0
"""A fine-tune waiting for a slot says who holds them this often."""
TRY_S = 1.0
"""Seconds between two tries for a slot (a stop ends the wait within it)."""
LEASE_S = 300.0
"""A slot's lease on the server, renewed every ``LEASE_S / 5`` seconds while its fine-tune works."""
LOCKED = 423
"""The server's answer to a try when every slot is taken."""


def ensure_limit(slots: int, say=log.info) -> str:
    """Create this machine's fine-tune limit with ``slots`` slots, or set an existing one to ``slots``
    (saying so through ``say`` when that changes it); returns its name."""
    limit = limit_name()
    with get_client(sync_client=True) as client:
        try:
            before = client.read_global_concurrency_limit_by_name(limit).limit
        except ObjectNotFound:
            before = None
        client.upsert_global_concurrency_limit_by_name(limit, slots)
    if before is not None and before != slots:
        say(f"concurrency limit '{limit}': {before} slot(s), now {slots} (this pipeline's finetune.concurrency)")
    return limit


@contextlib.contextmanager
def finetune_slot(pipeline: str, flow_run: str, work: str, say=log.info) -> Iterator[None]:
    """Hold one slot of this machine's fine-tune limit for the block, recorded as ``work`` of
    ``pipeline``'s ``flow_run``; waits are said through ``say``.

    Raises:
        Stopped: the run was asked to stop while it waited.
    """
    limit = limit_name()
    with get_client(sync_client=True) as client:
        lease = _acquire(client, limit, work, say)
        try:
            with holding(limit, pipeline, flow_run, work), _renewing(lease):
                yield
        finally:
            try:
                client.release_concurrency_slots_with_lease(lease)
            except Exception as exc:  # the lease then expires on the server
                log.warning("could not give back the slot of %s: %s", work, first_line(exc))


def _acquire(client, limit: str, work: str, say) -> UUID:
    """A lease on one slot: tried every ``TRY_S`` seconds; the first refusal and every ``WAIT_LOG_S``
    seconds of waiting after it are said, with who holds the slots."""
    started, said, seen = time.monotonic(), None, None
    while True:
        check_stop()
        try:
            response = client.increment_concurrency_slots_with_lease(names=[limit], slots=1, mode="concurrency", lease_duration=LEASE_S)
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != LOCKED:
                raise
        else:
            if said is not None:
                say(f"fine-tune {work} took a slot of '{limit}' after waiting {time.monotonic() - started:.0f} s")
            return UUID(response.json()["lease_id"])
        if said is None or time.monotonic() - said >= WAIT_LOG_S:
            said = time.monotonic()
            slots, seen = release_leaked(client, limit, seen)
            say(f"fine-tune {work}: " + describe_wait(limit, slots, said - started))
        pause(TRY_S)


@contextlib.contextmanager
def _renewing(lease: UUID) -> Iterator[None]:
    """Renew ``lease`` from a thread of its own while the block runs."""
    done = threading.Event()

    def renew() -> None:
        with get_client(sync_client=True) as client:
            while not done.wait(LEASE_S / 5):
                try:
                    client.renew_concurrency_lease(lease, LEASE_S)
                except Exception as exc:  # the server is restarting: the next renewal may pass
                    log.warning("could not renew a fine-tune slot's lease: %s", first_line(exc))

    thread = threading.Thread(target=renew, name="muppet-slot-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()


def release_leaked(client, limit: str, seen: tuple | None) -> tuple[int | None, tuple | None]:
    """The limit's slot count; and slots that no live process of this machine holds, the same at this
    look and the one before (``seen``), given back. Returns the slots and what this look saw."""
    try:
        current = client.read_global_concurrency_limit_by_name(limit)
    except ObjectNotFound:
        return None, None
    live = holders(limit)
    now = (current.active_slots, tuple(sorted((h.pid, h.work, h.since) for h in live)))
    if current.active_slots > len(live) and now == seen:
        log.warning("'%s': %d slot(s) held by no live process of this machine (a killed run's): giving them back",
                    limit, current.active_slots - len(live))
        client.update_global_concurrency_limit(limit, GlobalConcurrencyLimitUpdate(active_slots=len(live)))
        return current.limit, None
    return current.limit, now
