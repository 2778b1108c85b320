"""A run asked to stop (SIGTERM, Ctrl-C, a cancel from the Prefect UI): one request per process that
every wait and every child process of the run heeds.

Python delivers a signal to the main thread only; the fan-out's fine-tunes wait (for a concurrency
slot, a build lock) or train in other threads, and its processes run beside it. ``stop_on_interrupt``
turns the main thread's interrupt into the request; waits poll it (``pause``), the training loop
checks it every update, and launchers end their child processes (``on_stop``). What ends that way
raises ``Stopped``, which is no ``Exception``: it writes no failure record and is never retried, so a
re-run resumes the work from the store and the checkpoints.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

_REQUEST = threading.Event()
_REASON = ["stop requested"]
_HOOKS: dict[int, Callable[[], None]] = {}
_HOOKS_LOCK = threading.Lock()


class Stopped(BaseException):
    """The run was asked to stop: not a failure of the work it interrupted."""


def request_stop(reason: str) -> None:
    """Ask every wait and child process of this process to stop (once; later reasons are ignored)."""
    with _HOOKS_LOCK:
        if _REQUEST.is_set():
            return
        _REASON[0] = reason
        _REQUEST.set()
        hooks = list(_HOOKS.values())
    for hook in hooks:
        hook()


def stop_requested(within: float = 0.0) -> bool:
    """Whether this process was asked to stop, waiting up to ``within`` seconds for the request (a
    child that the terminal's Ctrl-C ended may report before the main thread has turned it into one)."""
    return _REQUEST.wait(within) if within else _REQUEST.is_set()


def check_stop() -> None:
    """Raise ``Stopped`` (saying why) when this process was asked to stop."""
    if _REQUEST.is_set():
        raise Stopped(_REASON[0])


def pause(seconds: float) -> None:
    """Sleep up to ``seconds``; raises ``Stopped`` at once when the stop is requested meanwhile."""
    if _REQUEST.wait(seconds):
        raise Stopped(_REASON[0])


def clear_stop() -> None:
    """Forget a request (a new run in the same process starts unstopped)."""
    with _HOOKS_LOCK:
        _REQUEST.clear()


@contextlib.contextmanager
def on_stop(hook: Callable[[], None]) -> Iterator[None]:
    """Call ``hook`` (from the thread that requests the stop) if a stop is requested while the block
    runs, or at once when it already was: how a launcher ends its child process."""
    with _HOOKS_LOCK:
        _HOOKS[id(hook)] = hook
        already = _REQUEST.is_set()
    try:
        if already:
            hook()
        yield
    finally:
        with _HOOKS_LOCK:
            _HOOKS.pop(id(hook), None)


@contextlib.contextmanager
def stop_on_interrupt() -> Iterator[None]:
    """Around a flow's wait for its threads: an interrupt raised here in the main thread (a signal
    turned into an exception: KeyboardInterrupt, Prefect's TerminationSignal, ``Stopped``) requests
    the stop before it propagates, so the threads it waits for end instead of blocking the exit."""
    try:
        yield
    except Exception:
        raise
    except BaseException as exc:
        request_stop(_reason(exc))
        raise


def _reason(exc: BaseException) -> str:
    """``SIGTERM``, ``SIGINT (Ctrl-C)``, or the interrupt's type and message."""
    if (number := getattr(exc, "signal", None)) is not None:  # Prefect's TerminationSignal
        return signal.Signals(number).name
    if isinstance(exc, KeyboardInterrupt):
        return "SIGINT (Ctrl-C)"
    return f"{type(exc).__name__}{f': {exc}' if str(exc) else ''}"


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """For the block, SIGTERM raises ``Stopped`` in the main thread as Ctrl-C raises KeyboardInterrupt
    (Python's default for SIGTERM ends the process at once, skipping the cleanup that stops the
    temporary Prefect server and the run's child processes)."""

    def stopped(signum, frame):
        request_stop("SIGTERM")
        raise Stopped("SIGTERM")

    previous = signal.signal(signal.SIGTERM, stopped)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
