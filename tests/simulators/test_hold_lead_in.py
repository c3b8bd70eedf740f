"""A hold (or ramp) from `neurofusion simulate` / `demo` rests first, so the monitor's fatigue tracker learns the real
rest level and then sees the contraction and its fatigue trend; the library default (the training corpus) does not."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from dsp.engine import DspEngine, EngineSettings
from dsp.fatigue import FatigueReport, FatigueSettings
from dsp.filters import default_chain
from dsp.ringbuffer import RingBuffer
from monitor.cli import build_parser
from monitor.commands.demo import simulator_arguments
from monitor.commands.simulate import REST_LEAD_IN_S, build_config
from monitor.errors import UserError
from simulators.emg import EmgSimulator, SimulationConfig
from simulators.files import record

REPO = Path(__file__).resolve().parents[2]


def simulate_config(*arguments: str) -> SimulationConfig:
    return build_config(build_parser().parse_args(["simulate", *arguments]))


def demo_config(*arguments: str) -> SimulationConfig:
    """The config of the amplifier `neurofusion demo ARGUMENTS` starts (the same arguments, parsed the same way)."""
    demo = build_parser().parse_args(["demo", *arguments])
    return build_config(build_parser().parse_args(simulator_arguments(demo, "nf-test")))


def track_like_the_monitor(simulator: EmgSimulator, seconds: int) -> list[FatigueReport]:
    """The stream through the monitor's DSP engine (filters, windows, features, fatigue) in 1 s chunks."""
    fs = simulator.fs
    engine = DspEngine(RingBuffer(int(fs * 10), simulator.n_channels), fs, EngineSettings(mains_hz=50.0))
    chunk = int(fs)
    reports = []
    for index in range(seconds):
        timestamps = (index * chunk + np.arange(chunk)) / fs
        reports += [result.fatigue for result in engine.process(simulator.read(chunk), timestamps, index * chunk)]
    return reports


def test_lead_in_covers_the_fatigue_trackers_rest_learning_with_margin():
    first_window_s = EngineSettings().window_ms / 1000.0
    assert FatigueSettings().rest_learning_s + first_window_s + 1.0 <= REST_LEAD_IN_S


def test_cli_switches_the_lead_in_on_for_profiles_that_contract_at_once():
    assert simulate_config("--profile", "hold").rest_lead_in_s == REST_LEAD_IN_S
    assert simulate_config("--profile", "ramp").rest_lead_in_s == REST_LEAD_IN_S
    assert simulate_config("--profile", "intermittent").rest_lead_in_s == 0.0  # begins with a --period of rest
    assert simulate_config().rest_lead_in_s == 0.0  # gestures
    assert simulate_config("--profile", "hold", "--rest-lead-in", "0").rest_lead_in_s == 0.0
    assert simulate_config("--profile", "gestures", "--rest-lead-in", "2.5").rest_lead_in_s == 2.5
    assert demo_config("--profile", "hold").rest_lead_in_s == REST_LEAD_IN_S
    assert demo_config("--profile", "hold", "--rest-lead-in", "8").rest_lead_in_s == 8.0
    with pytest.raises(UserError, match="rest lead-in must not be negative"):
        simulate_config("--profile", "hold", "--rest-lead-in", "-1")


def test_library_default_has_no_lead_in_so_the_training_corpus_is_unchanged():
    # models.datasets.simulated_subject builds its SimulationConfig without the field: its hold subjects (and the
    # cache keyed on SIMULATOR_VERSION, and the bundled model trained on them) contract from the first sample
    config = SimulationConfig(profile="hold", fs=1024.0, seed=2)
    assert config.rest_lead_in_s == 0.0
    simulator = EmgSimulator(config)
    simulator.read(1)
    truth = simulator.ground_truth()
    assert truth["gesture"] == "fist" and truth["mvc_percent"] == 50.0


def test_hold_rests_at_noise_level_for_its_lead_in_then_contracts():
    config = simulate_config("--profile", "hold", "--fs", "1024", "--seed", "3")
    simulator = EmgSimulator(config)
    fs = simulator.fs
    recording = record(simulator, 8.0, truth_rate_hz=4.0)
    names = recording.label_names
    lead_in = int(REST_LEAD_IN_S * fs)
    assert {names[i] for i in recording.labels[:lead_in]} == {"rest"}
    assert {names[i] for i in recording.labels[lead_in:]} == {"fist"}
    assert (recording.mvc_percent[:lead_in] == 0).all() and (recording.mvc_percent[lead_in:] == 50.0).all()
    assert (recording.relative_cv[:lead_in] == 1.0).all()  # rest does not fatigue
    # the band the monitor looks at (band-pass + mains notch), past the filters' start-up
    filtered, _ = default_chain(fs, simulator.n_channels, mains_hz=50.0).process(recording.data.astype(np.float64))
    rest_rms = np.sqrt(np.mean(filtered[int(1.0 * fs) : lead_in] ** 2, axis=0))
    contraction_rms = np.sqrt(np.mean(filtered[lead_in + int(0.5 * fs) :] ** 2, axis=0))
    # the lead-in holds only the white noise, 30 dB (x31.6 in RMS) below the mean channel's contraction
    assert np.median(contraction_rms / rest_rms) > 10.0, contraction_rms / rest_rms


def test_ramp_starts_after_the_lead_in():
    config = simulate_config("--profile", "ramp", "--mvc", "40")
    profile = EmgSimulator(config).profile
    times = REST_LEAD_IN_S + np.array([-0.01, 0.0, config.ramp_s / 2, config.ramp_s + 1.0])
    _, level = profile.at(times)
    np.testing.assert_allclose(level, [0.0, 0.0, 0.2, 0.4])


def test_demo_hold_shows_a_contraction_and_its_fatigue_trend():
    """The fatigue tracker driven as the monitor drives it, on the amplifier `neurofusion demo --profile hold`
    starts: it learns the rest level in the lead-in, every channel then contracts, and 35 s into the hold it has
    fitted a falling MDF trend (the fist drives the forearm's muscles at up to 50 %MVC: conduction velocity is 5 %
    down by then). Without the lead-in it once learnt the contraction as rest and never saw a contraction at all."""
    seconds = 40
    simulator = EmgSimulator(demo_config("--profile", "hold"))
    reports = track_like_the_monitor(simulator, seconds)
    times = np.array([report.timestamp for report in reports])
    active = np.array([report.active.mean() for report in reports])
    learning = np.array([report.learning for report in reports])
    lead_in = times < REST_LEAD_IN_S
    assert active[lead_in].max() == 0.0
    assert not learning[times >= REST_LEAD_IN_S].any()
    assert active[times >= REST_LEAD_IN_S + 1.0].min() == 1.0  # every channel contracting, every window
    final = reports[-1]
    contraction = np.nanmedian(final.rms)
    assert contraction / np.median(final.rest_rms) > 10.0
    assert final.overall["contraction_s"] >= seconds - REST_LEAD_IN_S - 2.0  # the last epoch may be unfinished
    assert simulator.ground_truth()["relative_cv"] < 0.96
    # the fatigue the simulator put in, seen by the tracker (-9.6 %/min and -5.3 % here); the state rule's own
    # thresholds are tested in tests/dsp/test_fatigue.py
    assert final.overall["mdf_slope_pct_per_min"] < -3.0, final.overall
    assert final.overall["mdf_change_pct"] < 0.0, final.overall

    # without the lead-in the tracker learns no rest level (the hold is far above a relaxed muscle's ceiling,
    # dsp.fatigue.FatigueSettings.max_rest_rms), so the hold still reads as one contraction once learning ends
    without = track_like_the_monitor(EmgSimulator(demo_config("--profile", "hold", "--rest-lead-in", "0")), seconds)
    learnt = np.array([not report.learning for report in without])
    assert np.array([report.active.mean() for report in without])[learnt].min() == 1.0
    assert without[-1].overall["contraction_s"] >= seconds - 6.0


@pytest.mark.timeout(60)
def test_live_hold_waits_for_its_consumer_so_the_lead_in_is_not_lost():
    import pylsl

    fs, duration_s = 512.0, 6.0
    source_id = f"nf-test-{uuid.uuid4().hex[:12]}"
    command = [sys.executable, "-m", "monitor.cli", "simulate", "--profile", "hold", "--fs", str(fs), "--chunk", "64"]
    command += ["--duration", str(duration_s), "--speed", "4", "--source-id", source_id, "--name", source_id]
    process = subprocess.Popen(command, cwd=REPO, env=dict(os.environ), stderr=subprocess.PIPE, text=True)
    try:
        found = pylsl.resolve_byprop("source_id", source_id, 1, 30.0)
        assert found, "simulated stream not found on loopback"
        # at --speed 4 the whole stream takes 1.5 s: one that had not waited would be over before we connect
        time.sleep(2.0)
        assert process.poll() is None
        inlet = pylsl.StreamInlet(found[0], max_buflen=30)
        inlet.open_stream(10.0)
        chunks = []
        received = 0
        give_up = time.monotonic() + 20.0
        while received < duration_s * fs and time.monotonic() < give_up:
            chunk, timestamps = inlet.pull_chunk(timeout=0.5)
            if timestamps:
                chunks.append(np.asarray(chunk, dtype=np.float64))
                received += len(timestamps)
        inlet.close_stream()
        del inlet
        _, errors = process.communicate(timeout=30)
        assert process.returncode == 0, errors
        assert "waiting for a consumer" in errors
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    data = np.concatenate(chunks)
    assert data.shape[0] == int(duration_s * fs)  # every sample, the lead-in included
    filtered, _ = default_chain(fs, data.shape[1], mains_hz=50.0).process(data)
    lead_in = int(REST_LEAD_IN_S * fs)
    rest = np.sqrt(np.mean(filtered[int(1.0 * fs) : lead_in] ** 2))
    contraction = np.sqrt(np.mean(filtered[lead_in + int(0.3 * fs) :] ** 2))
    assert contraction / rest > 10.0
