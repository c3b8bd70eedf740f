"""The amplifier vanishes and returns: the monitor says so within a second, reconnects by itself, records the gap as
a gap, duplicates nothing, and refuses a stream that returns with another channel count or sampling rate."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest

from tests.players import start_player, wait_until

FS = 2048.0


@pytest.mark.slow
def test_stream_that_vanishes_for_five_seconds_is_reported_and_resumed_without_duplicates():
    from monitor.acquisition import resolve_stream
    from monitor.pipeline import MonitorPipeline

    source_id = f"fault-{uuid.uuid4().hex[:8]}"
    first = start_player(source_id, 3.0, fs=FS)
    pipeline = MonitorPipeline(resolve_stream(source_id=source_id, timeout_s=20))
    pipeline.start()
    try:
        sent_first = int(first.communicate(timeout=30)[0].split()[-1])
        noticed_after = wait_until(lambda: pipeline.acquisition.signal_lost, 3.0)
        assert noticed_after is not None and noticed_after < 1.0
        assert wait_until(lambda: any(text == "signal lost" for _, text in pipeline.state.events), 1.0) is not None
        time.sleep(5.0 - noticed_after)
        # the amplifier returns with the same source_id (liblsl reconnects the inlet by itself; the player starts once
        # it has), its index continuing as if it had never stopped counting
        gap_samples = int(5.5 * FS)
        second = start_player(source_id, 2.0, fs=FS, start_index=sent_first + gap_samples)
        sent_second = int(second.communicate(timeout=30)[0].split()[-1])
        assert wait_until(lambda: pipeline.acquisition.buffer.total_written >= sent_first + sent_second, 30.0)
        assert wait_until(lambda: pipeline.engine.stats.gaps == 1, 5.0) is not None
        time.sleep(0.3)
    finally:
        pipeline.stop()
    raw = pipeline.acquisition.buffer.read_from(0)
    index = raw.data[:, -1].astype(np.int64)
    assert len(index) == sent_first + sent_second  # nothing duplicated, nothing lost on either side
    np.testing.assert_array_equal(index[:sent_first], np.arange(sent_first))
    np.testing.assert_array_equal(index[sent_first:], np.arange(sent_second) + sent_first + gap_samples)
    jump = raw.timestamps[sent_first] - raw.timestamps[sent_first - 1]
    assert 5.0 < jump < 15.0  # absent 5 s, plus the time liblsl takes to find the returned outlet
    counter, gap_s, _ = pipeline.engine.stats.last_gap
    assert counter == sent_first and gap_s == pytest.approx(jump)
    restored = [text for _, text in pipeline.state.events if text.startswith("signal restored")]
    assert len(restored) == 1 and f"at sample {sent_first}" in restored[0]
    assert not pipeline.acquisition.signal_lost or pipeline.acquisition.buffer.total_written > sent_first


@pytest.mark.slow
@pytest.mark.parametrize(("returning", "expected"), [
    pytest.param({"layout": "grid4x4", "fs": FS}, "returned with 17 channels at 2048 Hz (was 9 at 2048 Hz)",
                 id="channel-count"),
    # same channel count, so liblsl's own recovery (which does not compare rates) would accept it: the samples would
    # then be read as 2048 Hz ones, the garbage this must refuse
    pytest.param({"layout": "ring8", "fs": 1000.0}, "returned with 9 channels at 1000 Hz (was 9 at 2048 Hz)",
                 id="sampling-rate"),
])
def test_stream_returning_with_another_format_is_refused_with_a_message(returning: dict, expected: str):
    from monitor.acquisition import resolve_stream
    from monitor.pipeline import MonitorPipeline

    source_id = f"fault-{uuid.uuid4().hex[:8]}"
    first = start_player(source_id, 1.5, fs=FS)
    pipeline = MonitorPipeline(resolve_stream(source_id=source_id, timeout_s=20), publish=False)
    pipeline.start()
    try:
        first.communicate(timeout=30)
        second = start_player(source_id, 30.0, **returning)
        assert wait_until(lambda: pipeline.acquisition.incompatible is not None, 30.0) is not None
        # refused, not rebuilt: the message ends acquisition by itself, while the new stream is still streaming
        pipeline.acquisition.join(timeout=5.0)
        assert not pipeline.acquisition.is_alive()
        second.kill()
        second.wait()
    finally:
        pipeline.stop()
    message = pipeline.acquisition.incompatible
    assert expected in message and "\n" not in message
    assert pipeline.acquisition.buffer.total_written == int(1.5 * FS)  # nothing of the new stream got in
    index = pipeline.acquisition.buffer.read_from(0).data[:, -1].astype(np.int64)
    np.testing.assert_array_equal(index, np.arange(int(1.5 * FS)))  # only the first stream's samples, in order
