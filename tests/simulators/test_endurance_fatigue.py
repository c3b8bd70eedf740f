"""The endurance fatigue model: force-dependent spectral compression, more drive as the muscle tires, and an
endurance limit on Rohmert's curve; opt-in, so the legacy fatigue (and every legacy sample) is unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.emg import EmgSimulator, SimulationConfig
from simulators.fatigue import EnduranceFatigue, rohmert_endurance_s


def test_rohmert_curve_and_the_limit_is_reached_at_it_whatever_the_force():
    assert float(rohmert_endurance_s(0.5)) == pytest.approx(66.0, abs=1.0)  # elbow flexors: about a minute at 50 %
    assert float(rohmert_endurance_s(0.2)) > 5 * float(rohmert_endurance_s(0.5)) > 10 * float(rohmert_endurance_s(0.8))
    assert np.isinf(rohmert_endurance_s(0.1))  # below ~15 % MVC: held for very long
    fs = 100.0
    for level in (0.2, 0.5, 0.8):
        limit = float(rohmert_endurance_s(level))
        model = EnduranceFatigue()
        state = np.zeros(1)
        scale, capacity = model.advance(state, np.full((int(limit * fs), 1), level), fs)
        assert state[0] == pytest.approx(1.0, abs=0.01)
        assert capacity[-1, 0] == pytest.approx(level, abs=0.01)  # at the limit the muscle's MVC is the held force
        assert scale[-1, 0] == pytest.approx(model.time_scale_at_limit, abs=0.01)
    # the spectrum compresses faster the higher the force; rest recovers
    rates = []
    for level in (0.2, 0.5, 0.8):
        scale, _ = EnduranceFatigue().advance(np.zeros(1), np.full((1000, 1), level), fs)
        rates.append(1.0 - scale[-1, 0])
    assert rates[0] < rates[1] < rates[2]
    state = np.array([0.8])
    EnduranceFatigue().advance(state, np.zeros((6000, 1)), fs)
    assert state[0] < 0.3


def test_a_tiring_hold_needs_more_drive_and_is_chunk_invariant():
    def config() -> SimulationConfig:
        return SimulationConfig(layout="grid2x2", fs=1024.0, profile="hold", mvc_percent=80.0, seed=2, artifacts=(),
                                fatigue_model="endurance", record_spikes=True)

    sim = EmgSimulator(config())
    first = sim.generate(2.0)
    early = sim.ground_truth()
    sim.generate(6.0)
    late = sim.ground_truth()
    assert late["capacity"] < early["capacity"] < 1.0 and late["relative_cv"] < early["relative_cv"]
    assert late["true_mdf_hz"] < early["true_mdf_hz"]
    spikes_early = sum(u.size for u, _ in sim.spike_log[:8])
    spikes_late = sum(u.size for u, _ in sim.spike_log[24:32])
    assert spikes_late > spikes_early  # recruitment and rate coding rise at constant force
    other = EmgSimulator(config())
    chunks = [other.read(n) for n in (1, 700, 33, 1314)]
    assert np.array_equal(np.concatenate(chunks), first)


def test_fatigue_model_is_checked():
    with pytest.raises(ValueError, match="unknown fatigue model"):
        EmgSimulator(SimulationConfig(fatigue_model="metabolic"))


def test_a_recording_names_the_endurance_model_version():
    from simulators.emg import ENDURANCE_FATIGUE_VERSION
    from simulators.files import record

    config = SimulationConfig(layout="grid2x2", fs=1024.0, profile="hold", mvc_percent=50.0, artifacts=(),
                              fatigue_model="endurance")
    recording = record(EmgSimulator(config), 0.5)
    assert recording.config["endurance_fatigue_version"] == ENDURANCE_FATIGUE_VERSION
    assert recording.config["fatigue_model"] == "endurance"
    assert "capacity" in recording.marker_texts[-1]


def test_a_low_force_hold_ends_below_the_maximal_drive_a_high_force_one_near_it():
    """Fuglevand et al. 1993: the EMG at the endurance limit is below its maximum, more so the lower the force; at
    the limit the voluntary MVC is the held force (Lind & Petrofsky 1979) and past it the force is not reached."""
    from simulators.fatigue import drive_deficit_at_limit

    assert float(drive_deficit_at_limit(0.2)) == pytest.approx(0.55)
    assert float(drive_deficit_at_limit(0.65)) == pytest.approx(0.19)
    assert 0.0 <= float(drive_deficit_at_limit(0.9)) < float(drive_deficit_at_limit(0.5)) < 0.55
    fs = 100.0
    drives = []
    for level in (0.2, 0.5, 0.8):
        model = EnduranceFatigue()
        state = np.zeros(1)
        held = np.full((int(float(rohmert_endurance_s(level)) * fs), 1), level)
        _, capacity = model.advance(state, held, fs)
        demand = model.demand(held, capacity)[:, 0]
        assert demand[0] == pytest.approx(level, abs=1e-4)  # fresh: the drive of the force itself
        assert np.all(np.diff(demand) >= -1e-12)  # more drive as the muscle tires
        drives.append(demand[-1])
        assert demand[-1] == pytest.approx(1.0 - float(drive_deficit_at_limit(level)), abs=0.01)
        past = model.demand(np.array([level]), np.array([0.5 * level]))  # past the limit: capped at the ceiling
        assert float(past[0]) <= demand[-1] + 1e-9
    assert drives[0] < drives[1] < drives[2] <= 1.0
    # with a force model the ceiling is a drive: the demand is the fresh force that drive makes
    model = EnduranceFatigue(force_fraction=lambda d: np.sqrt(d))
    assert float(model.demand(np.array([0.2]), np.array([0.2]))[0]) == pytest.approx(np.sqrt(0.45), abs=1e-6)


def test_a_stretched_potential_keeps_its_energy():
    """Fuglevand et al. 1993: the M wave lengthens and loses amplitude with its area kept; with amplitude x s^-0.5
    the expected power of the same discharges is unchanged by the stretch (the spectrum moves down)."""
    sim = EmgSimulator(SimulationConfig(layout="grid2x2", fs=1024.0, profile="hold", mvc_percent=50.0, seed=1,
                                        artifacts=(), fatigue_model="endurance"))
    activation = np.array([0.5])
    fresh = sim.expected_psd(activation, np.array([1.0]))
    tired = sim.expected_psd(activation, np.array([0.6]))
    assert tired.sum() == pytest.approx(fresh.sum(), rel=0.1)
    freqs = sim._freqs
    assert (freqs * tired).sum() / tired.sum() < 0.75 * (freqs * fresh).sum() / fresh.sum()
