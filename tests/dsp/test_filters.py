"""Causal filters: attenuation measured by FFT on sinusoids, chunking invariance, start-up, NaN handling."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from dsp.filters import (
    FilterChain,
    bandpass,
    default_chain,
    detect_mains,
    highpass,
    notch,
    notch_frequencies,
)

FS = 2048.0


def sinusoid(frequency_hz: float, seconds: float = 4.0, fs: float = FS, amplitude: float = 100.0) -> np.ndarray:
    t = np.arange(int(seconds * fs)) / fs
    return (amplitude * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)[:, np.newaxis]


def amplitude_at(x: np.ndarray, frequency_hz: float, fs: float = FS) -> float:
    """Amplitude of the ``frequency_hz`` component of the last two seconds (after any settling), by FFT."""
    tail = x[-int(2 * fs) :, 0].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(tail * np.hanning(len(tail))))
    frequencies = np.fft.rfftfreq(len(tail), 1 / fs)
    return float(spectrum[np.argmin(np.abs(frequencies - frequency_hz))])


def gain_db(filter_, frequency_hz: float, fs: float = FS) -> float:
    x = sinusoid(frequency_hz, fs=fs)
    y = filter_.process(x)
    return 20 * np.log10(amplitude_at(y, frequency_hz, fs) / amplitude_at(x, frequency_hz, fs))


@pytest.mark.parametrize(
    ("order", "frequency", "low_db", "high_db"),
    [
        (4, 5.0, -300, -40),
        (4, 100.0, -1, 1),
        (4, 600.0, -20, -14),  # a 4th-order edge at 450 Hz gives only ~17 dB a third of an octave above it
        (4, 700.0, -300, -25),
        (6, 600.0, -300, -20),
        (6, 100.0, -1, 1),
    ],
)
def test_bandpass_attenuation_on_sinusoids(order: int, frequency: float, low_db: float, high_db: float) -> None:
    measured = gain_db(bandpass(FS, 20.0, 450.0, n_channels=1, order=order), frequency)
    assert low_db <= measured <= high_db


def test_highpass_passes_high_and_stops_low() -> None:
    assert gain_db(highpass(FS, 20.0, 1), 2.0) < -40
    assert abs(gain_db(highpass(FS, 20.0, 1), 800.0)) < 0.5


def test_notch_removes_mains_and_harmonics_but_keeps_neighbours() -> None:
    assert gain_db(notch(FS, 50.0, 1), 50.0) < -30
    assert gain_db(notch(FS, 50.0, 1), 150.0) < -30
    assert abs(gain_db(notch(FS, 50.0, 1), 80.0)) < 1
    assert gain_db(notch(FS, 60.0, 1), 60.0) < -30


def test_notch_frequencies_stay_below_nyquist() -> None:
    assert notch_frequencies(200.0, 50.0) == [50.0]  # 100 Hz is Nyquist, not below it
    assert notch_frequencies(2048.0, 60.0)[-1] == 1020.0
    assert notch_frequencies(2048.0, 50.0, max_hz=450.0) == [50.0 * k for k in range(1, 10)]
    assert notch_frequencies(2048.0, 50.0, harmonics=False) == [50.0]


def test_default_chain_surface_at_2048_hz() -> None:
    chain = default_chain(FS, 1, mode="surface", mains_hz=50.0)
    for frequency, limit in [(5.0, -20), (50.0, -30), (250.0, -30), (700.0, -20)]:
        x = sinusoid(frequency)
        y, _ = chain.process(x)
        chain.reset()
        assert 20 * np.log10(amplitude_at(y, frequency) / amplitude_at(x, frequency)) < limit, frequency
    y, _ = chain.process(sinusoid(120.0))
    assert abs(20 * np.log10(amplitude_at(y, 120.0) / amplitude_at(sinusoid(120.0), 120.0))) < 1


def test_default_chain_clips_band_below_nyquist_for_myo() -> None:
    chain = default_chain(200.0, 8, mode="surface", mains_hz=50.0)
    b, a = signal.sos2tf(chain.sos)
    frequencies, response = signal.freqz(b, a, worN=[70.0, 50.0, 10.0], fs=200.0)
    gains = 20 * np.log10(np.abs(response))
    assert abs(gains[0]) < 1 and gains[1] < -30 and gains[2] < -20


def test_needle_chain_is_highpass_only() -> None:
    chain = default_chain(4000.0, 1, mode="needle", mains_hz=None)
    x = sinusoid(1500.0, fs=4000.0)
    y, _ = chain.process(x)
    assert abs(20 * np.log10(amplitude_at(y, 1500.0, 4000.0) / amplitude_at(x, 1500.0, 4000.0))) < 0.5


def test_chunked_equals_whole_signal_sosfilt() -> None:
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((5000, 6)) * 50 + 300).astype(np.float32)
    chain = default_chain(FS, 6, mains_hz=50.0)
    zi = signal.sosfilt_zi(chain.sos)[:, :, np.newaxis] * x[0].astype(np.float64)[np.newaxis, np.newaxis, :]
    expected, _ = signal.sosfilt(chain.sos, x.astype(np.float64), axis=0, zi=zi)

    boundaries = np.sort(rng.choice(np.arange(1, len(x)), size=40, replace=False))
    pieces = [chain.process(part)[0] for part in np.split(x, boundaries)]
    chunked = np.concatenate(pieces)

    assert chunked.shape == x.shape and chunked.dtype == np.float32
    np.testing.assert_allclose(chunked, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


def test_no_start_up_transient_on_dc_offset() -> None:
    # A channel sitting at +2 mV offset from the first sample: a zero-state band-pass would ring for hundreds
    # of microvolts; steady-state initialisation gives (almost) nothing.
    x = np.full((2048, 2), 2000.0, dtype=np.float32)
    x[:, 1] = -500.0
    y, _ = default_chain(FS, 2, mains_hz=50.0).process(x)
    assert np.abs(y).max() < 1e-3
    zero_state, _ = signal.sosfilt(default_chain(FS, 2).sos, x.astype(np.float64), axis=0, zi=np.zeros((13, 2, 2)))
    assert np.abs(zero_state).max() > 100  # the transient the initialisation avoids


def test_nan_burst_leaves_no_nan_and_is_flagged() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4096, 3)).astype(np.float32) * 20
    bad = x.copy()
    bad[1000:1100, 1] = np.nan
    bad[1500, 2] = np.inf
    chain = default_chain(FS, 3)
    outputs, masks = zip(*(chain.process(part) for part in np.split(bad, [512, 1050, 2000])), strict=True)
    y, mask = np.concatenate(outputs), np.concatenate(masks)

    assert np.isfinite(y).all()
    assert mask.sum() == 101 and mask[1000:1100, 1].all() and mask[1500, 2]
    np.testing.assert_array_equal(chain.nonfinite_counts, [0, 100, 1])
    # channel 0 untouched: identical to filtering the clean signal
    clean, _ = default_chain(FS, 3).process(x)
    np.testing.assert_allclose(y[:, 0], clean[:, 0], atol=1e-4)
    # held value = last finite sample before the burst, so the effect decays instead of persisting
    assert np.abs(y[-500:, 1]).max() < 5 * np.abs(clean[:, 1]).max()


def test_nan_at_very_start_uses_first_finite_value() -> None:
    x = np.full((2048, 1), 1000.0, dtype=np.float32)
    x[:10] = np.nan
    y, mask = default_chain(FS, 1).process(x)
    assert mask[:10].all() and np.abs(y).max() < 1e-3


def test_chain_rejects_wrong_shapes_and_mismatched_filters() -> None:
    with pytest.raises(ValueError, match="channel count"):
        FilterChain([bandpass(FS, 20, 450, 2), notch(FS, 50, 3)])
    with pytest.raises(ValueError, match="chunk"):
        default_chain(FS, 4).process(np.zeros((10, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="Nyquist"):
        bandpass(200.0, 20.0, 120.0, 1)
    with pytest.raises(ValueError, match="mode"):
        default_chain(FS, 1, mode="intramuscular")


@pytest.mark.parametrize("mains", [50.0, 60.0])
def test_detect_mains_finds_the_injected_line(mains: float) -> None:
    rng = np.random.default_rng(3)
    noise = rng.standard_normal((int(4 * FS), 4)) * 20
    t = np.arange(len(noise)) / FS
    x = noise + 30 * np.sin(2 * np.pi * mains * t)[:, np.newaxis]
    assert detect_mains(x, FS) == mains


def test_detect_mains_returns_none_without_interference() -> None:
    rng = np.random.default_rng(4)
    assert detect_mains(rng.standard_normal((int(4 * FS), 4)) * 20, FS) is None
