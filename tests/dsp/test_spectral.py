"""dsp.spectral.welch is scipy.signal.welch (its defaults) to float rounding, on any axis and in float32 and float64."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import signal

from dsp.spectral import welch


@pytest.mark.parametrize(
    ("shape", "axis", "nperseg"),
    [((4096, 8), 0, 512), ((3, 5000), 1, 1024), ((2, 3, 2047), -1, 255), ((1000,), 0, 1000), ((700, 2), 0, 64)],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_welch_equals_scipys(shape, axis, nperseg, dtype):
    rng = np.random.default_rng(sum(shape) + nperseg)
    x = (rng.normal(0.0, 50.0, shape) + 30.0).astype(dtype)  # an offset: each segment's mean must go
    frequencies, psd = welch(x, 2048.0, nperseg, axis=axis)
    expected_frequencies, expected = signal.welch(x, 2048.0, nperseg=nperseg, axis=axis)
    assert psd.dtype == expected.dtype and psd.shape == expected.shape
    np.testing.assert_allclose(frequencies, expected_frequencies)
    tolerance = 2e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(psd, expected, rtol=0, atol=tolerance * float(np.max(expected)))


def test_a_segment_longer_than_the_signal_is_cut_to_it_as_scipy_does():
    x = np.random.default_rng(3).normal(size=(300, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # scipy says it shortened nperseg
        expected_frequencies, expected = signal.welch(x, 1000.0, nperseg=512, axis=0)
    frequencies, psd = welch(x, 1000.0, 512, axis=0)
    np.testing.assert_allclose(frequencies, expected_frequencies)
    np.testing.assert_allclose(psd, expected, rtol=1e-10)


def test_a_sine_lies_at_its_frequency_with_its_power():
    fs, hz, amplitude = 4096.0, 256.0, 3.0
    t = np.arange(int(4 * fs)) / fs
    frequencies, psd = welch(amplitude * np.sin(2 * np.pi * hz * t), fs, 1024)
    assert frequencies[np.argmax(psd)] == hz
    assert np.sum(psd) * (frequencies[1] - frequencies[0]) == pytest.approx(amplitude**2 / 2, rel=1e-3)


def test_the_adaptive_cancellers_inband_power_is_what_scipys_welch_gives():
    from dsp.adaptive import drifting_mains, inband_power_db

    fs = 2048.0
    clean = np.random.default_rng(5).normal(0.0, 30.0, (int(6 * fs), 4))
    hum, _ = drifting_mains(len(clean), fs, 4)
    frequencies, px = signal.welch(clean + 0.2 * hum, fs, nperseg=int(fs), axis=0)
    _, pr = signal.welch(clean, fs, nperseg=int(fs), axis=0)
    band = (frequencies >= 20.0) & (frequencies <= 450.0)
    expected = 10.0 * np.log10(px[band].sum() / pr[band].sum())
    assert inband_power_db(clean + 0.2 * hum, clean, fs) == pytest.approx(expected, abs=1e-9)
