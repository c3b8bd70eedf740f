"""A worker the monitor spawned ends itself when that monitor dies without stopping it (kill -9, a library's
abort()): no worker keeps its port and its CPU after the monitor that started it is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

from monitor.inference.supervisor import PARENT_PID_VARIABLE

REPO = Path(__file__).resolve().parents[2]
# a stand-in for the worker's serving loop: it waits on the same stop event the worker's serve() does
WORKER = textwrap.dedent("""
    import sys, threading
    from monitor.inference.supervisor import exit_with_parent
    stop = threading.Event()
    exit_with_parent(stop, check_s=0.05)
    print("serving", flush=True)
    stopped = stop.wait(60)
    print("stopped" if stopped else "still serving after 60 s", flush=True)  # into /dev/null once stopped
""")
# the monitor: starts the worker with the variable as WorkerHandle does, reports its pid, then waits to be killed
MONITOR = textwrap.dedent("""
    import os, subprocess, sys, time
    env = dict(os.environ, {variable}=str(os.getpid()))
    worker = subprocess.Popen([sys.executable, "-c", sys.argv[1]], env=env, stdout=open(sys.argv[2], "w"))
    print(worker.pid, flush=True)
    time.sleep(60)
""").format(variable=PARENT_PID_VARIABLE)


def test_a_spawned_worker_stops_when_its_monitor_is_killed(tmp_path):
    log = tmp_path / "worker.log"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    monitor = subprocess.Popen([sys.executable, "-c", MONITOR, WORKER, str(log)], env=env, stdout=subprocess.PIPE,
                               text=True, cwd=REPO)  # fmt: skip
    worker = psutil.Process(int(monitor.stdout.readline()))
    try:
        deadline = time.monotonic() + 60
        while "serving" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert worker.is_running()
        monitor.send_signal(signal.SIGKILL)
        monitor.wait()
        worker.wait(timeout=30)  # well before its own 60 s: the parent watch stopped it
    finally:
        if worker.is_running():
            worker.kill()
    assert not worker.is_running()
    # its stdout belonged to the dead monitor: the watch sent it to /dev/null, so the last line went nowhere
    assert log.read_text() == "serving\n"


def test_a_worker_started_by_hand_has_no_parent_watch(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != PARENT_PID_VARIABLE}
    code = ("import threading\nfrom monitor.inference.supervisor import exit_with_parent\n"
            "stop = threading.Event()\nexit_with_parent(stop, check_s=0.01)\n"
            "print(sorted(t.name for t in threading.enumerate()))")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], env=env | {"PYTHONPATH": str(REPO)}, capture_output=True,
                            text=True, timeout=60, cwd=REPO)  # fmt: skip
    assert result.stdout.strip() == "['MainThread']", result.stderr
