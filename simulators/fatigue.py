"""Muscle-fibre conduction velocity during sustained contraction and rest.

The relative conduction velocity r (1 = fresh) falls linearly in time while a muscle contracts above
``threshold`` of MVC, at ``rate_per_min`` (fraction of the fresh value per minute) for a 50% MVC contraction and
in proportion to the excess above threshold otherwise; at rest it recovers exponentially toward 1. MUAPs stretch
in time by 1 / r, so mean and median frequency fall in proportion to r (roughly linearly in time, as measured)
while the signal's RMS rises by about sqrt(1 / r) because each MUAP carries more energy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

REFERENCE_LEVEL = 0.5
SUBSTEP_SAMPLES = 16


@dataclass
class FatigueModel:
    # MUAPs stretch with their amplitude kept (the legacy model the bundled models were trained on)
    amplitude_exponent: ClassVar[float] = 0.0
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


# Rohmert's endurance curve holds from ~15 % MVC up; below it a contraction can be held for very long (Rohmert 1960)
ENDURANCE_THRESHOLD = 0.15


def rohmert_endurance_s(level: np.ndarray | float) -> np.ndarray:
    """Endurance time (s) of a sustained isometric contraction at ``level`` (fraction of MVC): Rohmert's curve
    ET = -1.5 + 2.1/f - 0.6/f² + 0.1/f³ minutes (Rohmert 1960, Int Z angew Physiol 18:123); infinite at or below
    ENDURANCE_THRESHOLD."""
    f = np.clip(np.asarray(level, dtype=np.float64), ENDURANCE_THRESHOLD, 1.0)
    minutes = -1.5 + 2.1 / f - 0.6 / f**2 + 0.1 / f**3
    return np.where(np.asarray(level) > ENDURANCE_THRESHOLD, 60.0 * minutes, np.inf)


# Fuglevand, Zackowski, Huey & Enoka 1993 (J Physiol 460:549; first dorsal interosseous held at 20, 35 or 65 %MVC to
# the endurance limit): the EMG at the limit was below its maximum in every subject, by 19-55 % of the maximum, the
# deficit inversely related to the held force; Lind & Petrofsky 1979 (Muscle Nerve 2:257): the EMG of brief maximal
# efforts fell through a 25 %MVC hold and not through a 70 %MVC one. The ends of the range are taken at the lowest
# and highest force studied (an assumption: the abstract gives the range and its direction, not the group means).
DRIVE_DEFICIT_LOW = (0.20, 0.55)
DRIVE_DEFICIT_HIGH = (0.65, 0.19)
# Fuglevand et al. 1993: the M wave fell 12-23 % in amplitude and lengthened 33-51 %, its area unchanged. A potential
# stretched s-fold whose amplitude goes as s^-a: those ranges give a = 0.31-0.91 however they pair (0.45 and 0.63
# paired in order); a = 0.5 keeps each discharge's energy (amplitude² x duration), the model's lengthening being the
# spectrum's (-45 % at the limit), larger than the M wave's.
AMPLITUDE_EXPONENT = 0.5


def drive_deficit_at_limit(level: np.ndarray | float) -> np.ndarray:
    """Share of the maximal voluntary drive lost by the endurance limit of a hold at ``level`` (fraction of MVC):
    linear between DRIVE_DEFICIT_LOW and DRIVE_DEFICIT_HIGH, extrapolated, within [0, 0.55]."""
    (f_low, d_low), (f_high, d_high) = DRIVE_DEFICIT_LOW, DRIVE_DEFICIT_HIGH
    slope = (d_high - d_low) / (f_high - f_low)
    return np.clip(d_low + slope * (np.asarray(level, dtype=np.float64) - f_low), 0.0, d_low)


@dataclass
class EnduranceFatigue:
    """Fatigue that ends at an endurance limit set by force (``SimulationConfig(fatigue_model="endurance")``).

    Per muscle a fatigue state φ grows at 1 / ET(f) while the muscle holds a share f of its MVC above
    ENDURANCE_THRESHOLD (ET from Rohmert's curve times the subject's ``endurance_scale``), so that φ reaches 1 at the
    endurance limit whatever the force, and recovers exponentially at rest. Two things follow from φ:
    - the MUAP time scale r = 1 - (1 - ``time_scale_at_limit``) φ: MUAPs stretch by 1 / r (conduction slows and the
      intracellular action potential lengthens), so the spectrum compresses faster the higher the force;
    - the muscle's capacity, c = 1 - φ (1 - f): the share of the fresh MVC it can still make. Holding force f then
      takes the drive that makes f / c of the fresh muscle: more units are recruited and fire faster as the muscle
      tires, which raises the EMG amplitude at constant force, and at φ = 1 (c = f) the drive is at its maximum:
      the endurance limit. Beyond it the force can no longer be held.
    Two further changes follow published physiology (``demand``, ``amplitude_exponent``):
    - the maximal voluntary drive falls, m = 1 - φ D(f) with D the drive deficit at the limit
      (``drive_deficit_at_limit``: larger the lower the force), so that a long low-force hold ends with the pool
      below full recruitment and peak rates, as real holds end with the EMG below its maximum; the muscle's own
      force per drive, c / F(m) (F the fresh force at drive m, a share of the MVC), then falls by the rest, and the
      voluntary MVC at the limit is still the held force (strength falls linearly to it: Lind & Petrofsky 1979);
    - each discharge's potential is stretched by 1 / r with its amplitude scaled by r^a, a = ``amplitude_exponent``
      (the M wave's amplitude falls and its area stays as it lengthens: Fuglevand et al. 1993).
    """

    endurance_scale: float = 1.0
    time_scale_at_limit: float = 0.55
    recovery_per_min: float = 1.0
    most: float = 1.5  # φ stops growing here: r and c stay finite when a contraction is held past its limit
    amplitude_exponent: float = AMPLITUDE_EXPONENT
    # the fresh muscle's force at a drive, as a share of its MVC (the twitch force model's curve); None: the drive is
    # the force (legacy MUAPs, where %MVC is drive)
    force_fraction: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.endurance_scale <= 0 or self.recovery_per_min < 0 or not 0.0 < self.time_scale_at_limit <= 1.0:
            raise ValueError("endurance scale must be positive, recovery not negative, time scale in (0, 1]")
        if self.amplitude_exponent < 0:
            raise ValueError("amplitude exponent must not be negative")

    @property
    def floor(self) -> float:
        """The lowest MUAP time scale this model reaches (sizes the renderer's tail and spectra)."""
        return 1.0 - (1.0 - self.time_scale_at_limit) * self.most

    def advance(self, state: np.ndarray, activation: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
        """(MUAP time scale r, capacity c), each (N, M), for activations (N, M) in fraction of MVC; ``state`` (M,)
        is φ before the first sample, updated in place. Evaluated once per SUBSTEP_SAMPLES samples (the endurance
        times are seconds to minutes)."""
        n_samples = activation.shape[0]
        phi = np.empty_like(activation, dtype=np.float64)
        recovery = self.recovery_per_min / 60.0 / fs
        for start in range(0, n_samples, SUBSTEP_SAMPLES):
            level = activation[start : start + SUBSTEP_SAMPLES]
            growth = 1.0 / (rohmert_endurance_s(level) * self.endurance_scale * fs)
            resting = np.clip(1.0 - level / ENDURANCE_THRESHOLD, 0.0, 1.0)
            step = growth - recovery * resting * state
            values = np.clip(state + np.cumsum(step, axis=0), 0.0, self.most)
            phi[start : start + SUBSTEP_SAMPLES] = values
            state[:] = values[-1]
        time_scale = 1.0 - (1.0 - self.time_scale_at_limit) * phi
        capacity = 1.0 - phi * (1.0 - np.clip(activation, 0.0, 1.0))
        return time_scale, np.maximum(capacity, 1e-3)

    def max_drive(self, level: np.ndarray, capacity: np.ndarray) -> np.ndarray:
        """Maximal voluntary drive m = 1 - φ D(f) at each sample, φ read back from the capacity at the held ``level``
        (c = 1 - φ (1 - f))."""
        f = np.clip(np.asarray(level, dtype=np.float64), 0.0, 1.0)
        phi = np.clip((1.0 - np.asarray(capacity, dtype=np.float64)) / np.maximum(1.0 - f, 1e-9), 0.0, self.most)
        return np.maximum(1.0 - phi * drive_deficit_at_limit(f), 1e-3)

    def demand(self, level: np.ndarray, capacity: np.ndarray) -> np.ndarray:
        """The fresh muscle's force (share of its MVC) whose drive holds ``level`` (fraction of MVC) at ``capacity``:
        level F(m) / c, at most F(m): at the limit (c = f) the drive is the maximal voluntary drive m, beyond it the
        force is not reached."""
        ceiling = self.max_drive(level, capacity)
        force_at_ceiling = ceiling if self.force_fraction is None else self.force_fraction(ceiling)
        return force_at_ceiling * np.minimum(np.asarray(level, dtype=np.float64) / capacity, 1.0)
