"""Simulated needle recordings at low effort, where single motor units can be isolated, and the matching of an
extracted unit to the true one: shared by the MUP tests, the GUI test and the MUP benchmark so all measure the same
subjects the same way."""

from __future__ import annotations

import numpy as np

from simulators.emg import EmgSimulator, SimulationConfig

FS = 10_000.0
SECONDS = 8.0
# low enough that units stand apart; myopathy recruits many small units early, neuropathy few large ones late
EFFORT = {"healthy": 5.0, "myopathy": 3.0, "neuropathy": 10.0}


def needle_subject(condition: str, seed: int, seconds: float = SECONDS) -> tuple[EmgSimulator, np.ndarray]:
    """(the simulator, with its spike times recorded, and ``seconds`` of its needle signal in µV)."""
    config = SimulationConfig(
        layout="needle", fs=FS, condition=condition, profile="hold", mvc_percent=EFFORT[condition], seed=seed,
        fatigue_rate=0.0, record_spikes=True,
    )
    simulator = EmgSimulator(config)
    return simulator, simulator.generate(seconds)


def match_unit(discharges: np.ndarray, simulator: EmgSimulator) -> tuple[int, float, int]:
    """(true unit, share of ``discharges`` (samples) locked to it within ±0.5 ms of one lag, its true discharge
    count) for the true unit that the extracted discharges follow best."""
    units = np.concatenate([u for u, _ in simulator.spike_log])
    times = np.concatenate([t for _, t in simulator.spike_log]) * simulator.fs
    tolerance = 0.5e-3 * simulator.fs
    best = (-1, 0.0, 0)
    for unit in np.unique(units):
        own = np.sort(times[units == unit])
        previous = np.searchsorted(own, discharges, side="right") - 1
        found = previous >= 0
        lags = discharges[found] - own[previous[found]]
        if lags.size == 0:
            continue
        share = float(np.mean(np.abs(lags - np.median(lags)) <= tolerance) * found.mean())
        if share > best[1]:
            best = (int(unit), share, int(own.size))
    return best
