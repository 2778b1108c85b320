"""Ctrl-C (a real SIGINT to this process) while the main thread waits for the threads of a run: the
stop is requested with its reason, a thread waiting (for a slot, a lock) ends at once with
``Stopped``, and a child process started through the run's launcher is ended with it."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest

from muppet_core.stopping import Stopped, check_stop, clear_stop, on_stop, pause, stop_on_interrupt
from muppet_core.training.launch import end_process
from tests.faults.report import Outcome, record


@pytest.fixture
def ctrl_c_raises():
    """SIGINT handled as in a process a terminal started (Python's default: KeyboardInterrupt in the main
    thread), whatever an earlier test in this process installed (a library's handler, or SIG_IGN)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_in_the_main_thread_stops_a_waiting_thread_and_a_child_process_at_once(ctrl_c_raises):
    clear_stop()
    ended: dict[str, object] = {}
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])

    def waiting_for_a_slot() -> None:
        try:
            with on_stop(lambda: end_process(child)):
                pause(60)  # a wait that polls the request, as the slot and lock waits do
        except Stopped as exc:
            ended["reason"], ended["at"] = str(exc), time.monotonic()

    thread = threading.Thread(target=waiting_for_a_slot)
    thread.start()
    time.sleep(0.5)
    sent = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt), stop_on_interrupt():
            signal.raise_signal(signal.SIGINT)  # the terminal's Ctrl-C, delivered to the main thread
            thread.join()
        thread.join(timeout=5)
        assert not thread.is_alive() and ended["reason"] == "SIGINT (Ctrl-C)" and ended["at"] - sent < 5, ended
        assert child.wait(timeout=10) == -signal.SIGTERM  # the launcher's hook ended it
        with pytest.raises(Stopped, match=r"SIGINT \(Ctrl-C\)"):
            check_stop()  # every later check of this process sees the request
    finally:
        clear_stop()
        if child.poll() is None:
            child.kill()
    record(Outcome("signal", "Ctrl-C (SIGINT) to a process whose main thread waits for a thread held in a slot wait with a child process",
                   f"the stop requested as 'SIGINT (Ctrl-C)'; the waiting thread ended {ended['at'] - sent:.2f} s after it, its child by SIGTERM"))
