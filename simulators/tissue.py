"""Disease as changes of the muscle tissue, each condition with a severity; every subject draws its own values.

The fibre-level needle model (``simulators.fibres``) grows each motor unit's muscle fibres from these numbers, so
that a MUP's size, duration and phases come out of the fibres near the needle, never out of a scale factor:
- healthy: fibres of a unit scattered through its territory at the normal single-fibre-EMG fibre density, diameters
  around 55 µm, end-plates in a narrow band;
- myopathy: fibres lost at random, the survivors' diameters more variable (atrophic and hypertrophic fibres, and so
  slower and faster conduction), some fibres split in two; the number of units is kept;
- neuropathy (with reinnervation): units lost; the survivors adopt orphaned fibres by collateral sprouting, up to
  5-8 times their own fibres: each adopted fibre lies next to a parent fibre of the unit (fibre-type grouping:
  higher fibre density, a territory grown only at its edge) with its end-plate near the parent's; early in reinnervation
  (maturity 0) the sprouts are thin and slow (more spread of neuromuscular delays, some fibres reached late:
  satellites), in chronic reinnervation (maturity 1) they have matured.
Severity ranges overlap between neighbours, so a mild case can look like a healthy one, as in clinics.
Sources of the numbers: docs/simulator.md, "Fibre-level needle model".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

SEVERITIES = ("mild", "moderate", "severe")

Range = tuple[float, float]


@dataclass(frozen=True)
class TissueRanges:
    """(low, high) ranges a subject's tissue is drawn from, uniformly."""

    fibre_density_per_mm2: Range  # fibres of one unit per mm² of its territory before disease
    diameter_mean_um: Range
    diameter_sd_um: Range
    fibre_loss: Range  # share of each unit's fibres lost (myopathy)
    split_fraction: Range  # share of surviving fibres split in two (myopathy)
    unit_loss: Range  # share of the motor units lost (neuropathy)
    reinnervated: Range  # share of the orphaned fibres adopted by surviving units (neuropathy)
    # relative growth of a surviving unit's territory radius (neuropathy): 0 since fibre model .6, the territory
    # grows only by the adopted groups around its edge fibres (simulators.fibres.grow_fibres); still drawn so that
    # every other field keeps its draw
    territory_gain: Range
    endplate_sd_mm: Range  # scatter of a unit's end-plates along the fibres
    adopted_endplate_sd_mm: Range  # axial distance (SD) of an adopted fibre's end-plate from its sprouting terminal's
    adopted_delay_sd_ms: Range  # spread of neuromuscular delays through new, thin (unmyelinated) terminal sprouts
    adopted_diameter_um: Range  # mean diameter of adopted fibres (grown back to about normal size)
    late_fraction: Range  # share of adopted fibres reached through long sprouts (satellite potentials) when early
    maturity: Range  # 0 = early reinnervation (sprouts thin and slow, satellites), 1 = chronic (sprouts matured)
    max_enlargement: Range  # most fibres a unit can innervate, as a multiple of its own (reinnervation capacity)
    fibrillating: Range  # denervated fibres within ~0.6 mm of the tip that fire at rest (rounded down)
    jitter_us: Range  # SD of each fibre's neuromuscular transmission time from discharge to discharge
    blocking: Range  # probability that a fibre's transmission fails at a discharge


_HEALTHY = TissueRanges(
    fibre_density_per_mm2=(4.0, 6.0),
    diameter_mean_um=(50.0, 60.0),
    diameter_sd_um=(7.0, 10.0),
    fibre_loss=(0.0, 0.0),
    split_fraction=(0.0, 0.0),
    unit_loss=(0.0, 0.0),
    reinnervated=(0.0, 0.0),
    territory_gain=(0.0, 0.0),
    endplate_sd_mm=(0.6, 1.2),
    adopted_endplate_sd_mm=(0.0, 0.0),
    adopted_delay_sd_ms=(0.0, 0.0),
    adopted_diameter_um=(0.0, 0.0),
    late_fraction=(0.0, 0.0),
    maturity=(1.0, 1.0),
    max_enlargement=(5.0, 8.0),
    fibrillating=(0.0, 0.0),
    jitter_us=(15.0, 25.0),
    blocking=(0.0, 0.0),
)


def _myopathy(
    loss: Range, mean: Range, sd: Range, split: Range, fibrillating: Range, jitter: Range, blocking: Range
) -> TissueRanges:
    return TissueRanges(
        **{**asdict(_HEALTHY), "fibre_loss": loss, "diameter_mean_um": mean, "diameter_sd_um": sd,
           "split_fraction": split, "fibrillating": fibrillating, "jitter_us": jitter, "blocking": blocking}
    )


def _neuropathy(
    loss: Range, territory: Range, delay: Range, late: Range, fibrillating: Range, jitter: Range, blocking: Range
) -> TissueRanges:
    return TissueRanges(
        **{**asdict(_HEALTHY), "unit_loss": loss, "reinnervated": (0.7, 1.0), "territory_gain": territory,
           "adopted_endplate_sd_mm": (0.2, 0.5), "adopted_delay_sd_ms": delay, "adopted_diameter_um": (45.0, 60.0),
           "late_fraction": late, "maturity": (0.0, 1.0), "fibrillating": fibrillating, "jitter_us": jitter,
           "blocking": blocking}
    )


TISSUE_RANGES: dict[tuple[str, str], TissueRanges] = {
    ("healthy", "none"): _HEALTHY,
    ("myopathy", "mild"): _myopathy((0.10, 0.30), (48.0, 56.0), (10.0, 15.0), (0.02, 0.08), (0.0, 1.0),
                                    (20.0, 30.0), (0.0, 0.0)),
    ("myopathy", "moderate"): _myopathy((0.25, 0.50), (42.0, 52.0), (14.0, 19.0), (0.05, 0.15), (0.0, 2.0),
                                        (25.0, 40.0), (0.0, 0.02)),
    ("myopathy", "severe"): _myopathy((0.45, 0.70), (36.0, 48.0), (18.0, 24.0), (0.10, 0.25), (0.5, 3.0),
                                      (30.0, 60.0), (0.01, 0.05)),
    ("neuropathy", "mild"): _neuropathy((0.20, 0.50), (0.0, 0.0), (0.1, 0.3), (0.00, 0.05), (0.0, 2.0),
                                        (30.0, 50.0), (0.0, 0.02)),
    ("neuropathy", "moderate"): _neuropathy((0.45, 0.75), (0.0, 0.0), (0.2, 0.5), (0.03, 0.10), (1.0, 4.0),
                                            (40.0, 80.0), (0.02, 0.05)),
    ("neuropathy", "severe"): _neuropathy((0.70, 0.90), (0.0, 0.0), (0.3, 0.8), (0.05, 0.15), (2.0, 6.0),
                                          (60.0, 120.0), (0.05, 0.10)),
}


@dataclass(frozen=True)
class TissueParameters:
    """One subject's muscle tissue (values drawn from ``TISSUE_RANGES``) and where the needle sits along it."""

    condition: str
    severity: str  # "none" for healthy
    fibre_density_per_mm2: float
    diameter_mean_um: float
    diameter_sd_um: float
    fibre_loss: float
    split_fraction: float
    unit_loss: float
    reinnervated: float
    territory_gain: float
    endplate_sd_mm: float
    adopted_endplate_sd_mm: float
    adopted_delay_sd_ms: float
    adopted_diameter_um: float
    late_fraction: float
    maturity: float
    max_enlargement: float
    fibrillating: float
    jitter_us: float
    blocking: float
    needle_from_endplates_mm: float  # axial distance from the end-plate band to the needle tip
    units_before_loss: int  # motor units of the healthy muscle (Fuglevand et al. 1993: ~120)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def tissue_key(condition: str, severity: str) -> tuple[str, str]:
    """The ``TISSUE_RANGES`` key; raises ValueError for an unknown severity."""
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}: use one of {', '.join(SEVERITIES)}")
    return (condition, "none") if condition == "healthy" else (condition, severity)


def draw_tissue(condition: str, severity: str, rng: np.random.Generator) -> TissueParameters:
    """Draws one subject's tissue for ``condition`` at ``severity`` (ignored for healthy)."""
    key = tissue_key(condition, severity)
    if key not in TISSUE_RANGES:
        raise ValueError(f"unknown condition {condition!r}")
    values = {name: float(rng.uniform(*bounds)) for name, bounds in asdict(TISSUE_RANGES[key]).items()}
    # clinicians sample the belly, a few mm to a few cm from the end-plate band, on either side of it
    axial = float(rng.uniform(3.0, 20.0)) * float(rng.choice([-1.0, 1.0]))
    units = int(rng.integers(100, 121))
    return TissueParameters(
        condition=key[0], severity=key[1], needle_from_endplates_mm=axial, units_before_loss=units, **values
    )
