"""A worker that dies or hangs never touches acquisition, filtering or fatigue: the monitor says "offline", the
supervisor brings a worker back, decisions resume, and the windows lost meanwhile are counted, not hidden."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid

import numpy as np
import pytest

from tests.players import start_player, wait_until

FS = 2048.0


@pytest.mark.slow
def test_killed_then_hung_worker_is_replaced_while_dsp_goes_on_gap_free():
    from monitor.acquisition import resolve_stream
    from monitor.inference.client import InferenceClient
    from monitor.inference.supervisor import WorkerSupervisor, spawn_worker
    from monitor.pipeline import MonitorPipeline

    source_id = f"wfault-{uuid.uuid4().hex[:8]}"
    player = start_player(source_id, 22)
    handle = spawn_worker()
    client = InferenceClient(endpoint=handle.endpoint, bed_id=source_id, deadline_s=0.5)
    supervisor = WorkerSupervisor(handle, client, unresponsive_s=2.0).start()
    pipeline = MonitorPipeline(resolve_stream(source_id=source_id, timeout_s=20), client=client, publish=False)
    pipeline.start()
    try:
        assert wait_until(lambda: len(pipeline.state.decisions) > 20, 30)

        killed = handle.pid
        os.kill(killed, signal.SIGKILL)
        killed_at = pipeline.acquisition.buffer.latest(1).timestamps[-1]
        assert wait_until(lambda: client.state == "offline" or handle.pid != killed, 3.0) is not None
        # resumed: a decision for a window that ended after the kill (LSL time, so load cannot blur it)
        assert wait_until(lambda: pipeline.state.decisions[-1].last_timestamp > killed_at, 10.0) is not None
        first_after = next(d for d in pipeline.state.decisions if d.last_timestamp > killed_at)
        assert first_after.last_timestamp + first_after.latency_s - killed_at < 3.0

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
