"""Interference pattern (turns-amplitude, envelope) and recruitment: known signals, the simulator, real HD-EMG."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from dsp.interference import analyse_interference, recruitment
from dsp.mup import MotorUnit, analysis_signal
from dsp.mup_reading import analyse_needle
from simulators.emg import EmgSimulator, SimulationConfig
from tests.conftest import SHARED_DATA

FS = 10_000.0
HDEMG = SHARED_DATA / "hdemg-vastus-lateralis" / "otb_testfile.mat"


def test_turns_amplitude_and_envelope_of_a_sine():
    t = np.arange(int(2.0 * FS)) / FS
    pattern = analyse_interference(200.0 * np.sin(2 * np.pi * 100.0 * t), FS)
    assert pattern.turns_per_s.size == 20  # 100 ms epochs
    # 200 turns/s (two extremes per cycle), 400 µV between consecutive turns, one full cycle per 10 ms sub-window
    assert np.all(np.abs(pattern.turns_per_s - 200.0) <= 10.0)
    assert pattern.median_amplitude_uv == pytest.approx(400.0, rel=0.01)
    assert pattern.median_envelope_uv == pytest.approx(400.0, rel=0.01)
    assert pattern.envelope_turns_ratio == pytest.approx(2.0, rel=0.06)


def test_small_activity_makes_no_turns():
    t = np.arange(int(1.0 * FS)) / FS
    pattern = analyse_interference(40.0 * np.sin(2 * np.pi * 100.0 * t), FS)
    assert pattern.median_turns_per_s == 0.0
    assert np.isnan(pattern.envelope_turns_ratio)
    assert pattern.to_dict()["envelope_turns_ratio"] is None
    assert pattern.to_dict(with_cloud=True)["cloud"][0] == [0.0, None]


@pytest.mark.parametrize("seed", [0, 1])
def test_cloud_orders_myopathy_healthy_neuropathy_at_stronger_effort(seed):
    patterns = {}
    for condition in ("healthy", "myopathy", "neuropathy"):
        config = SimulationConfig(
            layout="needle", fs=FS, condition=condition, profile="hold", mvc_percent=30.0, seed=seed, fatigue_rate=0.0
        )
        data = EmgSimulator(config).generate(2.0)
        patterns[condition] = analyse_interference(analysis_signal(data, FS)[:, 0], FS)
    ratio = {name: p.envelope_turns_ratio for name, p in patterns.items()}
    amplitude = {name: p.median_amplitude_uv for name, p in patterns.items()}
    # many small turns in myopathy, few large ones in neuropathy
    assert ratio["myopathy"] < ratio["healthy"] < ratio["neuropathy"]
    assert amplitude["myopathy"] < amplitude["healthy"] < amplitude["neuropathy"]


def _unit(rate_hz: float, start_s: float, fs: float = 1000.0, duration_s: float = 5.0) -> MotorUnit:
    discharges = np.arange(start_s, duration_s, 1.0 / rate_hz)
    samples = np.round(discharges * fs).astype(np.int64)
    return MotorUnit(0, fs, np.zeros(10), 5, samples, rate_hz, 0.0, float(samples[0] / fs))


def test_recruitment_ratio_and_frequency():
    normal = recruitment([_unit(10.0, 0.0) for _ in range(4)])
    assert normal.recruitment_ratio == pytest.approx(2.5)
    assert normal.pattern == "normal"
    few_fast = recruitment([_unit(18.0, 0.0), _unit(16.0, 0.0)])
    assert few_fast.pattern == "reduced"
    assert few_fast.recruitment_ratio == pytest.approx(9.0)
    # the first unit fires at 20 Hz when the second appears 2 s later: raised recruitment frequency
    staged = recruitment([_unit(20.0, 0.0), _unit(8.0, 2.0), _unit(8.0, 2.5), _unit(8.0, 3.0), _unit(8.0, 3.5)])
    assert staged.recruitment_frequency_hz == pytest.approx(20.0, rel=0.02)
    assert staged.pattern == "reduced"
    assert recruitment([_unit(10.0, 0.0)]).pattern == "unknown"
    assert recruitment([]).n_active_units == 0


@pytest.fixture(scope="module")
def hdemg() -> tuple[np.ndarray, np.ndarray, float]:
    if not HDEMG.exists():
        pytest.skip(f"real recording not present: {HDEMG}")
    content = scipy.io.loadmat(HDEMG)
    data = np.asarray(content["Data"][0, 0], dtype=np.float64)  # a 1x1 cell holding the samples x channels array
    fs = float(np.squeeze(content["SamplingFrequency"]))
    return data[:, :64], data[:, 64:69], fs  # grid in µV, the file's own decomposed discharge trains (0/1)


def test_real_hdemg_channel_by_channel(hdemg):
    grid, trains, fs = hdemg
    report = analyse_needle(grid, fs)
    assert report.reading.label == "not assessed"  # surface at 2048 Hz: needle references do not apply
    assert "below the 4000 Hz" in report.notes[0]
    assert len(report.interference) == 64
    turns = np.array([p.median_turns_per_s for p in report.interference])
    amplitude = np.array([p.median_amplitude_uv for p in report.interference])
    envelope = np.array([p.median_envelope_uv for p in report.interference])
    # surface HD-EMG of a force ramp: some hundred turns/s of a few hundred µV on every channel
    assert np.all((turns > 50) & (turns < 400))
    assert np.all((amplitude > 150) & (amplitude < 1000))
    assert np.all((envelope > 100) & (envelope < 1000))
    rates = np.array([u.firing_rate_hz for u in report.units])
    assert rates.size > 0 and np.all((rates > 3) & (rates < 40))
    # at least one unit found on a single channel follows one of the file's own decomposed motor units
    # (OT Bioelettronica decomposition, columns 64-68) at a fixed lag, with the same firing rate
    matched = []
    for unit in report.units:
        for train in trains.T:
            times = np.flatnonzero(train > 0.5)
            previous = np.searchsorted(times, unit.discharges, side="right") - 1
            found = previous >= 0
            lags = unit.discharges[found] - times[previous[found]]
            share = np.mean(np.abs(lags - np.median(lags)) <= 2) * found.mean()
            own_rate = fs / np.median(np.diff(times))
            if share >= 0.5:
                matched.append(unit.firing_rate_hz / own_rate - 1.0)
    assert matched and min(abs(m) for m in matched) <= 0.05
