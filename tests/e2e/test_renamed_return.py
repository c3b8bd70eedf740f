"""A stream back under its source_id with another name: liblsl never reconnects to it and says nothing, so without
the monitor's own lookup by source_id the user would see "signal lost" for ever. It is refused in one line naming
what changed, and the buffer keeps exactly the first stream's samples.

Real LSL outlets on loopback (tests/players.py) whose last channel carries each sample's index; real lookups.
"""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest

from tests.players import start_player, wait_until

FS = 2048.0


@pytest.mark.slow
@pytest.mark.timeout(30)
def test_stream_back_under_its_source_id_with_another_name_is_refused_in_one_line():
    from monitor.acquisition import Acquisition, resolve_stream

    source_id = f"renamed-{uuid.uuid4().hex[:8]}"
    first = start_player(source_id, 0.5, fs=FS)
    acquisition = Acquisition(resolve_stream(source_id=source_id, timeout_s=10), buffer_seconds=15.0)
    acquisition.start()
    second = None
    try:
        sent_first = int(first.communicate(timeout=15)[0].split()[-1])
        assert wait_until(lambda: acquisition.buffer.total_written == sent_first, 5.0) is not None
        assert wait_until(lambda: acquisition.signal_lost, 5.0) is not None
        second = start_player(source_id, 30.0, fs=FS, name="renamed-player", start_index=sent_first)
        returned_at = time.monotonic()
        assert wait_until(lambda: acquisition.incompatible is not None, 8.0) is not None, "never reported"
        reported_after_s = time.monotonic() - returned_at
        acquisition.join(timeout=5.0)
        assert not acquisition.is_alive()  # refused: acquisition ended by itself
    finally:
        acquisition.stop()
        if second is not None:
            second.kill()
            second.wait()
    message = acquisition.incompatible
    assert message == (
        "stream 'test-player' returned as 'renamed-player' (EMG, float32, 9 ch at 2048 Hz), "
        "was 'test-player' (EMG, float32, 9 ch at 2048 Hz); restart the monitor to accept it"
    )
    assert reported_after_s < 8.0
    index = acquisition.buffer.read_from(0).data[:, -1].astype(np.int64)
    np.testing.assert_array_equal(index, np.arange(sent_first))  # the first stream's samples, only and all
