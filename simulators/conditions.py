"""Neuromuscular conditions as ranges of motor-unit parameters; each simulated subject draws its own values.

Ranges follow the clinical picture (see the product brief): myopathy keeps the number of units but each has fewer
fibres (small, short, polyphasic MUAPs) so many units are recruited early; neuropathy loses units, the survivors
reinnervate orphaned fibres (large, long, polyphasic MUAPs) and fire faster because fewer are left to recruit.
Values are multipliers of a healthy reference unless the name says otherwise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

CONDITIONS = ("healthy", "myopathy", "neuropathy")


@dataclass(frozen=True)
class ConditionRanges:
    """(low, high) ranges a subject's parameters are drawn from, uniformly."""

    n_units: tuple[int, int]
    recruitment_range: tuple[float, float]  # largest / smallest recruitment threshold
    first_threshold: tuple[float, float]  # excitation (fraction of MVC) that recruits the first unit
    min_rate_hz: tuple[float, float]
    peak_rate_hz: tuple[float, float]
    isi_cov: tuple[float, float]
    amplitude_scale: tuple[float, float]
    duration_scale: tuple[float, float]
    extra_phases: tuple[int, int]  # satellite components beyond the main triphasic wave (inclusive range)
    phase_spread: tuple[float, float]  # satellite delays as a fraction of the MUAP duration


CONDITION_RANGES: dict[str, ConditionRanges] = {
    "healthy": ConditionRanges(
        n_units=(100, 120),
        recruitment_range=(25.0, 35.0),
        first_threshold=(0.015, 0.03),
        min_rate_hz=(7.0, 9.0),
        peak_rate_hz=(35.0, 40.0),
        isi_cov=(0.10, 0.20),
        amplitude_scale=(0.85, 1.15),
        duration_scale=(0.9, 1.1),
        extra_phases=(0, 1),
        phase_spread=(0.15, 0.3),
    ),
    "myopathy": ConditionRanges(
        n_units=(100, 120),
        recruitment_range=(6.0, 12.0),
        first_threshold=(0.005, 0.012),
        min_rate_hz=(8.0, 11.0),
        peak_rate_hz=(35.0, 45.0),
        isi_cov=(0.12, 0.22),
        amplitude_scale=(0.3, 0.55),
        duration_scale=(0.5, 0.65),
        extra_phases=(3, 6),
        phase_spread=(0.5, 0.8),
    ),
    "neuropathy": ConditionRanges(
        n_units=(40, 65),
        recruitment_range=(10.0, 20.0),
        first_threshold=(0.04, 0.08),
        min_rate_hz=(10.0, 14.0),
        peak_rate_hz=(45.0, 60.0),
        isi_cov=(0.10, 0.20),
        amplitude_scale=(2.2, 4.0),
        duration_scale=(1.5, 2.0),
        extra_phases=(3, 6),
        phase_spread=(0.5, 0.8),
    ),
}


@dataclass(frozen=True)
class SubjectParameters:
    """One simulated subject: a condition plus the values drawn for it and subject-level anatomy."""

    condition: str
    n_units: int
    recruitment_range: float
    first_threshold: float
    min_rate_hz: float
    peak_rate_hz: float
    isi_cov: float
    amplitude_scale: float
    duration_scale: float
    extra_phases: tuple[int, int]
    phase_spread: float
    fat_thickness_mm: float  # subcutaneous layer: widens and attenuates surface MUAPs
    conduction_velocity_m_s: float
    ring_rotation_rad: float  # how the armband sits on this subject's forearm

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def draw_subject(condition: str, rng: np.random.Generator) -> SubjectParameters:
    """Draws a subject with ``condition``; raises ValueError for an unknown condition."""
    if condition not in CONDITION_RANGES:
        raise ValueError(f"unknown condition {condition!r}: use one of {', '.join(CONDITIONS)}")
    ranges = CONDITION_RANGES[condition]

    def uniform(bounds: tuple[float, float]) -> float:
        return float(rng.uniform(*bounds))

    return SubjectParameters(
        condition=condition,
        n_units=int(rng.integers(ranges.n_units[0], ranges.n_units[1] + 1)),
        recruitment_range=uniform(ranges.recruitment_range),
        first_threshold=uniform(ranges.first_threshold),
        min_rate_hz=uniform(ranges.min_rate_hz),
        peak_rate_hz=uniform(ranges.peak_rate_hz),
        isi_cov=uniform(ranges.isi_cov),
        amplitude_scale=uniform(ranges.amplitude_scale),
        duration_scale=uniform(ranges.duration_scale),
        extra_phases=ranges.extra_phases,
        phase_spread=uniform(ranges.phase_spread),
        fat_thickness_mm=uniform((2.0, 6.0)),
        conduction_velocity_m_s=uniform((3.5, 4.8)),
        ring_rotation_rad=uniform((-0.3, 0.3)),
    )
