"""The dashboard's and window's stream line count EMG electrodes apart from the stream's other channels: a 64-electrode
grid replayed with its force channel (`replay --with-force`) read "65 ch" beside "grid, 64 ch". Pure (milliseconds)."""

from __future__ import annotations

import numpy as np

from monitor.acquisition import channel_count_text


def test_other_channels_are_counted_apart_from_the_electrodes() -> None:
    assert channel_count_text(65, np.arange(64)) == "64 EMG + 1 other ch"
    assert channel_count_text(8, np.arange(8)) == "8 ch"
    assert channel_count_text(8, None) == "8 ch"  # a state that does not say which are EMG: all of them
