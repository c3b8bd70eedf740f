"""Electrode faults on a live stream: NaN/Inf bursts, a lifted (flat) electrode, a saturated one and one that is pure
mains are flagged within a second, masked out of inference, and never reach the model or the views as NaN."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest

from tests.players import start_player

FAULTS_AT_S = 2.0
FS = 2048.0


@pytest.mark.slow
def test_faulty_electrodes_are_flagged_within_a_second_and_masked_out_of_inference(bundled_worker):
    from monitor.acquisition import resolve_stream
    from monitor.inference.client import InferenceClient
    from monitor.pipeline import MonitorPipeline

    source_id = f"faults-{uuid.uuid4().hex[:8]}"
    player = start_player(source_id, 6, faults_at=FAULTS_AT_S)
    client = InferenceClient(endpoint=bundled_worker.endpoint, bed_id=source_id, deadline_s=2.0)
    seen: list[tuple[float, int, np.ndarray, tuple[str, ...], bool]] = []
    try:
        pipeline = MonitorPipeline(resolve_stream(source_id=source_id, timeout_s=20), client=client, publish=False)
        pipeline.engine.subscribe(
            lambda results: seen.extend(
                (r.window.last_timestamp, r.window.end_counter, r.usable.copy(), r.quality.reasons,
                 bool(np.isfinite(r.window.data).all()))
                for r in results
            )
        )
        pipeline.start()
        player.communicate(timeout=40)
        time.sleep(1.5)
        pipeline.stop()
    finally:
        client.close()
    raw = pipeline.acquisition.buffer.read_from(0)
    fault_start = raw.timestamps[int(FAULTS_AT_S * FS)]
    assert all(finite for *_, finite in seen), "a window carried NaN/Inf past the filters"
    assert np.isfinite(pipeline.engine.filtered.read_from(0).data).all()

    expected_reason = {1: None, 2: "flat", 3: "saturated", 4: "mains"}
    for channel, reason in expected_reason.items():
        flagged = [(t, reasons) for t, _, usable, reasons, _ in seen if t >= fault_start and not usable[channel]]
        assert flagged, f"channel {channel} was never masked"
        delay = flagged[0][0] - fault_start
        assert delay < 1.0, f"channel {channel} masked only after {delay:.2f} s"
        if reason is not None:
            assert any(reason in reasons[channel] for _, reasons in flagged), (channel, flagged[-1][1][channel])
    healthy = [0, 5, 6, 7]
    late = [usable for t, _, usable, _, _ in seen if t > fault_start + 1.5]
    wrong = [usable for usable in late if not usable[healthy].all() or usable[[2, 3, 4]].any()]
    assert late and not wrong, (len(wrong), len(late), wrong[:3])

    decisions = [d for d in pipeline.state.decisions if d.last_timestamp > fault_start + 1.0]
    assert len(decisions) > 20, "inference must go on with the remaining electrodes"
    assert all(np.isfinite(d.probabilities).all() for d in decisions)
    assert client.stats.get("errors", 0) == 0
    with_attention = [d for d in decisions if d.channel_attention is not None]
    assert with_attention
    # the worker never weighs a masked electrode (the index channel is not sent to the model at all)
    assert all(np.abs(d.channel_attention[[2, 3, 4]]).max() < 1e-6 for d in with_attention)
