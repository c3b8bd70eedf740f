"""A worker that dies or hangs never touches acquisition, filtering or fatigue: the monitor says "offline", the
supervisor brings a worker back, decisions resume, and the windows lost meanwhile are counted, not hidden."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

from tests.conftest import REPO

FS = 2048.0


def wait_until(condition, timeout_s: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if condition():
            return time.monotonic() - start
        time.sleep(0.02)
    return None


@pytest.mark.slow
def test_killed_then_hung_worker_is_replaced_while_dsp_goes_on_gap_free():
    from monitor.acquisition import resolve_stream
    from monitor.inference.client import InferenceClient
    from monitor.inference.supervisor import WorkerSupervisor, spawn_worker
    from monitor.pipeline import MonitorPipeline

    source_id = f"wfault-{uuid.uuid4().hex[:8]}"
    player = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "players.py"), "--source-id", source_id, "--duration", "22"],
        stdout=subprocess.PIPE, text=True,
    )
    handle = spawn_worker()
    client = InferenceClient(endpoint=handle.endpoint, bed_id=source_id, deadline_s=0.5)
    supervisor = WorkerSupervisor(handle, client, unresponsive_s=2.0).start()
    pipeline = MonitorPipeline(resolve_stream(source_id=source_id, timeout_s=20), client=client, publish=False)
    pipeline.start()
    try:
        assert wait_until(lambda: len(pipeline.state.decisions) > 20, 30)

        killed = handle.pid
        os.kill(killed, signal.SIGKILL)
        assert wait_until(lambda: client.state == "offline" or handle.pid != killed, 3.0) is not None
        before = len(pipeline.state.decisions)
        resumed_after = wait_until(lambda: len(pipeline.state.decisions) > before + 5, 10.0)
        assert resumed_after is not None and resumed_after < 3.0, resumed_after

        hung = handle.pid
        os.kill(hung, signal.SIGSTOP)  # alive, but answering nothing
        try:
            assert wait_until(lambda: client.state == "offline", 5.0) is not None
            windows_while_hung = pipeline.engine.stats.windows
            before = len(pipeline.state.decisions)
            assert wait_until(lambda: len(pipeline.state.decisions) > before + 5, 15.0) is not None
            assert pipeline.engine.stats.windows > windows_while_hung  # the DSP never waited for the worker
        finally:
            with contextlib.suppress(ProcessLookupError):  # the supervisor normally kills the hung one itself
                os.kill(hung, signal.SIGCONT)
        player.communicate(timeout=40)
        time.sleep(0.5)
    finally:
        pipeline.stop()
        supervisor.stop()
        client.close()

    raw = pipeline.acquisition.buffer.read_from(0)
    index = raw.data[:, -1]
    np.testing.assert_array_equal(index, np.arange(len(index), dtype=np.float32))  # acquisition untouched
    assert pipeline.engine.reader.dropped == 0
    assert supervisor.restarts >= 2
    stats = client.stats
    lost = stats["submitted"] - stats["answered"]
    assert lost > 0  # the outages cost windows ...
    assert lost == stats["dropped_deadline"] + stats["dropped_superseded"] + stats["in_flight"]  # ... all counted
    sequences = [d.sequence for d in pipeline.state.decisions]
    assert len(sequences) == len(set(sequences))
