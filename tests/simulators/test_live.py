"""Live: `neurofusion simulate` in its own process publishes a real LSL stream on loopback; a real inlet checks it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
FS = 2048.0
DURATION_S = 5.0


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_stream_delivers_every_sample_evenly_stamped_with_aligned_markers():
    import pylsl

    source_id = f"nf-test-{uuid.uuid4().hex[:12]}"
    command = [sys.executable, "-m", "monitor.cli", "simulate", "--layout", "ring8", "--fs", str(FS)]
    command += ["--duration", str(DURATION_S), "--chunk", "32", "--source-id", source_id, "--name", source_id]
    command += ["--profile", "gestures", "--period", "1", "--wait", "30"]
    process = subprocess.Popen(command, cwd=REPO, env=dict(os.environ), stderr=subprocess.PIPE, text=True)
    try:
        data_info = pylsl.resolve_byprop("source_id", source_id, 1, 30.0)
        marker_info = pylsl.resolve_byprop("source_id", f"{source_id}-markers", 1, 30.0)
        assert data_info and marker_info, "simulated streams not found on loopback"
        markers_in = pylsl.StreamInlet(marker_info[0])
        markers_in.open_stream(10.0)  # subscribe to markers first: the data consumer starts the stream
        data_in = pylsl.StreamInlet(data_info[0], max_buflen=30)
        description = data_in.info(10.0)
        data_in.open_stream(10.0)

        chunks, stamps, late = [], [], []
        nominal = int(DURATION_S * FS)
        give_up = pylsl.local_clock() + 10 * DURATION_S
        while len(stamps) < nominal and process.poll() is None and pylsl.local_clock() < give_up:
            chunk, timestamps = data_in.pull_chunk(timeout=0.5)
            if timestamps:
                late.append(pylsl.local_clock() - timestamps[-1])
                chunks.append(np.asarray(chunk, dtype=np.float32))
                stamps.extend(timestamps)
        marker_texts, marker_stamps = markers_in.pull_chunk(timeout=1.0)
        # hang up before the outlet closes: an inlet left behind retries the dead stream from liblsl's threads
        data_in.close_stream()
        markers_in.close_stream()
        del data_in, markers_in
        _, errors = process.communicate(timeout=30)
        assert process.returncode == 0, errors
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    data, stamps = np.concatenate(chunks), np.asarray(stamps)
    assert data.shape[1] == 8 and abs(data.shape[0] - nominal) <= 0.005 * nominal
    np.testing.assert_allclose(np.diff(stamps), 1.0 / FS, atol=2e-6)  # evenly spaced, no gaps
    # paced, not dumped: no chunk arrived before its last sample would have been digitised
    assert min(late) > -0.002

    assert description.channel_count() == 8 and description.nominal_srate() == FS
    channel = description.desc().child("channels").child("channel")
    assert channel.child_value("label") == "E01" and channel.child_value("unit") == "microvolts"
    assert json.loads(description.desc().child_value("layout"))["kind"] == "ring"

    truths = [json.loads(text[0]) for text in marker_texts]
    assert abs(len(truths) - DURATION_S * 4) <= 2
    for truth, stamp in zip(truths, marker_stamps, strict=True):
        assert stamp == pytest.approx(stamps[truth["sample"]], abs=1e-6)  # aligned to the data clock
    gestures = {truth["gesture"] for truth in truths}
    assert {"rest", "wrist_flexion", "wrist_extension"} <= gestures
