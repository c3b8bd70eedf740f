"""Live and offline give the same decisions for the same samples, on a real recording.

Live: the recording replayed over LSL into the monitor's pipeline (acquisition, DSP thread, ZeroMQ client) with a
real worker process. Offline: `analyze_recording`. Windows are matched by their sample counter.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from monitor.recordings import open_recording
from monitor.recordings.analysis import analyze_recording
from monitor.recordings.replay import replay_source
from tests.untrained_ring_model import save_untrained_ring_model

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.mark.slow
def test_replayed_recording_gets_the_decisions_analyze_computes(tmp_path):
    from models.predictor import load_predictor
    from monitor.acquisition import resolve_stream
    from monitor.inference.client import InferenceClient
    from monitor.inference.supervisor import spawn_worker
    from monitor.pipeline import MonitorPipeline
    from simulators.amplifier import Amplifier

    recording = open_recording(DATA / "myo-gestures" / "12345-2" / "5.txt", preset="myo").slice_seconds(2.0, 6.0)
    model_path = save_untrained_ring_model(tmp_path, recording.layout, model_id="test-live-offline", seed=8)
    offline = analyze_recording(recording, load_predictor(model_path, backend="torch"))
    by_counter = {w.end_counter: w for w in offline.windows}

    source_id = f"test-live-{uuid.uuid4().hex[:8]}"
    amplifier = Amplifier(replay_source(recording), name="test-live", source_id=source_id)
    worker = spawn_worker(model_path=model_path, backend="torch", standby=False)
    # a generous deadline and window queue: this test is about equal decisions, not about a busy machine's speed
    client = InferenceClient(endpoint=worker.endpoint, bed_id=source_id, deadline_s=30.0, max_in_flight=256)
    pipeline = MonitorPipeline(resolve_stream(source_id=source_id, timeout_s=10.0), client=client, publish=False)
    try:
        pipeline.start()
        started = time.monotonic()
        while client.state != "online" and time.monotonic() - started < 30.0:
            time.sleep(0.05)
        assert amplifier.wait_for_consumers(10.0)
        amplifier.run()
        deadline = time.monotonic() + 20.0
        while len(pipeline.state.decisions) < len(offline.windows) and time.monotonic() < deadline:
            time.sleep(0.1)
        live = list(pipeline.state.decisions)
        stats = client.stats
    finally:
        pipeline.stop()
        worker.stop()
    assert len(live) >= 0.95 * len(offline.windows), stats
    for decision in live:
        twin = by_counter[decision.sequence]
        assert decision.label == twin.label
        np.testing.assert_allclose(decision.probabilities, twin.probabilities, atol=1e-5)
