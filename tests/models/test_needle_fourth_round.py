"""The fourth round's candidate features (models/needle_fourth_round.py) on synthetic signals: which high bands a
rate carries, the high-band levels of white and low-passed noise, and the shape of known spikes. Under a second."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import butter, sosfiltfilt

from dsp.resample import NEEDLE_FS
from models.needle_features import cut_windows
from models.needle_fourth_round import (
    SPIKE_MEASURES,
    SPIKE_NAMES,
    band_carried,
    high_band_windows,
    spike_shapes,
    spike_summary,
)


def test_a_band_is_carried_only_below_nine_tenths_of_the_source_nyquist() -> None:
    assert band_carried(32768.0).tolist() == [True, True]
    assert band_carried(12000.0).tolist() == [True, False]  # Nyquist 6 kHz: 4.8 kHz <= 5.4, 6.4 > 5.4
    assert band_carried(8000.0).tolist() == [False, False]
    assert band_carried(4000.0).tolist() == [False, False]


def test_white_noise_is_flat_and_low_passed_noise_has_no_high_band() -> None:
    rng = np.random.default_rng(0)
    white = rng.normal(0, 50, int(2 * NEEDLE_FS))
    flat = high_band_windows(cut_windows(white))
    assert np.abs(flat).max() < 0.3  # the same PSD level in every band
    low = sosfiltfilt(butter(8, 2500, fs=NEEDLE_FS, output="sos"), white)
    assert high_band_windows(cut_windows(low)).max() < -5  # nothing above 3.2 kHz left
    # relative levels: a gain changes nothing
    np.testing.assert_allclose(high_band_windows(cut_windows(10 * white)), flat, atol=1e-4)


def _spike_train(shape: np.ndarray, every_s: float = 0.05, seconds: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 2.0, int(seconds * NEEDLE_FS))
    for start in np.arange(int(0.01 * NEEDLE_FS), len(x) - len(shape) - int(0.01 * NEEDLE_FS),
                           int(every_s * NEEDLE_FS)):
        x[start:start + len(shape)] += shape
    return x


def test_a_biphasic_spike_has_two_phases_and_a_short_energy_span() -> None:
    t = np.arange(int(0.004 * NEEDLE_FS)) / NEEDLE_FS
    biphasic = 500.0 * np.sin(2 * np.pi * t / 0.004)  # one period of 4 ms: two phases
    shapes = spike_shapes(_spike_train(biphasic))
    # 20 spikes; after the 300 Hz detection high-pass the two phases' peaks lie 3.5 ms apart (more than the 3 ms
    # separation), so each spike is found twice, and both segments read the same shape
    assert len(shapes) == 40
    named = dict(zip(SPIKE_MEASURES, np.median(shapes, axis=0), strict=True))
    assert named["phases"] == 2
    assert 2.0 < named["energy_duration_ms"] < 4.0
    assert np.exp(named["log_peak_to_peak"]) == pytest.approx(1000.0, rel=0.05)


def test_a_polyphasic_spike_reads_polyphasic() -> None:
    t = np.arange(int(0.006 * NEEDLE_FS)) / NEEDLE_FS
    polyphasic = 400.0 * np.sin(2 * np.pi * t / 0.001) * np.hanning(len(t))  # six periods: 12 phases
    summary = dict(zip(SPIKE_NAMES, spike_summary(_spike_train(polyphasic)), strict=True))
    assert summary["spike_polyphasic_share"] == 1.0
    assert summary["spike_phases_p50"] > 4
    assert summary["spike_rms_frequency_khz_p50"] == pytest.approx(1.0, rel=0.2)


def test_too_few_spikes_give_missing_shapes_but_a_rate() -> None:
    quiet = np.random.default_rng(2).normal(0, 2.0, int(NEEDLE_FS))
    summary = spike_summary(quiet)
    assert np.isnan(summary[:-1]).all() and np.isfinite(summary[-1])
