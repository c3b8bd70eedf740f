"""Simulated needle recordings at low effort, where single motor units can be isolated: shared by the MUP tests and
the MUP benchmark so both measure the same subjects."""

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
