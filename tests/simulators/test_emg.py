"""The motor-unit simulator against independent spectral and waveform measurements of the signal it generates."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import signal

from simulators.artifacts import ARTIFACTS
from simulators.emg import EmgSimulator, SimulationConfig

CLEAN = {"artifacts": (), "fatigue_rate": 0.0}


def pooled_mnf_mdf(data: np.ndarray, fs: float) -> tuple[float, float]:
    """Mean and median frequency of the channel-summed Welch spectrum."""
    freqs, psd = signal.welch(data.astype(np.float64), fs=fs, nperseg=512, axis=0)
    pooled = psd.sum(axis=1)
    cumulative = np.cumsum(pooled)
    return float((freqs * pooled).sum() / pooled.sum()), float(np.interp(cumulative[-1] / 2, cumulative, freqs))


def test_surface_contraction_has_physiological_spectrum_and_rest_is_quiet():
    fs = 2048.0
    holding = EmgSimulator(SimulationConfig(layout="ring8", fs=fs, profile="hold", mvc_percent=50, **CLEAN))
    hold = holding.generate(3.0)
    rest = EmgSimulator(
        SimulationConfig(layout="ring8", fs=fs, profile="rest", artifacts=("noise",), snr_db=30)
    ).generate(3.0)
    mnf, mdf = pooled_mnf_mdf(hold[2048:], fs)
    assert 60.0 < mnf < 150.0 and 50.0 < mdf < 140.0
    freqs, psd = signal.welch(hold[2048:].astype(np.float64), fs=fs, nperseg=512, axis=0)
    band = (freqs >= 20) & (freqs <= 450)
    assert psd[band].sum() / psd.sum() > 0.95  # surface EMG energy lies in 20-450 Hz
    contraction_rms = np.sqrt((hold[2048:] ** 2).mean())
    # the generated amplitude is the one the motor-unit pool implies (firing rates x MUAP energy x electrode gains,
    # reference_rms_uv; measured within 2 % for seeds 0-3), and a surface EMG amplitude at half MVC (0.1-1 mV)
    assert contraction_rms == pytest.approx(holding.reference_rms_uv(), rel=0.1)
    assert 100.0 < contraction_rms < 1000.0
    # rest is noise only, 30 dB below the contraction
    assert np.sqrt((rest**2).mean()) < contraction_rms / 10.0


def test_needle_signal_reaches_kilohertz_and_needs_a_fast_rate():
    fs = 10000.0
    needle = EmgSimulator(SimulationConfig(layout="needle", fs=fs, profile="hold", mvc_percent=30, **CLEAN))
    mnf, _ = pooled_mnf_mdf(needle.generate(2.0), fs)
    assert 250.0 < mnf < 1200.0
    with pytest.raises(ValueError, match="needle EMG needs fs >= 4000"):
        EmgSimulator(SimulationConfig(layout="needle", fs=500.0))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"condition": "dystrophy"}, "unknown condition"),
        ({"profile": "sprint"}, "unknown profile"),
        ({"mvc_percent": 120.0}, "0-100"),
        ({"fs": 50.0}, "sampling rate"),
        ({"gesture": "wave"}, "unknown gesture"),
        ({"artifacts": ("mains", "cosmic")}, "unknown artifact"),
        ({"mains_hz": 55.0}, "50 or 60"),
        ({"snr_db": float("nan")}, "finite"),
        ({"fs": float("inf")}, "finite"),
    ],
)
def test_invalid_settings_raise_clear_errors(change, message):
    with pytest.raises(ValueError, match=message):
        EmgSimulator(SimulationConfig(**change))


def test_same_seed_same_samples_other_seed_other_subject():
    config = SimulationConfig(layout="ring8", profile="gestures", period_s=0.5, artifacts=ARTIFACTS, seed=7)
    first, second = EmgSimulator(config).generate(2.0), EmgSimulator(config).generate(2.0)
    np.testing.assert_array_equal(first, second)
    other = EmgSimulator(
        SimulationConfig(layout="ring8", profile="gestures", period_s=0.5, artifacts=ARTIFACTS, seed=8)
    )
    assert not np.allclose(np.nan_to_num(first), np.nan_to_num(other.generate(2.0)))
    assert other.subject != EmgSimulator(config).subject


@pytest.mark.parametrize("layout, fs", [("ring8", 2048.0), ("ring8", 200.0), ("grid8x8", 2048.0), ("needle", 4000.0)])
def test_chunked_reads_equal_one_read(layout, fs):
    config = SimulationConfig(layout=layout, fs=fs, profile="intermittent", period_s=0.4, artifacts=ARTIFACTS, seed=3)
    whole = EmgSimulator(config).generate(2.0)
    simulator = EmgSimulator(config)
    sizes = np.random.default_rng(0).integers(1, 300, 400)
    parts, total = [], whole.shape[0]
    for size in sizes:
        take = min(int(size), total - sum(p.shape[0] for p in parts))
        if take == 0:
            break
        parts.append(simulator.read(take))
    chunked = np.concatenate(parts)
    assert chunked.dtype == np.float32 and chunked.shape == whole.shape == (int(2.0 * fs), simulator.n_channels)
    np.testing.assert_array_equal(chunked, whole)


def test_sustained_hold_fatigue_matches_ground_truth_within_3_points():
    fs, duration, window_s = 2048.0, 30.0, 2.0
    config = SimulationConfig(layout="grid8x8", fs=fs, profile="hold", mvc_percent=50, fatigue_rate=0.4, artifacts=())
    data, _, truths = EmgSimulator(config).generate_with_truth(duration, truth_rate_hz=4.0)
    window = int(window_s * fs)
    centres = np.arange(0.0, duration, window_s) + window_s / 2
    measured = np.array([pooled_mnf_mdf(data[i : i + window], fs) for i in range(0, data.shape[0], window)])
    truth_times = np.array([t["time_s"] for t in truths])
    truth = np.array([[t["true_mnf_hz"], t["true_mdf_hz"]] for t in truths])

    def relative_decline(times: np.ndarray, values: np.ndarray) -> float:
        # a straight-line fit over the whole hold: the index falls roughly linearly and the fit averages out the
        # window-to-window scatter of a spectrum dominated by a few large units
        slope, intercept = np.polyfit(times, values, 1)
        return (intercept + slope * duration) / intercept

    for column, name in enumerate(("MNF", "MDF")):
        expected = relative_decline(truth_times, truth[:, column])
        observed = relative_decline(centres, measured[:, column])
        assert expected < 0.9, name  # the hold really fatigued the muscle
        assert abs(observed - expected) < 0.03, (name, observed, expected)
    assert truths[-1]["relative_cv"] < 0.85
    early, late = data[: 5 * int(fs)].astype(np.float64), data[-5 * int(fs) :].astype(np.float64)
    assert np.sqrt((late**2).mean()) > np.sqrt((early**2).mean())  # amplitude rises as MUAPs stretch


def test_muscle_recovers_at_rest():
    config = SimulationConfig(layout="grid8x8", profile="intermittent", period_s=20.0, fatigue_rate=0.6, artifacts=())
    simulator = EmgSimulator(config)
    _, _, truths = simulator.generate_with_truth(60.0, truth_rate_hz=1.0)
    cv = {round(t["time_s"]): t["relative_cv"] for t in truths}
    assert cv[39] < 0.85  # end of the 20-40 s contraction
    # 20 s of rest later: exponential recovery with a 1 min time constant (recovery_rate 1/min)
    assert cv[59] == pytest.approx(1.0 - (1.0 - cv[39]) * np.exp(-20.0 / 60.0), abs=0.01)


def needle_muap(condition: str, seed: int) -> tuple[float, float]:
    """(peak-to-peak µV, duration ms) of the unit nearest the needle, by spike-triggered averaging of the signal."""
    fs = 10000.0
    config = SimulationConfig(
        layout="needle",
        fs=fs,
        condition=condition,
        profile="hold",
        mvc_percent=10,
        seed=seed,
        record_spikes=True,
        **CLEAN,
    )
    simulator = EmgSimulator(config)
    trace = simulator.generate(6.0)[:, 0].astype(np.float64)
    units = np.concatenate([u for u, _ in simulator.spike_log])
    times = np.concatenate([t for _, t in simulator.spike_log])
    counts = np.bincount(units, minlength=simulator.pool.n_units)
    unit = int(np.argmax(simulator.gains[:, 0] * (counts >= 30)))
    onsets = np.ceil(times[units == unit] * fs).astype(int)
    length = int(0.06 * fs)
    onsets = onsets[onsets + length < trace.size]
    average = np.stack([trace[o : o + length] for o in onsets]).mean(axis=0)
    residual = average[-int(0.015 * fs) :].std()  # the last 15 ms is past every MUAP: what is left is background
    above = np.flatnonzero(np.abs(average) > max(0.1 * np.abs(average).max(), 5 * residual))
    return float(average.max() - average.min()), float((above[-1] - above[0]) / fs * 1e3)


def test_needle_muaps_neuropathy_large_long_myopathy_small_short():
    measured = {
        condition: np.median([needle_muap(condition, seed) for seed in range(3)], axis=0)
        for condition in ("healthy", "myopathy", "neuropathy")
    }
    healthy_amplitude, healthy_duration = measured["healthy"]
    assert 300.0 < healthy_amplitude < 2000.0 and 4.0 < healthy_duration < 14.0
    assert measured["neuropathy"][0] > 2.0 * healthy_amplitude
    assert measured["neuropathy"][1] > 1.15 * healthy_duration
    assert measured["myopathy"][0] < 0.8 * healthy_amplitude
    assert measured["myopathy"][1] < 0.75 * healthy_duration


def test_neuropathy_recruits_fewer_units_firing_faster():
    def firing(condition: str) -> tuple[int, float]:
        simulator = EmgSimulator(
            SimulationConfig(layout="needle", fs=4000.0, condition=condition, profile="hold", mvc_percent=30, **CLEAN)
        )
        rates = simulator.pool.firing_rate(np.full(simulator.pool.n_units, 0.3))
        return int((rates > 0).sum()), float(rates[rates > 0].max())

    healthy, neuropathy, myopathy = firing("healthy"), firing("neuropathy"), firing("myopathy")
    assert neuropathy[0] < 0.6 * healthy[0] and neuropathy[1] > healthy[1]
    assert myopathy[0] > healthy[0]  # early recruitment of many units


def test_ground_truth_is_json_safe_and_follows_the_gesture_cycle():
    config = SimulationConfig(layout="ring8", profile="gestures", period_s=1.0, mvc_percent=40, **CLEAN)
    simulator = EmgSimulator(config)
    seen = []
    for _ in range(8):
        simulator.read(512)
        truth = json.loads(json.dumps(simulator.ground_truth()))
        seen.append((truth["gesture"], truth["mvc_percent"], truth["true_mnf_hz"]))
        assert truth["condition"] == "healthy" and truth["relative_cv"] == 1.0
    assert seen[0] == ("rest", 0.0, None)  # 0-1 s: rest, no unit fires
    assert seen[5][0] == "wrist_flexion" and seen[5][1] == 40.0 and 50.0 < seen[5][2] < 200.0
    assert seen[7][0] == "wrist_flexion"


def test_gestures_activate_different_channels():
    def channel_rms(gesture: str) -> np.ndarray:
        config = SimulationConfig(layout="ring8", profile="hold", gesture=gesture, mvc_percent=40, **CLEAN)
        return np.sqrt((EmgSimulator(config).generate(1.0)[512:].astype(np.float64) ** 2).mean(axis=0))

    flexion, extension = channel_rms("wrist_flexion"), channel_rms("wrist_extension")
    assert np.argmax(flexion) != np.argmax(extension)
    correlation = np.corrcoef(flexion / flexion.sum(), extension / extension.sum())[0, 1]
    assert correlation < 0.5


def test_grid_muaps_propagate_along_the_fibres_at_the_conduction_velocity():
    fs = 2048.0
    config = SimulationConfig(
        layout="grid13x5", fs=fs, profile="hold", mvc_percent=30, fatigue_rate=1.0, artifacts=(), seed=2
    )
    simulator = EmgSimulator(config)
    data, _, truths = simulator.generate_with_truth(24.0, truth_rate_hz=1.0)
    column = [i for i, (_, col) in enumerate(simulator.layout.grid_index) if col == 2]  # 13 rows along y

    def row_lag_ms(first: int, second: int, segment: slice) -> float:
        a, b = data[segment, column[first]].astype(np.float64), data[segment, column[second]].astype(np.float64)
        correlation = signal.correlate(b, a, mode="full")
        lags = signal.correlation_lags(b.size, a.size)
        peak = int(np.argmax(correlation))
        left, centre, right = correlation[peak - 1 : peak + 2]
        return (lags[peak] + 0.5 * (left - right) / (left - 2 * centre + right)) / fs * 1e3

    early, late = slice(0, int(4 * fs)), slice(int(20 * fs), int(24 * fs))
    expected_ms = 8.0 / simulator.subject.conduction_velocity_m_s  # 8 mm between rows
    # away from the innervation zone in the middle, potentials travel outward in both directions
    assert row_lag_ms(0, 1, early) == pytest.approx(-expected_ms, rel=0.15)
    assert row_lag_ms(11, 12, early) == pytest.approx(expected_ms, rel=0.15)
    # fatigue slows conduction: the delay between rows grows as 1 / relative conduction velocity
    slowing = row_lag_ms(11, 12, late) / row_lag_ms(11, 12, early)
    truth_cv = np.mean([t["relative_cv"] for t in truths if t["time_s"] >= 20.0])
    assert truth_cv < 0.9
    assert slowing == pytest.approx(1.0 / truth_cv, rel=0.05)


def test_discharges_follow_fuglevand_rate_coding_and_recruitment():
    config = SimulationConfig(layout="grid8x8", profile="ramp", ramp_s=8.0, mvc_percent=80, record_spikes=True, **CLEAN)
    simulator = EmgSimulator(config)
    data = simulator.generate(12.0).astype(np.float64)
    units = np.concatenate([u for u, _ in simulator.spike_log])
    times = np.concatenate([t for _, t in simulator.spike_log])
    pool = simulator.pool
    # recruitment: more units fire as the ramp climbs, in threshold order (size principle)
    first_spike = np.full(pool.n_units, np.inf)
    np.minimum.at(first_spike, units, times)
    recruited = np.isfinite(first_spike)
    assert recruited[: pool.n_units // 2].all()
    order = np.argsort(first_spike[recruited])
    assert np.corrcoef(order, np.arange(order.size))[0, 1] > 0.9
    # rate coding over the final 80 %MVC hold: 8-40 Hz, the first units faster, ISI CoV as drawn for the subject
    rates, covs = [], []
    for unit in range(pool.n_units):
        own = np.sort(times[(units == unit) & (times > 9.0)])
        if own.size > 10:
            intervals = np.diff(own)
            rates.append(1.0 / intervals.mean())
            covs.append(intervals.std() / intervals.mean())
    rates = np.array(rates)
    assert rates.min() > 7.0 and rates.max() < 42.0 and rates[:10].mean() > rates[-10:].mean()
    assert np.median(covs) == pytest.approx(pool.isi_cov, abs=0.04)
    # the surface amplitude grows with force
    rms = [np.sqrt((data[int(s * 2048) : int((s + 1) * 2048)] ** 2).mean()) for s in (1, 3, 5, 7)]
    assert all(a < b for a, b in zip(rms, rms[1:], strict=False))


def test_a_distant_unit_reads_smaller_and_blunter_at_the_needle_but_not_shorter():
    """The same unit seen from three needle sites (same seed, same subject): its spike falls off within a
    millimetre while the duration, which the whole unit's fibres set, holds (Nandedkar et al. 1988)."""
    from dsp.mup_measures import measure_mup
    from simulators.electrodes import ElectrodeLayout
    from simulators.muap import needle_distance_mm, true_muap

    fs = 10_000.0
    near = EmgSimulator(SimulationConfig(layout="needle", fs=fs, profile="rest", seed=2, **CLEAN))
    unit = int(np.argmin(np.abs(near.pool.size - 1.0)))  # a small, typical unit: the hardest case
    centre = near.pool.position_mm[unit, :2]
    edge = 0.5 * near.pool.territory_mm[unit]
    readings = []
    for distance in (0.0, 0.8, 1.6):
        direction = -centre / max(float(np.linalg.norm(centre)), 1e-9)  # step towards the muscle's centre
        layout = ElectrodeLayout.needle(tuple(centre + direction * (edge + distance)))
        simulator = EmgSimulator(SimulationConfig(layout=layout, fs=fs, profile="rest", seed=2, **CLEAN))
        assert simulator.subject == near.subject  # same subject, another site
        assert needle_distance_mm(simulator.pool, simulator.layout)[unit, 0] == pytest.approx(distance)
        readings.append(measure_mup(true_muap(simulator.shapes, simulator.gains, unit, fs), fs))
    amplitudes = [m.amplitude_uv for m in readings]
    durations = [m.duration_ms for m in readings]
    rises = [m.rise_time_ms for m in readings]
    assert amplitudes[1] < 0.6 * amplitudes[0] and amplitudes[2] < 0.6 * amplitudes[1]
    assert 7.0 < durations[0] < 12.0
    assert min(durations[1:]) > 0.85 * durations[0]  # a smaller copy is not a shorter one
    assert rises[0] < rises[1] < rises[2]  # the tissue blunts the spike with distance

