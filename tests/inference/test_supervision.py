"""Kill a spawned worker mid-stream: the client reports it, the supervisor restarts it, predictions resume, and
the windows lost in between are counted."""

from __future__ import annotations

import os
import signal
import time

import pytest

from monitor.inference.client import InferenceClient
from monitor.inference.supervisor import WorkerSupervisor, spawn_worker
from tests.inference.helpers import emg_like_windows

pytestmark = pytest.mark.slow  # several worker processes (torch start-ups) on a two-core machine

FS = 2000.0
HOP_S = 0.05  # a window every 50 ms, as the monitor sends them


def accounted(stats: dict) -> int:
    return stats["answered"] + stats["dropped_deadline"] + stats["dropped_superseded"] + stats["in_flight"]


def test_killed_worker_is_restarted_and_predictions_resume(ring8_checkpoint) -> None:
    handle = spawn_worker(ring8_checkpoint, backend="torch", standby=True)
    give_up = time.monotonic() + 120
    while not handle.spare_ready and time.monotonic() < give_up:  # the spare loads in the background
        time.sleep(0.1)
    first_pid = handle.pid
    client = InferenceClient(handle.endpoint, bed_id="bed-1", deadline_s=0.5)
    supervisor = WorkerSupervisor(handle, client).start()
    windows = emg_like_windows(4, 8, 400, seed=1)
    answered: list[int] = []
    states: list[str] = []
    killed_at_sequence = None
    killed_at = resumed_after = None
    try:
        sequence = 0
        give_up = time.monotonic() + 90
        while time.monotonic() < give_up:
            client.submit(windows[sequence % 4], sequence * HOP_S, sequence, FS)
            sequence += 1
            if killed_at is None and len(answered) >= 10:
                time.sleep(0.001)  # the window just submitted is on its way: it dies with the worker
                os.kill(handle.pid, signal.SIGKILL)  # a crash, not a polite stop
                killed_at, killed_at_sequence = time.monotonic(), sequence
            time.sleep(HOP_S)
            answered += [d.sequence for d in client.poll()]
            states.append(client.state)
            if killed_at is not None and answered and answered[-1] >= killed_at_sequence:
                resumed_after = time.monotonic() - killed_at
                break
        for _ in range(20):  # let the last windows settle (answered or expired) for the accounting below
            time.sleep(0.05)
            answered += [d.sequence for d in client.poll()]
        stats = client.stats
    finally:
        supervisor.stop()
        client.close()
    assert resumed_after is not None, f"predictions never resumed; states seen: {sorted(set(states))}"
    print(f"predictions resumed {resumed_after:.2f} s after the kill; {stats}")
    assert supervisor.restarts == 1 and handle.pid != first_pid
    assert "offline" in states[states.index("online"):], "the client never reported the worker offline"
    assert stats["offline_periods"] >= 1 and stats["offline_seconds"] > 0
    # the gap is counted, not hidden: every window never answered is in the drop counters, and only those
    lost = set(range(sequence)) - set(answered)
    assert stats["in_flight"] == 0 and len(answered) == len(set(answered)) == stats["answered"]
    assert len(lost) == stats["dropped_deadline"] + stats["dropped_superseded"]
    assert stats["submitted"] == accounted(stats) == sequence
