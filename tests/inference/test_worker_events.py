"""A spawned worker killed mid-session: its death and its restart are session events on the `-events` LSL stream,
as signal lost/restored are (a recording of such a session held 0 events, so nothing said why the decisions
stopped). A real process killed with SIGKILL under the real supervisor, a real events outlet read back on loopback.

The process is a stand-in that speaks the worker's start-up line and nothing else: the events do not depend on
what it serves, and two real worker starts (Python + torch) cost 18 s here at load 3.5 (the same test with
`spawn_worker(ring8_checkpoint)` passed that way once; tests/inference/test_supervision.py restarts a real one)."""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid

import pylsl

from monitor.inference.supervisor import READY_PREFIX, WorkerHandle, WorkerSupervisor
from monitor.outlets import ResultOutlets


class StandInWorker(WorkerHandle):
    """Launches a process that says READY on the requested endpoint and then waits to be killed."""

    def command(self, standby: bool = False) -> list[str]:
        ready = f"{READY_PREFIX}{self.requested_endpoint} stand-in-model"
        return [sys.executable, "-c", f"import time; print({ready!r}, flush=True); time.sleep(120)"]


def test_a_killed_worker_is_announced_on_the_events_stream() -> None:
    source_id = f"worker-events-{uuid.uuid4().hex[:8]}"
    outlets = ResultOutlets("worker-events", source_id, ["E01"])  # what the pipeline publishes its events on
    resolved = pylsl.resolve_byprop("source_id", f"{source_id}-events", timeout=5.0)
    assert resolved
    inlet = pylsl.StreamInlet(resolved[0])
    inlet.open_stream(timeout=5.0)
    handle = StandInWorker("tcp://127.0.0.1:5999", ready_timeout_s=30.0)
    handle.start()
    first_pid = handle.pid
    handle.add_event_listener(outlets.push_event)  # as the session hooks pipeline.record_event
    supervisor = WorkerSupervisor(handle, check_s=0.05).start()
    texts: list[str] = []
    try:
        os.kill(first_pid, signal.SIGKILL)  # a crash, not a polite stop
        give_up = time.monotonic() + 30
        while time.monotonic() < give_up and not any("restarted" in text for text in texts):
            sample, _ = inlet.pull_sample(timeout=0.2)
            if sample:
                texts.append(sample[0])
    finally:
        supervisor.stop()
        inlet.close_stream()
    assert texts[0] == f"inference worker died (exit status {-signal.SIGKILL}); restarting it", texts
    assert texts[1].startswith("inference worker restarted (") and texts[1].endswith("restart 1)"), texts
    assert len(texts) == 2 and handle.pid != first_pid and not handle.alive


def test_events_before_anyone_listens_are_kept_for_the_first_listener() -> None:
    handle = StandInWorker("tcp://127.0.0.1:5998")
    handle.announce("inference worker died (exit status -9); restarting it")
    heard: list[tuple[str, float]] = []
    handle.add_event_listener(lambda text, timestamp: heard.append((text, timestamp)))
    assert [text for text, _ in heard] == ["inference worker died (exit status -9); restarting it"]
    assert abs(heard[0][1] - pylsl.local_clock()) < 5.0  # stamped on the LSL clock, as the events stream is
