"""Fatigue tracking on signals whose spectrum compresses by a known amount, through the monitor's own chain.

The test signal is white noise shaped by a constant-Q band-pass whose centre frequency is scaled by r(t): the
whole spectrum scales by r, as when conduction velocity falls. The true median frequency at each r comes from the
exact frequency response of the shaping filter times the monitor's filters (not from the code under test).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from dsp.fatigue import (
    NOT_ASSESSED,
    REASON_NO_BASELINE,
    REASON_NO_CONTRACTION,
    FatigueReport,
    FatigueSettings,
    FatigueTracker,
    classify,
)
from dsp.features import compute_features
from dsp.filters import default_chain
from dsp.windows import Windower

FS = 2048.0
CENTRES_HZ = tuple(np.linspace(80.0, 150.0, 8))  # eight channels with different spectra
CONTRACTION_S = 120.0
R_END = 0.75  # spectrum compressed by 25 % at the end of the contraction
REST_S = 5.0
BLOCK = 256  # the shaping filter is redesigned every 125 ms as r(t) moves


def shaping_sos(centre_hz: float) -> np.ndarray:
    return signal.butter(2, (centre_hz / 2.0, centre_hz * 2.0), btype="bandpass", fs=FS, output="sos")


def emg_like(contraction_s: float, r_end: float, seed: int = 0, rest_uv: float = 2.0, active_uv: float = 80.0,
             centres_hz: tuple[float, ...] = CENTRES_HZ) -> np.ndarray:  # fmt: skip
    """REST_S of rest, then a contraction during which the spectrum scales linearly from r=1 to ``r_end``."""
    rng = np.random.default_rng(seed)
    n_rest, n_active = int(REST_S * FS), int(contraction_s * FS)
    out = np.empty((n_rest + n_active, len(centres_hz)))
    out[:n_rest] = rng.standard_normal((n_rest, len(centres_hz))) * rest_uv
    for channel, centre in enumerate(centres_hz):
        noise = rng.standard_normal(n_active)
        zi = np.zeros((2, 2))
        shaped = np.empty(n_active)
        for start in range(0, n_active, BLOCK):
            r = 1.0 + (r_end - 1.0) * (start + BLOCK / 2) / n_active
            sos = shaping_sos(centre * r)
            shaped[start : start + BLOCK], zi = signal.sosfilt(sos, noise[start : start + BLOCK], zi=zi)
        out[n_rest:, channel] = shaped / shaped[: int(FS)].std() * active_uv
    return out.astype(np.float32)


def true_mdf(centre_hz: float, r: float) -> float:
    """Median frequency of white noise through the shaping filter at scale r and the monitor's chain."""
    frequencies = np.linspace(0.0, FS / 2, 20_481)
    _, shaping = signal.sosfreqz(shaping_sos(centre_hz * r), worN=frequencies, fs=FS)
    _, chain = signal.sosfreqz(default_chain(FS, 1, mains_hz=50.0).sos, worN=frequencies, fs=FS)
    power = np.abs(shaping * chain) ** 2
    cumulative = np.cumsum(power)
    return float(np.interp(cumulative[-1] / 2, cumulative, frequencies))


def track(samples: np.ndarray, settings: FatigueSettings | None = None) -> list[FatigueReport]:
    """The engine's path: filters -> 200/50 ms windows -> features -> tracker, in 64-sample chunks."""
    n_channels = samples.shape[1]
    chain = default_chain(FS, n_channels, mains_hz=50.0)
    windower = Windower(FS, n_channels, 200.0, 50.0)
    tracker = FatigueTracker(FS, n_channels, settings)
    reports = []
    timestamps = 1000.0 + np.arange(len(samples)) / FS
    chunk = 2048
    for start in range(0, len(samples), chunk):
        filtered, _ = chain.process(samples[start : start + chunk])
        windows = windower.push(filtered, timestamps[start : start + chunk], start)
        if not windows:
            continue
        features = compute_features(np.stack([w.data for w in windows]), FS, ["MNF", "MDF", "FInsm5", "RMS"])
        for index, window in enumerate(windows):
            values = {name: v[index] for name, v in features.items()}
            reports.append(tracker.update_features(window.last_timestamp, values))
    return reports


@pytest.fixture(scope="module")
def compressing() -> list[FatigueReport]:
    return track(emg_like(contraction_s=CONTRACTION_S, r_end=R_END, seed=1))


def report_at(reports: list[FatigueReport], seconds_into_contraction: float) -> FatigueReport:
    target = 1000.0 + REST_S + seconds_into_contraction
    return min(reports, key=lambda report: abs(report.timestamp - target))


def true_change_pct(centre_hz: float, seconds_into_contraction: float) -> float:
    r = 1.0 + (R_END - 1.0) * seconds_into_contraction / CONTRACTION_S
    return (true_mdf(centre_hz, r) - true_mdf(centre_hz, 1.0)) / true_mdf(centre_hz, 1.0) * 100.0


@pytest.mark.parametrize("seconds", [60.0, CONTRACTION_S])
def test_mdf_decline_matches_truth_within_3_points(compressing, seconds: float) -> None:
    report = report_at(compressing, seconds)
    truths = np.array([true_change_pct(centre, seconds) for centre in CENTRES_HZ])
    if seconds == CONTRACTION_S:
        assert np.all((truths > -27) & (truths < -18))  # the construction: ~25 % compression, trimmed by the chain
    # the monitor's figure (median over channels) within 3 points of the truth; each channel, from its own
    # noisy 200 ms spectra, within 5
    assert abs(report.overall["mdf_change_pct"] - np.median(truths)) <= 3.0, (report.overall, np.median(truths))
    assert np.all(np.abs(report.mdf_change_pct - truths) <= 5.0), report.mdf_change_pct - truths


def test_slope_in_hz_per_minute_matches_truth(compressing) -> None:
    final = compressing[-1]
    true_slopes = np.array([
        (true_mdf(centre, R_END) - true_mdf(centre, 1.0)) / (CONTRACTION_S / 60.0) for centre in CENTRES_HZ
    ])  # fmt: skip
    assert final.overall["mdf_slope_hz_per_min"] == pytest.approx(np.median(true_slopes), rel=0.15)
    assert np.all(final.mdf_slope_hz_per_min < 0) and np.all(final.mnf_slope_hz_per_min < 0)
    assert np.all(final.fins_change_pct > 30)  # FInsm5 rises steeply as the spectrum compresses (~ r^-6)


def test_states_progress_from_fresh_to_fatigued(compressing) -> None:
    reports = compressing
    assert reports[0].learning and not reports[-1].learning
    assert not report_at(reports, -1.0).active.any()  # resting before the contraction
    assert report_at(reports, 5.0).active.all()
    # 5 s in: no steady baseline yet (settle_s + baseline_s = 6 s), so nothing is assessed; never "fresh"
    assert report_at(reports, 5.0).state == NOT_ASSESSED
    assert report_at(reports, 5.0).reason == REASON_NO_BASELINE
    assert report_at(reports, 15.0).state == "fresh"
    assert report_at(reports, 50.0).state == "fatiguing"
    assert reports[-1].state == "fatigued" and reports[-1].states.count("fatigued") >= 6
    assert reports[-1].contraction_s == pytest.approx(np.full(len(CENTRES_HZ), CONTRACTION_S), abs=2.5)


def test_rest_reports_no_fatigue() -> None:
    rng = np.random.default_rng(2)
    rest = (rng.standard_normal((int(60 * FS), 3)) * 2.0).astype(np.float32)
    reports = track(rest)
    assert all(report.state == NOT_ASSESSED and not report.active.any() and not report.overall for report in reports)
    assert reports[-1].reason == REASON_NO_CONTRACTION and set(reports[-1].reasons) == {REASON_NO_CONTRACTION}
    assert np.isnan(reports[-1].mdf_change_pct).all()
    # white noise of 2 µV through the chain keeps the fraction mean(|H|^2) of its power
    _, response = signal.sosfreqz(default_chain(FS, 1, mains_hz=50.0).sos, worN=8192, fs=FS)
    expected = 2.0 * np.sqrt(np.mean(np.abs(response) ** 2))
    assert reports[-1].rest_rms == pytest.approx(np.full(3, expected), rel=0.05)


def test_steady_contraction_is_not_called_fatigue() -> None:
    reports = track(emg_like(contraction_s=60.0, r_end=1.0, seed=3, centres_hz=CENTRES_HZ[::3]))
    final = reports[-1]
    assert final.active.all()
    assert np.all(np.abs(final.mdf_change_pct) < 3.0)
    # no fatigue state at any time; "fresh" once judged (before: not assessed)
    states = [report.state for report in reports]
    assert set(states) == {NOT_ASSESSED, "fresh"} and NOT_ASSESSED not in states[states.index("fresh"):]


def test_unusable_channel_never_contracts() -> None:
    tracker = FatigueTracker(FS, 2)
    tracker.set_rest_level(np.array([2.0, 2.0]))
    features = {"MNF": np.full(2, 100.0), "MDF": np.full(2, 90.0), "FInsm5": np.full(2, 1e-13), "RMS": np.full(2, 80.0)}
    report = tracker.update_features(0.0, features, usable=np.array([True, False]))
    np.testing.assert_array_equal(report.active, [True, False])
    nan_rms = dict(features, RMS=np.array([80.0, np.nan]))
    assert not tracker.update_features(0.05, nan_rms).active[1]
    assert report.to_dict()["mdf_hz"] == [None, None]  # JSON-safe before the first epoch ends


def test_state_rule_and_settings_validation() -> None:
    settings = FatigueSettings()
    assert classify(-16.0, -10.0, -5.0, settings, duration_s=30.0) == "fatigued"
    assert classify(-8.0, 0.0, 1.0, settings, duration_s=30.0) == "fatiguing"
    assert classify(-2.0, -4.0, -1.0, settings, duration_s=30.0) == "fatiguing"
    assert classify(-2.0, -4.0, 0.5, settings, duration_s=30.0) == "fresh"  # slope not significant
    assert classify(-30.0, -40.0, -20.0, settings, duration_s=5.0) == NOT_ASSESSED  # too short to judge
    assert classify(float("nan"), -40.0, -20.0, settings, duration_s=60.0) == NOT_ASSESSED  # no MDF change
    with pytest.raises(ValueError, match="hysteresis"):
        FatigueSettings(activity_ratio=2.0, release_ratio=3.0)
    with pytest.raises(ValueError, match="positive"):
        FatigueTracker(FS, 0)


@pytest.mark.slow
def test_simulated_sustained_contraction_matches_simulator_truth() -> None:
    """The motor-unit simulator holding 50 % MVC with conduction velocity falling 15 %/min: the monitor's MDF
    decline (median over the electrodes) within 3 points of the simulator's analytic truth. A 2 x 4 grid over one
    muscle: every electrode sees the same fatigue (on a forearm ring each muscle fatigues at its own pace, while
    the simulator's truth is for the sum of all channels)."""
    from simulators.electrodes import ElectrodeLayout
    from simulators.emg import EmgSimulator, SimulationConfig

    def simulator(profile: str) -> EmgSimulator:
        layout = ElectrodeLayout.grid(2, 4)
        config = SimulationConfig(layout=layout, profile=profile, mvc_percent=50.0, artifacts=("noise",), seed=4)
        return EmgSimulator(config)

    rest = simulator("rest").generate(REST_S)
    hold = simulator("hold")
    contraction, _, truths = hold.generate_with_truth(75.0, truth_rate_hz=4.0)
    reports = track(np.concatenate([rest, contraction]))
    start_mdf, end_mdf = truths[0]["true_mdf_hz"], truths[-1]["true_mdf_hz"]
    truth = (end_mdf - start_mdf) / start_mdf * 100.0
    assert truth < -10  # the simulator did fatigue
    final = reports[-1]
    assert final.active.all()
    assert abs(final.overall["mdf_change_pct"] - truth) <= 3.0, (final.overall["mdf_change_pct"], truth)
    assert final.state in ("fatiguing", "fatigued")
    assert final.overall["rms_change_pct"] > 0  # amplitude rises as the MUAPs stretch


def test_vectorised_theil_sen_equals_scipy() -> None:
    from scipy.stats import theilslopes

    from dsp.fatigue import theil_sen

    rng = np.random.default_rng(5)
    times = np.arange(40) * 2.0 + 0.5
    values = 100 - 0.2 * times[:, np.newaxis] + rng.normal(0, 3, (40, 6))
    values[:7, 1] = np.nan  # a channel whose contraction started later
    values[[3, 17, 30], 2] = np.nan  # and one with paused epochs
    values[:, 3] = np.nan  # one with no data
    values[1:, 4] = np.nan  # one with a single point
    slope, low, high = theil_sen(times, values)
    for channel in (0, 1, 2, 5):
        keep = np.isfinite(values[:, channel])
        expected = theilslopes(values[keep, channel], times[keep], alpha=0.95)
        assert slope[channel] == pytest.approx(expected.slope, rel=1e-12)
        assert (low[channel], high[channel]) == pytest.approx((expected.low_slope, expected.high_slope), rel=1e-12)
    assert np.isnan([slope[3], high[3], slope[4], low[4]]).all()


def test_session_that_starts_mid_contraction_reads_it_as_contraction_and_finds_its_rest_level_at_the_first_pause():
    from dsp.fatigue import FatigueTracker

    tracker = FatigueTracker(2048.0, 2)
    spectral = np.full(2, 80.0)

    def feed(seconds: float, rms: float, start: float) -> list:
        reports = []
        for k in range(int(seconds / 0.05)):
            reports.append(tracker.update(start + k * 0.05, spectral, spectral, spectral * 1e-9, np.full(2, rms)))
        return reports

    first = feed(5.0, 120.0, 0.0)  # contracting from the first sample: what it learns is no rest level
    assert tracker.rest_rms[0] == tracker.settings.max_rest_rms  # so the ceiling of a relaxed muscle's RMS is
    after_learning = [report for report in first if not report.learning]
    assert after_learning and all(report.active.all() for report in after_learning)  # and it reads contracting
    feed(3.0, 4.0, 5.0)  # the first pause
    assert tracker.rest_rms[0] < 10
    again = feed(4.0, 120.0, 8.0)
    assert again[-1].active.all()


def test_rest_is_the_quiet_end_of_the_learning_windows_and_without_a_ceiling_a_contraction_is_learned_as_rest():
    from dsp.fatigue import FatigueSettings, FatigueTracker

    spectral = np.full(1, 80.0)
    # 1 s at rest (5 µV), then a contraction (60 µV, below the ceiling's 4x) begins inside the learning seconds
    levels = [5.0] * 20 + [60.0] * 80
    tracker = FatigueTracker(2048.0, 1)
    reports = [tracker.update(k * 0.05, spectral, spectral, spectral * 1e-9, np.full(1, rms))
               for k, rms in enumerate(levels)]  # fmt: skip
    assert tracker.rest_rms[0] == 5.0  # the median of the learning windows would have been 60
    assert reports[-1].active[0]
    uncapped = FatigueTracker(2048.0, 1, FatigueSettings(max_rest_rms=None))
    for k in range(100):
        report = uncapped.update(k * 0.05, spectral, spectral, spectral * 1e-9, np.full(1, 120.0))
    assert uncapped.rest_rms[0] == 120.0 and not report.active[0]
    with pytest.raises(ValueError, match="rest_percentile"):
        FatigueSettings(rest_percentile=80.0)


def _true_fins_and_rms(centre_hz: float, r: float) -> tuple[float, float]:
    """FInsm5 (M(-1)/M(5) over 20-450 Hz) and RMS (up to a constant) of the shaped noise through the chain."""
    frequencies = np.linspace(0.0, FS / 2, 20_481)
    _, shaping = signal.sosfreqz(shaping_sos(centre_hz * r), worN=frequencies, fs=FS)
    _, chain = signal.sosfreqz(default_chain(FS, 1, mains_hz=50.0).sos, worN=frequencies, fs=FS)
    power = np.abs(shaping * chain) ** 2
    band = (frequencies >= 20.0) & (frequencies <= 450.0)
    fins = np.sum(power[band] / frequencies[band]) / np.sum(power[band] * frequencies[band] ** 5)
    return float(fins), float(np.sqrt(power.sum()))


@pytest.mark.parametrize("seconds", [30.0, 60.0, CONTRACTION_S - 2.0])
def test_fins_and_rms_changes_on_a_steady_hold_match_truth(compressing, seconds: float) -> None:
    """The baseline is the steady stretch 2-6 s into the hold (r at ~4 s), the present the last 4 s (~2 s back).
    Median over channels: FInsm5 within 10 points + 10 % of the true change (+24 % at 30 s, +66 % at 60 s, +210 %
    at 118 s; 200 ms rectangular periodograms weigh f^5 noisily), RMS within 3 points (-2 .. -10 %)."""
    report = report_at(compressing, seconds)

    def r(t: float) -> float:
        return 1.0 + (R_END - 1.0) * t / CONTRACTION_S

    fins_truth, rms_truth = [], []
    for centre in CENTRES_HZ:
        now, then = _true_fins_and_rms(centre, r(seconds - 2.0)), _true_fins_and_rms(centre, r(4.0))
        fins_truth.append(100.0 * (now[0] / then[0] - 1.0))
        rms_truth.append(100.0 * (now[1] / then[1] - 1.0))
    fins, truth = float(np.median(report.fins_change_pct)), float(np.median(fins_truth))
    assert abs(fins - truth) <= 10.0 + 0.1 * abs(truth), (fins, truth)
    assert abs(float(np.median(report.rms_change_pct)) - float(np.median(rms_truth))) <= 3.0


def test_masked_trim_mean_is_scipys_trim_mean_of_each_channels_active_rows():
    from scipy.stats import trim_mean

    from dsp.fatigue import masked_trim_mean

    rng = np.random.default_rng(3)
    for _ in range(100):
        windows, channels = int(rng.integers(1, 12)), int(rng.integers(1, 9))
        rows = rng.normal(size=(windows, 4, channels)) * rng.uniform(1, 1e3)
        active = rng.random((windows, channels)) < rng.uniform(0.1, 1.0)
        got = masked_trim_mean(rows, active, 0.2)
        for channel in range(channels):
            chosen = rows[active[:, channel], :, channel]
            if len(chosen) == 0:
                assert np.isnan(got[:, channel]).all()
            else:
                np.testing.assert_allclose(got[:, channel], trim_mean(chosen, 0.2, axis=0), rtol=1e-12, atol=1e-9)
