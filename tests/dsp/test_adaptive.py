"""Adaptive mains canceller and baseline remover on simulated EMG with a drifting 50.3 Hz hum and baseline steps."""

from __future__ import annotations

import numpy as np
import pytest

from dsp.adaptive import (
    AdaptiveBaseline,
    AdaptiveMainsCanceller,
    drifting_mains,
    inband_power_db,
    mains_canceller_split,
    mains_removal_figures,
)
from dsp.filters import notch
from simulators.emg import EmgSimulator, SimulationConfig

FS = 2048.0


@pytest.fixture(scope="module")
def clean_emg() -> np.ndarray:
    """16 s of a 30 % MVC hold on an 8-electrode ring, amplifier noise only (no mains, no wander)."""
    config = SimulationConfig(layout="ring8", fs=FS, profile="hold", mvc_percent=30.0, artifacts=("noise",),
                              mains_hz=0.0, seed=3)  # fmt: skip
    return EmgSimulator(config).generate(16.0).astype(np.float64)


def test_canceller_removes_drifting_hum_30_db_beyond_its_inband_distortion(clean_emg):
    hum, frequency = drifting_mains(len(clean_emg), FS, clean_emg.shape[1], 50.25, 50.35, seed=1)
    output, clean_part, hum_part = mains_canceller_split(clean_emg, hum, FS)
    np.testing.assert_allclose(clean_part + hum_part, output, atol=1e-2)  # the split really decomposes the output
    adaptive = mains_removal_figures(clean_emg, hum, clean_part, hum_part, FS)
    fixed = notch(FS, 50.0, 8, max_hz=450.0)
    fixed_clean = fixed.process(clean_emg)
    fixed.reset()
    fixed_figures = mains_removal_figures(clean_emg, hum, fixed_clean, fixed.process(hum), FS)

    assert adaptive["margin_db"] >= 30.0, adaptive
    assert abs(adaptive["inband_change_db"]) < 0.5
    # the fixed notch at 50 Hz keeps little depth 0.3 Hz away; the canceller beats it by far
    assert fixed_figures["hum_reduction_db"] < 15.0
    assert adaptive["hum_reduction_db"] > fixed_figures["hum_reduction_db"] + 15.0


def test_frequency_estimate_follows_the_drift(clean_emg):
    hum, frequency = drifting_mains(len(clean_emg), FS, clean_emg.shape[1], 50.2, 50.4, seed=2)
    canceller = AdaptiveMainsCanceller(FS, 8, record_frequency=True)
    canceller.process(clean_emg + hum)
    used = np.repeat(canceller.frequency_log, canceller._block)
    settled = slice(int(3 * FS), len(used))
    error = used[settled] - frequency[: len(used)][settled]
    assert np.sqrt(np.mean(error**2)) < 0.05
    assert canceller.frequency_hz == pytest.approx(frequency[-1], abs=0.05)


def test_without_hum_the_frequency_stays_put_and_emg_passes(clean_emg):
    canceller = AdaptiveMainsCanceller(FS, 8)
    out = canceller.process(clean_emg)
    assert abs(canceller.frequency_hz - 50.0) <= 1.0
    skip = int(3 * FS)
    # five 4 Hz-wide notches take less EMG power than the fixed chain's nine Q-30 notches (-0.5 dB)
    assert -0.45 < inband_power_db(out[skip:], clean_emg[skip:], FS) < 0.0


@pytest.mark.parametrize("make", [lambda: AdaptiveMainsCanceller(FS, 3), lambda: AdaptiveBaseline(FS, 3)])
def test_chunking_never_changes_the_output(make):
    rng = np.random.default_rng(5)
    t = np.arange(int(5 * FS)) / FS
    x = rng.normal(0, 50, (len(t), 3)) + 80 * np.sin(2 * np.pi * 50.2 * t)[:, None]
    x[int(2.5 * FS) :, 1] += 400.0
    whole = make().process(x)
    chunked_filter = make()
    cuts = np.sort(rng.choice(np.arange(1, len(x)), 300, replace=False))
    chunked = np.concatenate([chunked_filter.process(part) for part in np.split(x, cuts)])
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-3)


def test_reset_starts_over():
    x = np.random.default_rng(0).normal(0, 20, (4096, 2))
    canceller = AdaptiveMainsCanceller(FS, 2)
    first = canceller.process(x)
    canceller.reset()
    np.testing.assert_array_equal(canceller.process(x), first)


def test_wrong_shapes_and_settings_are_refused():
    with pytest.raises(ValueError, match="chunk"):
        AdaptiveMainsCanceller(FS, 4).process(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="below"):
        AdaptiveMainsCanceller(200.0, 4, mains_hz=95.0)
    with pytest.raises(ValueError):
        AdaptiveBaseline(FS, 4, slow_s=0.01, fast_s=0.1)


def test_myo_rate_keeps_only_harmonics_below_nyquist():
    canceller = AdaptiveMainsCanceller(200.0, 8)
    assert canceller.harmonics == (1,)


def test_baseline_step_is_followed_within_a_tenth_of_a_second(clean_emg):
    emg = clean_emg[: int(6 * FS), :2]
    x = emg.copy()
    step_at = int(3 * FS)
    x[step_at:, 0] += 1000.0  # an electrode pop: the offset jumps by 1 mV on channel 0
    out = AdaptiveBaseline(FS, 2).process(x)
    after = slice(step_at + int(0.1 * FS), step_at + int(0.6 * FS))
    assert abs(np.mean(out[after, 0])) < 0.05 * 1000.0
    # the slow tracker alone (no step detection) would still carry most of the step after 0.1 s
    slow = AdaptiveBaseline(FS, 2, jump_factor=1e9).process(x)
    assert abs(np.mean(slow[after, 0])) > 0.3 * 1000.0
    # on the untouched channel the EMG passes: less than 5 % of its power is removed
    keep = slice(int(1 * FS), None)
    assert np.sum((out[keep, 1] - emg[keep, 1]) ** 2) < 0.05 * np.sum(emg[keep, 1] ** 2)


def test_baseline_removes_slow_wander():
    t = np.arange(int(20 * FS)) / FS
    rng = np.random.default_rng(1)
    emg = rng.normal(0, 40, (len(t), 1))
    wander = 300 * np.sin(2 * np.pi * 0.05 * t)[:, None]
    out = AdaptiveBaseline(FS, 1).process(emg + wander)
    settled = slice(int(2 * FS), None)
    assert np.std(out[settled] - emg[settled]) < 0.1 * np.std(wander)


@pytest.mark.parametrize("make", [lambda: AdaptiveMainsCanceller(FS, 2), lambda: AdaptiveBaseline(FS, 2)])
def test_dropped_samples_stay_marked_and_never_poison_the_state(make):
    rng = np.random.default_rng(8)
    t = np.arange(int(4 * FS)) / FS
    x = rng.normal(0, 30, (len(t), 2)) + 60 * np.sin(2 * np.pi * 50.0 * t)[:, None]
    holed = x.copy()
    holed[3000:3040, 0] = np.nan
    holed[5000, 1] = np.inf
    out = make().process(holed)
    np.testing.assert_array_equal(~np.isfinite(out), ~np.isfinite(holed))
    reference = make().process(x)
    # a second after the gap the output is finite and close to the uninterrupted run again
    late = slice(int(2.5 * FS), None)
    assert np.isfinite(out[late]).all()
    assert np.sqrt(np.mean((out[late] - reference[late]) ** 2)) < 0.1 * np.std(reference[late])


def test_preprocessor_chains_the_chosen_stages():
    from dsp.adaptive import AdaptivePreprocessor

    x = np.random.default_rng(9).normal(0, 20, (4096, 3))
    both = AdaptivePreprocessor(FS, 3, mains_hz=50.0, baseline=True)
    assert [type(s).__name__ for s in both.stages] == ["AdaptiveBaseline", "AdaptiveMainsCanceller"]
    expected = AdaptiveMainsCanceller(FS, 3).process(AdaptiveBaseline(FS, 3).process(x))
    np.testing.assert_allclose(both.process(x), expected, rtol=1e-6, atol=1e-4)
    assert AdaptivePreprocessor(FS, 3, mains_hz=None).stages == []
