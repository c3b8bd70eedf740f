"""The whole slice with real parts: simulated amplifier subprocess -> LSL -> ring buffer -> DSP -> ZeroMQ worker
process -> decisions. The player's last channel carries the sample index, proving nothing was lost or duplicated."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest

from tests.players import start_player

DURATION_S = 10.0
FS = 2048.0


@pytest.fixture
def player():
    source_id = f"e2e-{uuid.uuid4().hex[:8]}"
    process = start_player(source_id, DURATION_S, fs=FS)
    yield source_id, process
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)


@pytest.mark.slow
def test_every_sample_arrives_once_and_nearly_every_window_gets_a_decision(bundled_worker, player):
    from dsp.windows import samples_for
    from monitor.acquisition import resolve_stream
    from monitor.inference.client import InferenceClient
    from monitor.pipeline import MonitorPipeline

    source_id, process = player
    # the bundled model in its own process, as the monitor runs it
    client = InferenceClient(endpoint=bundled_worker.endpoint, bed_id="e2e", deadline_s=2.0)
    try:
        info = resolve_stream(source_id=source_id, timeout_s=20.0)
        pipeline = MonitorPipeline(info, client=client)
        pipeline.start()
        out, _ = process.communicate(timeout=DURATION_S + 30)
        assert process.returncode == 0
        sent = int(out.split()[-1])
        window, hop = samples_for(200, FS), samples_for(50, FS)
        expected_windows = sent // hop - -(-window // hop) + 1  # windows end at multiples of the hop
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(pipeline.state.decisions) < expected_windows:
            time.sleep(0.1)
        pipeline.stop()
    finally:
        client.close()

    assert sent == int(DURATION_S * FS)
    raw = pipeline.acquisition.buffer.read_from(0)
    index = raw.data[:, -1]
    assert raw.first_counter == 0
    np.testing.assert_array_equal(index, np.arange(sent, dtype=np.float32))  # no gap, no duplicate, in order
    # sample-accurate timestamps, evenly spaced at the nominal rate (liblsl's clock-offset updates move them by µs;
    # a missing sample would show as a step of a whole period, 488 µs)
    np.testing.assert_allclose(np.diff(raw.timestamps), 1.0 / FS, atol=5e-5)
    assert pipeline.engine.reader.dropped == 0
    sequences = [d.sequence for d in pipeline.state.decisions]
    assert len(sequences) == len(set(sequences))
    assert len(sequences) >= 0.95 * expected_windows, (len(sequences), expected_windows)
    last = pipeline.state.decisions[-1]
    assert np.isclose(last.probabilities.sum(), 1.0, atol=1e-4)
    assert last.label in [*last.classes, "rest"]
