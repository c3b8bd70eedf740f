"""Interference-pattern measures of the needle model (models/needle_interference.py): known values on synthetic
windows, the normal cloud, and that a live stretch gets the numbers the whole recording gets. Under a second."""

from __future__ import annotations

import numpy as np
import pytest

from dsp.resample import NEEDLE_FS
from models.needle_features import condition, cut_windows
from models.needle_interference import (
    INTERFERENCE_NAMES,
    CloudLimits,
    cloud_fractions,
    fit_cloud,
    window_interference,
)

HALF_SECOND = int(0.5 * NEEDLE_FS)


def _sine(amplitude_uv: float, hz: float) -> np.ndarray:
    t = np.arange(HALF_SECOND) / NEEDLE_FS
    return amplitude_uv * np.sin(2 * np.pi * hz * t + 0.3)


def test_a_sine_has_two_turns_per_period_of_its_peak_to_peak_amplitude() -> None:
    features, points = window_interference(_sine(300.0, 100.0)[None])
    named = dict(zip(INTERFERENCE_NAMES, features[0], strict=True))
    # 200 turns/s (the last extreme of the window is not yet a confirmed turn), 600 µV between turns
    assert np.expm1(named["ip_log_turns_per_s"]) == pytest.approx(200.0, rel=0.02)
    assert np.expm1(named["ip_log_amplitude_per_turn"]) == pytest.approx(600.0, rel=0.01)
    assert np.expm1(named["ip_log_upper_centile"]) == pytest.approx(600.0, rel=0.01)
    assert np.expm1(named["ip_log_envelope"]) == pytest.approx(600.0, rel=0.01)
    assert named["ip_small_segments_per_ms"] == 0.0  # 600 µV segments are not small
    assert named["ip_activity"] == pytest.approx(100 / 248, abs=0.01)  # a turn in 100 of 248 2-ms bins
    assert points.shape == (1, 5, 3) and np.all(points[0, :, 2] == 1.0)


def test_below_the_turn_step_there_are_no_turns_and_no_cloud_point() -> None:
    features, points = window_interference(_sine(40.0, 100.0)[None])  # 80 µV peak to peak < 100 µV
    named = dict(zip(INTERFERENCE_NAMES, features[0], strict=True))
    assert named["ip_log_turns_per_s"] == 0.0 and named["ip_activity"] == 0.0
    assert np.expm1(named["ip_log_envelope"]) == pytest.approx(80.0, rel=0.02)
    assert np.all(points[..., 2] == 0.0)
    assert np.all(cloud_fractions(points, CloudLimits(0.0, 1.0, -0.1, 0.1)) == 0.0)


def test_the_cloud_flags_large_points_above_and_small_points_below() -> None:
    rng = np.random.default_rng(0)
    turns = rng.uniform(5.0, 7.0, size=(40, 5))
    normal = np.stack([turns, 2.0 + 0.5 * turns + rng.normal(0, 0.1, turns.shape), np.ones_like(turns)], axis=-1)
    limits = fit_cloud([normal])
    assert limits.slope == pytest.approx(0.5, abs=0.05) and limits.lower < 0 < limits.upper
    assert CloudLimits.from_dict(limits.to_dict()) == limits
    odd = normal[:2].copy()
    odd[0, :, 1] += 1.0  # large for its turns: neurogenic side
    odd[1, :, 1] -= 1.0  # small for its turns: myopathic side
    assert cloud_fractions(odd, limits).tolist() == [[1.0, 0.0], [0.0, 1.0]]
    with pytest.raises(ValueError, match="at least 10 epochs"):
        fit_cloud([normal[:1, :1]])


def test_a_live_stretch_gets_the_same_window_measures_as_the_whole_recording() -> None:
    rng = np.random.default_rng(1)
    spikes = np.zeros(int(3 * NEEDLE_FS))
    spikes[rng.integers(0, len(spikes), 400)] = rng.choice([-1.0, 1.0], 400) * rng.uniform(200, 2000, 400)
    signal = np.convolve(spikes, np.hanning(40) * np.sin(np.linspace(0, 3 * np.pi, 40)), mode="same")
    whole, _ = window_interference(cut_windows(condition(signal)))
    live, _ = window_interference(cut_windows(condition(signal[: int(2 * NEEDLE_FS)])))  # the stream so far
    np.testing.assert_array_equal(live, whole[: len(live)])  # causal conditioning, window-local measures
