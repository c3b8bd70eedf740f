"""Motor-unit pools (Fuglevand et al. 1993) per muscle, the muscles under each layout, and spike generation.

Geometry uses one 3-D frame per layout kind, in mm: for a ring, x/y on the forearm cross-section (electrodes on
the skin at the layout's positions, z = 0); for a grid, x/y on the skin under the grid and z = -depth; for a needle,
the cross-section of one muscle with the needle tip at the origin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulators.conditions import SubjectParameters
from simulators.electrodes import ElectrodeLayout

# Forearm muscles around the cross-section (angle in degrees from electrode E01, depth of the belly below the fat
# in mm). Rough anatomy: flexors on the volar side, extensors on the dorsal side, pronator teres deep.
FOREARM_MUSCLES: dict[str, tuple[float, float]] = {
    "brachioradialis": (10.0, 7.0),
    "pronator_teres": (40.0, 13.0),
    "flexor_carpi_radialis": (70.0, 8.0),
    "flexor_digitorum_superficialis": (110.0, 11.0),
    "flexor_carpi_ulnaris": (155.0, 8.0),
    "extensor_carpi_ulnaris": (215.0, 8.0),
    "extensor_digitorum": (265.0, 8.0),
    "extensor_carpi_radialis": (315.0, 8.0),
}

# Activation of each forearm muscle (fraction of the commanded %MVC) per gesture; labels as in the Myo dataset.
FOREARM_GESTURES: dict[str, dict[str, float]] = {
    "rest": {},
    "wrist_flexion": {"flexor_carpi_radialis": 1.0, "flexor_carpi_ulnaris": 0.8, "flexor_digitorum_superficialis": 0.5},
    "wrist_extension": {"extensor_carpi_radialis": 1.0, "extensor_carpi_ulnaris": 0.8, "extensor_digitorum": 0.6},
    "radial_deviation": {"flexor_carpi_radialis": 0.7, "extensor_carpi_radialis": 0.9, "brachioradialis": 0.5},
    "ulnar_deviation": {"flexor_carpi_ulnaris": 0.9, "extensor_carpi_ulnaris": 1.0},
    "pronation": {"pronator_teres": 1.0, "flexor_carpi_radialis": 0.3, "brachioradialis": 0.3},
    "supination": {"brachioradialis": 0.7, "extensor_digitorum": 0.3, "extensor_carpi_ulnaris": 0.3},
    "fist": {
        "flexor_digitorum_superficialis": 1.0,
        "flexor_carpi_radialis": 0.5,
        "flexor_carpi_ulnaris": 0.5,
        "extensor_digitorum": 0.4,
        "extensor_carpi_radialis": 0.4,
    },
}
SINGLE_MUSCLE_GESTURES: dict[str, dict[str, float]] = {"rest": {}, "contraction": {"muscle": 1.0}}


@dataclass(frozen=True)
class MotorUnitPool:
    """All motor units of all muscles under a layout, one entry per unit (index u)."""

    muscle_names: tuple[str, ...]
    muscle_index: np.ndarray  # (U,) which muscle each unit belongs to
    position_mm: np.ndarray  # (U, 3) centre of the unit's territory
    territory_mm: np.ndarray  # (U,) radius of the territory
    size: np.ndarray  # (U,) 1 for the smallest unit, up to the recruitment range (size principle)
    threshold: np.ndarray  # (U,) recruitment excitation, fraction of MVC
    min_rate_hz: np.ndarray
    peak_rate_hz: np.ndarray
    rate_gain: np.ndarray  # Hz per unit of excitation above threshold
    isi_cov: float | np.ndarray  # one CoV for the pool, or one per unit

    @property
    def n_units(self) -> int:
        return int(self.threshold.shape[0])

    def firing_rate(self, excitation: np.ndarray, units: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Rate of ``units`` at ``excitation`` (same shape); 0 below threshold."""
        threshold = self.threshold[units]
        linear = self.min_rate_hz[units] + self.rate_gain[units] * (excitation - threshold)
        rate = np.minimum(self.peak_rate_hz[units], linear)
        return np.where(excitation >= threshold, rate, 0.0)


def gestures_for(layout: ElectrodeLayout) -> dict[str, dict[str, float]]:
    """Gesture -> muscle activation table for the muscles a layout sits over."""
    return FOREARM_GESTURES if layout.kind == "ring" else SINGLE_MUSCLE_GESTURES


def with_spontaneous_units(pool: MotorUnitPool, rates_hz: np.ndarray, isi_cov: np.ndarray) -> MotorUnitPool:
    """``pool`` plus sources that fire at fixed rates whatever the drive (denervated fibres' fibrillations)."""
    n = rates_hz.size
    zeros = np.zeros(n)
    return MotorUnitPool(
        muscle_names=pool.muscle_names,
        muscle_index=np.concatenate([pool.muscle_index, np.zeros(n, dtype=pool.muscle_index.dtype)]),
        position_mm=np.vstack([pool.position_mm, np.zeros((n, 3))]),
        territory_mm=np.concatenate([pool.territory_mm, zeros]),
        size=np.concatenate([pool.size, zeros]),
        threshold=np.concatenate([pool.threshold, zeros]),
        min_rate_hz=np.concatenate([pool.min_rate_hz, rates_hz]),
        peak_rate_hz=np.concatenate([pool.peak_rate_hz, rates_hz]),
        rate_gain=np.concatenate([pool.rate_gain, zeros]),
        isi_cov=np.concatenate([np.broadcast_to(pool.isi_cov, (pool.n_units,)), isi_cov]),
    )


def build_pool(layout: ElectrodeLayout, subject: SubjectParameters, rng: np.random.Generator) -> MotorUnitPool:
    """Places ``subject.n_units`` units per muscle under ``layout`` with Fuglevand recruitment and rate coding."""
    names = tuple(FOREARM_MUSCLES) if layout.kind == "ring" else ("muscle",)
    per_muscle = [_muscle_units(layout, subject, name, rng) for name in names]
    muscle_index = np.concatenate([np.full(len(p), m) for m, p in enumerate(per_muscle)])
    positions = np.concatenate(per_muscle)
    n = subject.n_units
    order = np.arange(n) / max(n - 1, 1)
    first = min(subject.first_threshold, 0.8 / subject.recruitment_range)
    threshold_one = first * np.exp(math.log(subject.recruitment_range) * order)
    size_one = threshold_one / threshold_one[0]
    # later-recruited units peak lower (Fuglevand's 10 Hz spread, narrowed to keep peaks in the 35-40 Hz band)
    peak_one = subject.peak_rate_hz - 5.0 * order
    gain = (peak_one[-1] - subject.min_rate_hz) / max(1.0 - threshold_one[-1], 0.05)
    n_muscles = len(names)
    territory = 2.0 + 3.0 * np.sqrt(size_one / size_one[-1])
    if subject.condition == "neuropathy":
        territory = territory * rng.uniform(1.2, 1.4)  # reinnervation enlarges territories
    return MotorUnitPool(
        muscle_names=names,
        muscle_index=muscle_index,
        position_mm=positions,
        territory_mm=np.tile(territory, n_muscles),
        size=np.tile(size_one, n_muscles),
        threshold=np.tile(threshold_one, n_muscles),
        min_rate_hz=np.full(n * n_muscles, subject.min_rate_hz),
        peak_rate_hz=np.tile(peak_one, n_muscles),
        rate_gain=np.full(n * n_muscles, gain),
        isi_cov=subject.isi_cov,
    )


def _muscle_units(
    layout: ElectrodeLayout, subject: SubjectParameters, name: str, rng: np.random.Generator
) -> np.ndarray:
    n = subject.n_units
    if layout.kind == "ring":
        angle_deg, depth = FOREARM_MUSCLES[name]
        radius = float(np.hypot(*layout.positions_mm[0]))
        angle = math.radians(angle_deg) + subject.ring_rotation_rad
        centre_r = radius - subject.fat_thickness_mm - depth
        # units scatter across the belly: ~8 mm around the forearm, ~4 mm in depth
        along = rng.normal(0.0, 8.0, n) / max(centre_r, 1.0)
        r = np.clip(centre_r + rng.normal(0.0, 4.0, n), 5.0, radius - subject.fat_thickness_mm - 1.0)
        return np.column_stack([r * np.cos(angle + along), r * np.sin(angle + along), np.zeros(n)])
    if layout.kind == "needle":
        # uniform over a 10 mm-radius cross-section; the needle tip sits at the origin
        rho = 10.0 * np.sqrt(rng.uniform(0.0, 1.0, n))
        phi = rng.uniform(0.0, 2.0 * math.pi, n)
        return np.column_stack([rho * np.cos(phi), rho * np.sin(phi), np.zeros(n)])
    lo, hi = layout.positions_mm.min(axis=0), layout.positions_mm.max(axis=0)
    x = rng.uniform(lo[0] - 5.0, hi[0] + 5.0, n)
    # y is the unit's innervation zone: a band across the middle of the grid, from which MUAPs propagate along y
    y = rng.normal(0.5 * (lo[1] + hi[1]), 0.12 * (hi[1] - lo[1]) + 1.0, n)
    z = -(subject.fat_thickness_mm + rng.uniform(1.0, 15.0, n))
    return np.column_stack([x, y, z])


class SpikeGenerator:
    """Draws discharge times for every unit block by block; state carries over so blocks join seamlessly.

    Units not yet recruited poll their excitation every ~60 ms, which bounds recruitment latency."""

    poll_interval_s = 0.06

    def __init__(self, pool: MotorUnitPool, rng: np.random.Generator) -> None:
        self.pool = pool
        self.rng = rng
        self.next_event_s = rng.uniform(0.0, self.poll_interval_s, pool.n_units)

    def block(self, start_s: float, excitation: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
        """Spikes in [start_s, start_s + len(excitation)/fs): (unit indices, times in s), time-sorted per unit.

        ``excitation`` is (N, n_muscles): each muscle's drive (fraction of MVC) at each sample of the block."""
        n_samples = excitation.shape[0]
        end_s = start_s + n_samples / fs
        pool = self.pool
        units_out: list[np.ndarray] = []
        times_out: list[np.ndarray] = []
        while True:
            due = np.flatnonzero(self.next_event_s < end_s)
            if due.size == 0:
                break
            t = self.next_event_s[due]
            index = np.clip(((t - start_s) * fs).astype(np.int64), 0, n_samples - 1)
            drive = excitation[index, pool.muscle_index[due]]
            rate = pool.firing_rate(drive, due)
            fires = rate > 0
            units_out.append(due[fires])
            times_out.append(t[fires])
            cov = pool.isi_cov if np.ndim(pool.isi_cov) == 0 else pool.isi_cov[due]
            jitter = 1.0 + cov * self.rng.standard_normal(due.size)
            safe_rate = np.where(fires, rate, 1.0)
            interval = np.where(fires, np.maximum(jitter, 0.3) / safe_rate, self.poll_interval_s)
            self.next_event_s[due] = t + interval
        if not units_out:
            return np.empty(0, np.int64), np.empty(0)
        return np.concatenate(units_out), np.concatenate(times_out)
