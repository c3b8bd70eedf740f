"""A held voluntary force fluctuates around its target (simulators.force.ForceFluctuation): its size is the
published coefficient of variation of force, its power lies mostly below 0.5 Hz, and the fibre-level needle model's
drive follows it while staying deterministic."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from simulators.force import STEADINESS_CV_MEAN, STEADINESS_CV_SD, ForceFluctuation


def test_fluctuation_has_its_cv_and_most_power_below_half_a_hertz():
    fluctuation = ForceFluctuation(0.04, np.random.default_rng(0))
    fs = 50.0
    times = np.arange(0.0, 2000.0, 1.0 / fs)
    deviation = fluctuation.factor(times) - 1.0
    assert np.mean(deviation) == pytest.approx(0.0, abs=0.003)
    assert np.std(deviation) == pytest.approx(0.04, rel=0.1)
    freqs, psd = signal.welch(deviation, fs=fs, nperseg=int(200 * fs))
    assert psd[freqs < 0.5].sum() / psd.sum() > 0.6 and psd[freqs > 2.5].sum() / psd.sum() < 0.01
    # a function of absolute time: any cut of the time axis gives the same values
    np.testing.assert_array_equal(fluctuation.factor(times[1000:1010]), fluctuation.factor(times)[1000:1010])


def test_subjects_draw_the_published_spread_of_force_steadiness():
    rng = np.random.default_rng(1)
    cvs = np.array([ForceFluctuation.draw(rng).cv for _ in range(4000)])
    assert np.mean(cvs) == pytest.approx(STEADINESS_CV_MEAN, rel=0.06)
    assert np.std(cvs) == pytest.approx(STEADINESS_CV_SD, rel=0.15)


def test_the_needle_fibre_model_drives_its_units_with_the_fluctuating_force():
    from simulators.emg import EmgSimulator, SimulationConfig

    config = SimulationConfig(layout="needle", fs=8192.0, condition="healthy", profile="hold", mvc_percent=20.0,
                              tissue="fibres", seed=2, artifacts=())
    simulator = EmgSimulator(config)
    times = np.linspace(0.0, 5.0, 11)
    force = 0.2 * simulator._steadiness.factor(times)
    assert np.std(force) > 0.002  # varies by a few % of its target
    legacy = EmgSimulator(SimulationConfig(layout="needle", fs=8192.0, profile="hold", seed=2))
    assert legacy._steadiness is None  # every legacy config keeps its samples
