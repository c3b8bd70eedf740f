"""Neuromuscular jitter and blocking: the fibres nearest the needle, which shape a MUAP's spike, are rendered on
their own, each discharge moving them by the fibre's transmission jitter and sometimes dropping them (blocking), so
that a reinnervated unit's MUAP changes from discharge to discharge as in clinics (MUP instability).

The unit's cached template keeps the rest of its fibres; each near fibre is a child template, advanced by
``LEAD_S`` so that a child fired at parent time + LEAD_S + jitter never starts before its parent's discharge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulators.fibres import CANNULA_RADIUS_MM, CORE_LENGTH_MM, Fibres

LEAD_S = 0.5e-3  # children are advanced by this much; jitter is clipped at -LEAD_S
NEAR_MM = 0.5  # fibres this close to the core's centre shape the spike
PER_UNIT = 4  # at most this many near fibres per unit are rendered on their own


def near_fibres(fibres: Fibres, n_units: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices into ``fibres`` of the near fibres rendered on their own, their units), at most PER_UNIT per unit,
    nearest first; only units below ``n_units`` (motor units, not fibrillating fibres)."""
    centre = np.array([-0.5 * CORE_LENGTH_MM, 0.5 * CANNULA_RADIUS_MM])
    distance = np.hypot(*(fibres.xy_mm - centre).T)
    candidates = np.flatnonzero((distance < NEAR_MM) & (fibres.unit < n_units))
    order = candidates[np.lexsort((distance[candidates], fibres.unit[candidates]))]
    chosen = [i for unit in np.unique(fibres.unit[order]) for i in order[fibres.unit[order] == unit][:PER_UNIT]]
    chosen_array = np.asarray(chosen, dtype=np.int64)
    return chosen_array, fibres.unit[chosen_array]


def subset(fibres: Fibres, indices: np.ndarray) -> Fibres:
    """The fibres at ``indices``, each its own unit 0..K-1."""
    k = indices.size
    return Fibres(
        unit=np.arange(k), xy_mm=fibres.xy_mm[indices], endplate_mm=fibres.endplate_mm[indices],
        half_length_mm=fibres.half_length_mm[indices], diameter_um=fibres.diameter_um[indices],
        delay_s=fibres.delay_s[indices], counts=np.ones(k, dtype=np.int64), area_mm2=np.zeros(k),
        healthy_area_mm2=np.zeros(k),
    )


def split_templates(full: np.ndarray, children: np.ndarray, parents: np.ndarray, fs: float) -> np.ndarray:
    """(U + K, T): each unit's template less its children, then the children advanced by LEAD_S."""
    length = max(full.shape[1], children.shape[1])
    rest = np.zeros((full.shape[0], length))
    rest[:, : full.shape[1]] = full
    padded = np.zeros((children.shape[0], length))
    padded[:, : children.shape[1]] = children
    np.subtract.at(rest, parents, padded)
    lead = int(round(LEAD_S * fs))
    advanced = np.zeros_like(padded)
    advanced[:, : length - lead] = padded[:, lead:]
    return np.vstack([rest, advanced])


@dataclass(frozen=True)
class FibreJitter:
    """Child k belongs to unit ``parents[k]`` and is rendered as unit ``first_child + k``."""

    parents: np.ndarray
    first_child: int
    sd_s: float
    blocking: float

    def margin_s(self) -> float:
        """How far past its parent's discharge a child can be fired."""
        return LEAD_S + 6.0 * self.sd_s

    def expand(self, units: np.ndarray, times: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The discharges plus every child's, moved by its jitter, less the blocked ones."""
        if self.parents.size == 0 or units.size == 0:
            return units, times
        match = units[:, None] == self.parents[None, :]  # (S, K): spike s drives child k
        spike, child = np.nonzero(match)
        shift = np.maximum(rng.normal(0.0, self.sd_s, spike.size), -LEAD_S)
        shift = np.minimum(shift, self.margin_s() - LEAD_S)
        kept = rng.uniform(0.0, 1.0, spike.size) >= self.blocking
        child_units = self.first_child + child[kept]
        child_times = times[spike[kept]] + LEAD_S + shift[kept]
        return np.concatenate([units, child_units]), np.concatenate([times, child_times])


def margin_samples(jitter: FibreJitter | None, fs: float) -> int:
    return 0 if jitter is None else int(math.ceil(jitter.margin_s() * fs)) + 2
