"""Training windows are filtered like the live pipeline, at the mains frequency the user names."""

from __future__ import annotations

import numpy as np

from models.datasets import filter_like_pipeline


def test_training_filter_notches_the_named_mains_frequency():
    fs = 2048.0
    t = np.arange(int(4 * fs)) / fs
    hum = np.column_stack([np.sin(2 * np.pi * 60.0 * t)] * 2) * 100.0
    settled = slice(int(2 * fs), None)

    def rms(values: np.ndarray) -> float:
        return float(np.sqrt(np.mean(np.square(values[settled]))))

    passed = rms(filter_like_pipeline(hum, fs, mains_hz=50.0))  # a 50 Hz notch leaves 60 Hz in the band
    notched = rms(filter_like_pipeline(hum, fs, mains_hz=60.0))
    assert passed > 0.5 * rms(hum)
    assert 20 * np.log10(passed / notched) > 30.0
