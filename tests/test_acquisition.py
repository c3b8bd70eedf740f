"""The acquisition thread on streams of other sample formats than float32: liblsl converts every numeric format, and
each sample reaches the ring buffer once, in order, with its value (the pull goes straight to liblsl, not pylsl)."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest

from tests.players import wait_until

FS = 1000.0


@pytest.mark.parametrize("channel_format", ["double64", "int16", "int32"])
def test_every_sample_of_a_non_float32_stream_arrives_once_with_its_value(channel_format: str) -> None:
    import pylsl

    from monitor.acquisition import Acquisition, resolve_stream

    source_id = f"acq-{channel_format}-{uuid.uuid4().hex[:8]}"
    n_channels, chunk, chunks = 3, 25, 40
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo("acq-test", "EMG", n_channels, FS, channel_format, source_id))
    acquisition = Acquisition(resolve_stream(source_id=source_id, timeout_s=10.0))
    acquisition.start()
    try:
        assert wait_until(lambda: outlet.have_consumers(), 10.0) is not None
        dtype = {"double64": np.float64, "int16": np.int16, "int32": np.int32}[channel_format]
        index = np.arange(chunk * chunks)
        # the index in channel 0, its negative in 1 (a sign lost in a conversion shows), a large value in 2
        values = np.stack([index, -index, index + 30_000 if channel_format != "int16" else index + 20_000], axis=1)
        for start in range(0, len(index), chunk):
            outlet.push_chunk(values[start:start + chunk].astype(dtype))
            time.sleep(chunk / FS)
        assert wait_until(lambda: acquisition.buffer.total_written >= len(index), 10.0) is not None
    finally:
        acquisition.stop()
        acquisition.join(timeout=5)
    block = acquisition.buffer.read_from(0)
    assert acquisition.buffer.total_written == len(index)
    np.testing.assert_array_equal(block.data, values.astype(np.float32))
    assert (np.diff(block.timestamps) > 0).all()
