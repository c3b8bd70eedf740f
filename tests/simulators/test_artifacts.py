"""Artifacts: each switch adds what it says, at the level it says, measured on the generated signal."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from simulators.emg import EmgSimulator, SimulationConfig

FS = 2048.0


def rest_with(artifacts: tuple[str, ...], duration_s: float = 4.0, **options) -> tuple[EmgSimulator, np.ndarray]:
    config = SimulationConfig(layout="ring8", fs=FS, profile="rest", artifacts=artifacts, **options)
    simulator = EmgSimulator(config)
    return simulator, simulator.generate(duration_s).astype(np.float64)


def test_noise_sits_at_the_requested_snr_below_the_contraction():
    clean = EmgSimulator(
        SimulationConfig(layout="ring8", fs=FS, profile="hold", mvc_percent=50, artifacts=(), fatigue_rate=0.0)
    ).generate(4.0)[int(FS) :]
    signal_rms = float(np.sqrt((clean.astype(np.float64) ** 2).mean()))
    simulator, noise = rest_with(("noise",), mvc_percent=50, snr_db=20.0)
    noise_rms = float(np.sqrt((noise**2).mean()))
    assert noise_rms == pytest.approx(simulator.noise_rms_uv, rel=0.03)
    # the analytic reference the SNR is set against agrees with the RMS measured on a clean contraction
    assert 20.0 * np.log10(signal_rms / noise_rms) == pytest.approx(20.0, abs=1.5)
    freqs, psd = signal.welch(noise, fs=FS, nperseg=512, axis=0)
    assert psd.mean(axis=1)[5:-5].std() / psd.mean() < 0.2  # white


@pytest.mark.parametrize("mains_hz", [50.0, 60.0])
def test_mains_interference_at_the_chosen_frequency_and_odd_harmonics(mains_hz):
    _, data = rest_with(("mains",), mains_hz=mains_hz)
    freqs, psd = signal.welch(data, fs=FS, nperseg=2048, axis=0)
    pooled = psd.sum(axis=1)
    assert freqs[np.argmax(pooled)] == pytest.approx(mains_hz, abs=1.0)
    at = {f: pooled[np.argmin(np.abs(freqs - f))] for f in (mains_hz, 2 * mains_hz, 3 * mains_hz, 5 * mains_hz)}
    assert at[3 * mains_hz] > 100 * at[2 * mains_hz] and at[5 * mains_hz] > 100 * at[2 * mains_hz]
    assert at[mains_hz] > at[3 * mains_hz] > at[5 * mains_hz]


def test_mains_can_be_switched_off():
    _, data = rest_with(("mains",), mains_hz=0.0)
    assert np.all(data == 0.0)


def test_baseline_wander_is_below_one_hertz():
    _, data = rest_with(("wander",), duration_s=30.0)
    freqs, psd = signal.welch(data, fs=FS, nperseg=data.shape[0], axis=0)
    pooled = psd.sum(axis=1)
    assert pooled[freqs <= 1.0].sum() / pooled.sum() > 0.99


def test_liftoff_saturation_dropout_and_motion_events():
    rates = {"motion": 30.0, "liftoff": 20.0, "saturation": 20.0, "dropout": 30.0}
    config = SimulationConfig(
        layout="ring8",
        fs=FS,
        profile="rest",
        artifacts=("noise", "motion", "liftoff", "saturation", "dropout"),
        artifact_options={"events_per_min": rates, "rail_uv": 5000.0},
        seed=4,
    )
    simulator = EmgSimulator(config)
    data, after, truths = simulator.generate_with_truth(15.0, truth_rate_hz=10.0)
    assert np.isnan(data).any()  # dropouts
    assert (np.abs(data) == 5000.0).any()  # a channel pinned at the rail
    flat = data == 0.0
    longest = max(_longest_run(flat[:, c]) for c in range(data.shape[1]))
    assert longest >= int(0.5 * FS)  # lift-off: an electrode reads flat for at least half a second
    # the truth names each lift-off; the channel it names is flat at that sample (unless a later-rendered
    # saturation or dropout on the same channel overrides it, which the truth names too)
    checked = 0
    for sample, truth in zip(after - 1, truths, strict=True):
        events = truth["artifacts"].split(",")
        for item in events:
            kind, _, channel = item.partition(":")
            others = {f"saturation:{channel}", f"dropout:{channel}"} & set(events)
            if kind == "liftoff" and not others:
                assert data[sample, int(channel)] == 0.0
                checked += 1
    assert checked > 0


def test_motion_artifacts_add_large_slow_transients():
    quiet = EmgSimulator(SimulationConfig(layout="ring8", profile="rest", artifacts=())).generate(10.0)
    config = SimulationConfig(
        layout="ring8", profile="rest", artifacts=("motion",), artifact_options={"events_per_min": {"motion": 60.0}}
    )
    moving = EmgSimulator(config).generate(10.0).astype(np.float64)
    assert np.all(quiet == 0.0)
    assert np.abs(moving).max() > 100.0
    freqs, psd = signal.welch(moving, fs=2048.0, nperseg=4096, axis=0)
    pooled = psd.sum(axis=1)
    assert pooled[freqs < 10.0].sum() / pooled.sum() > 0.9


def _longest_run(mask: np.ndarray) -> int:
    padded = np.concatenate([[0], mask.astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return int((edges[1::2] - edges[::2]).max()) if edges.size else 0
