"""A view the core started comes back by itself: started again when it crashes or hangs, not when the user closed it,
not in a loop when it cannot start, and the core's status line says which happened (monitor.core.process.ViewChild
on stand-in view processes: milliseconds, no LSL, no Python start-up)."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from monitor.core.control import ViewRegistry
from monitor.core.process import HUNG_RESTART_S, MAX_RESTARTS, VIEW_NICENESS, ViewChild


@pytest.fixture
def views():
    registry = ViewRegistry()
    yield registry
    if registry.child is not None and registry.child.poll() is None:
        registry.child.kill()
        registry.child.wait()


def exited(child: ViewChild) -> None:
    child.process.wait(timeout=10)


def test_a_killed_view_is_started_again_and_the_status_line_says_so(views):
    child = ViewChild(["sleep", "60"], views)
    first = child.start()
    assert child.check() is None  # running, never said hello yet: not a hang
    first.send_signal(signal.SIGKILL)
    exited(child)
    assert child.check() == "restarted"
    assert child.process.pid != first.pid and child.process.poll() is None and views.child is child.process
    # the restarted view, as the first, yields the cores to acquisition and decisions under contention
    expected = min(os.getpriority(os.PRIO_PROCESS, 0) + VIEW_NICENESS, 19)
    assert os.getpriority(os.PRIO_PROCESS, child.process.pid) == expected
    line = views.describe()
    assert f"view restarted (pid {first.pid} exited with -9" in line and "restart 1" in line


# the view's SIGINT is set to its default first: a test run started in the background (CI, `make test &`) inherits
# SIGINT ignored, and `sh -c 'kill -INT $$'` then exited 0 instead of dying of it
INTERRUPTED = "import os, signal; signal.signal(signal.SIGINT, signal.SIG_DFL); os.kill(os.getpid(), signal.SIGINT)"


@pytest.mark.parametrize("ending", ["closed", "interrupted"])  # closed, or Ctrl-C on the terminal's process group
def test_a_view_closed_by_the_user_ends_the_session_and_is_not_restarted(views, ending):
    child = ViewChild(["true"] if ending == "closed" else [sys.executable, "-c", INTERRUPTED], views)
    child.start()
    exited(child)
    assert child.process.returncode == (0 if ending == "closed" else -signal.SIGINT)
    assert child.check() == "closed"


def test_a_view_that_cannot_start_is_given_up_and_the_line_says_how_to_reattach(views):
    child = ViewChild(["false"], views)  # exits 1 at once, every time
    child.start()
    outcomes = []
    for _ in range(MAX_RESTARTS + 1):
        exited(child)
        outcomes.append(child.check())
    assert outcomes == ["restarted"] * MAX_RESTARTS + ["given up"]
    assert child.check() is None  # given up for good: no more processes
    assert "not restarted after 5 restarts in 60 s); reattach: neurofusion view" in views.describe()


def test_a_user_error_is_not_retried(views):
    child = ViewChild(["sh", "-c", "exit 2"], views)
    child.start()
    exited(child)
    assert child.check() == "given up" and "a user error" in views.describe()


def test_a_hung_view_is_killed_and_started_again_unless_the_core_itself_was_stopped(views):
    child = ViewChild(["sleep", "60"], views)
    hung = child.start()
    views.seen("v1", hung.pid, "window")
    views.views["v1"].last_seen = time.monotonic() - HUNG_RESTART_S - 1  # silent for longer than a hang
    assert child.check(core_stalled=True) is None  # the core's own loop stood still (Ctrl-Z): not the view's fault
    assert child.check() == "restarted"
    assert hung.wait(timeout=10) == -signal.SIGKILL
    assert f"pid {hung.pid} not answering for {HUNG_RESTART_S + 1:.0f} s, killed" in views.describe()
