"""Muscle-fibre conduction velocity during sustained contraction and rest.

The relative conduction velocity r (1 = fresh) falls linearly in time while a muscle contracts above
``threshold`` of MVC, at ``rate_per_min`` (fraction of the fresh value per minute) for a 50% MVC contraction and
in proportion to the excess above threshold otherwise; at rest it recovers exponentially toward 1. MUAPs stretch
in time by 1 / r, so mean and median frequency fall in proportion to r (roughly linearly in time, as measured)
while the signal's RMS rises by about sqrt(1 / r) because each MUAP carries more energy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REFERENCE_LEVEL = 0.5
SUBSTEP_SAMPLES = 16


@dataclass
class FatigueModel:
    rate_per_min: float = 0.15
    recovery_per_min: float = 1.0
    threshold: float = 0.1
    floor: float = 0.5

    def __post_init__(self) -> None:
        if self.rate_per_min < 0 or self.recovery_per_min < 0:
            raise ValueError("fatigue and recovery rates must not be negative")
        if not 0.0 < self.floor <= 1.0 or not 0.0 <= self.threshold < REFERENCE_LEVEL:
            raise ValueError(f"fatigue floor must be in (0, 1] and threshold in [0, {REFERENCE_LEVEL})")

    def advance(self, state: np.ndarray, activation: np.ndarray, fs: float) -> np.ndarray:
        """Relative conduction velocity at each sample, (N, M), for muscle activations (N, M) in fraction of MVC.

        ``state`` (M,) is the velocity before the first sample and is updated in place to the value after the last.
        The recovery term is evaluated once per 16 samples, far finer than its minute-long time constant."""
        n_samples = activation.shape[0]
        result = np.empty_like(activation, dtype=np.float64)
        decline = self.rate_per_min / 60.0 / fs / (REFERENCE_LEVEL - self.threshold)
        recovery = self.recovery_per_min / 60.0 / fs
        for start in range(0, n_samples, SUBSTEP_SAMPLES):
            level = activation[start : start + SUBSTEP_SAMPLES]
            excess = np.maximum(level - self.threshold, 0.0)
            resting = np.clip(1.0 - level / self.threshold, 0.0, 1.0) if self.threshold > 0 else 0.0 * level
            step = -decline * excess + recovery * resting * (1.0 - state)
            values = np.clip(state + np.cumsum(step, axis=0), self.floor, 1.0)
            result[start : start + SUBSTEP_SAMPLES] = values
            state[:] = values[-1]
        return result
