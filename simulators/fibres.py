"""Motor-unit potentials at a concentric needle, summed over each unit's muscle fibres (line-source model).

Each fibre carries the same intracellular action potential (Rosenfalck 1969: V(λ) = 96 λ³ e^-λ - 90 mV, λ in mm
behind the front), started at the fibre's end-plate after its neuromuscular delay and travelling both ways at the
fibre's conduction velocity (set by its diameter) until its tendon ends. Its transmembrane current per unit length,
π a² σ_i ∂²V/∂z², seen through an anisotropic volume conductor (radial and axial conductivities), gives the
potential at a point; the concentric needle records the mean over its core's bevelled surface minus the mean along
its cannula. Because the source travels unchanged, a fibre's potential is one convolution on a spatial grid,
φ(x) = (a² σ_i / 4) (g * w)(x) read at x = v t, with g = ∂²V/∂λ² and w the needle's weighting along the fibre, cut
at the end-plate and the tendon (so generation and extinction of the action potential are in the sum). A unit's
MUAP is the sum over its fibres within reach of the tip, low-passed below the sampling rate's Nyquist frequency
(anti-alias, linear phase) on a fine time grid, then cached as a template: nothing turns width into amplitude.
Sources of every number: docs/simulator.md, "Fibre-level needle model".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import signal

from simulators.motor_units import MotorUnitPool
from simulators.tissue import TissueParameters

SIGMA_INTRACELLULAR = 1.01  # S/m
# The muscle's extracellular conductivities, one set for the needle and the surface models (simulators.surface reads
# these): Farina & Merletti 2001's (IEEE Trans Biomed Eng 48:637), 0.1 S/m across and 0.5 S/m along the fibres.
# Until fibre model 2026-12-06.4 the needle used Andreassen & Rosenfalck's 0.063 / 0.33 S/m (1981), the surface
# Farina & Merletti's: two values for one muscle. Why this set: docs/simulator.md, "Muscle conductivities".
SIGMA_RADIAL = 0.1  # S/m, across the fibres
SIGMA_AXIAL = 0.5  # S/m, along the fibres
# The standard concentric needle (0.46 mm cannula, 0.07 mm² recording area: Preston & Shapiro, *Electromyography
# and Neuromuscular Disorders*; Nandedkar, Sanders, Stålberg & Andreassen 1988, Muscle Nerve 11:151): a 0.15 mm
# core wire along the cannula's axis, both cut by one bevel plane at 15° to the axis, so the core's face is an
# ellipse of 0.15 x 0.15 / sin 15° = 0.58 mm (π/4 x 0.15 x 0.58 = 0.068 mm²) centred where the plane crosses the
# axis, and the cannula's face an elliptical ring around it. Frame (mm): fibres run along z, the shaft along -x,
# the bevel faces +y (tilted 15° towards the tip); the core's centre sits at CORE_CENTRE_XY_MM, the point
# simulators.jitter and bench_sim_reinnervation take as the core's centre.
BEVEL_DEG = 15.0
CORE_WIDTH_MM = 0.15  # the core wire's diameter: the face ellipse's minor axis (along the fibres)
CORE_LENGTH_MM = CORE_WIDTH_MM / math.sin(math.radians(BEVEL_DEG))  # the face ellipse's major axis: 0.58 mm
CANNULA_RADIUS_MM = 0.23  # 0.46 mm shaft
CANNULA_IN_MUSCLE_MM = 10.0  # cannula in the muscle, from the tip back
CORE_CENTRE_XY_MM = (-0.5 * CORE_LENGTH_MM, 0.5 * CANNULA_RADIUS_MM)
REACH_MM = 3.0  # fibres further from the tip than this are left out (their share of a MUP is below the noise)
# The needle recording's noise floor (electrode and amplifier), white, fixed in µV/√Hz whatever the muscle does:
# measured on the real clinical recordings (../shared/data/needle-emg-clinical, 258 recordings, conditioned as the
# needle model does, median PSD at 5-7 kHz in each recording's quietest 0.25 s): median 0.024 / 0.027 / 0.028 µV/√Hz
# in healthy / myopathy / neuropathy (10-90 % 0.016-0.057) although neuropathic RMS is 3x healthy, i.e. the floor
# does not follow the signal. It equals the Johnson noise of ~37 kΩ at body temperature (sqrt(4 k T R); Nyquist
# 1928); a published impedance of the clinical needle was not checked. Used by the fibre-level needle model instead
# of snr_db (a floor 30 dB below the signal RMS, which followed the muscle: 0.6-6.6x the real floor at 10 %MVC).
NEEDLE_NOISE_UV_PER_RT_HZ = 0.025
GRID_MM = 0.05  # spatial step of the line-source convolution
FIELD_HALF_MM = 25.0  # the needle's weighting is computed this far along the fibres, tapered over the last 5 mm
SOURCE_LENGTH_MM = 15.0  # ∂²V/∂λ² beyond this is below 1e-3 of its peak
NEUROMUSCULAR_DELAY_S = 1.0e-3  # discharge of the motor neuron to end-plate potential (axon + junction)
NEUROMUSCULAR_SD_S = 0.1e-3  # spread of terminal-branch delays within a unit
TEMPLATE_MIN_FS = 65_536.0
HEALTHY_DIAMETER_UM = 55.0  # centre of the healthy ranges of simulators.tissue: the MVC reference's fibres
HEALTHY_DIAMETER_SD_UM = 8.5
# adopted fibres lie around their parent fibre: muscle fibres pack at ~300-400 per mm² (55 µm), so a parent with
# its 4-7 adopted neighbours fills a disc of ~0.1 mm radius
ADOPTED_GROUP_SD_MM = 0.08


def conduction_velocity(diameter_um: np.ndarray) -> np.ndarray:
    """Muscle-fibre conduction velocity (m/s) from diameter: v = 2.2 + 0.05 (d - 25), floored at 1 m/s."""
    return np.maximum(2.2 + 0.05 * (np.asarray(diameter_um) - 25.0), 1.0)


def source_first_derivative(lambda_mm: np.ndarray) -> np.ndarray:
    """∂V/∂λ of Rosenfalck's intracellular action potential, in V/m (λ in mm behind the front, 0 ahead)."""
    lam = np.asarray(lambda_mm, dtype=np.float64)
    return np.where(lam >= 0.0, 96.0 * np.exp(-np.maximum(lam, 0.0)) * (3.0 * lam**2 - lam**3), 0.0)


def source_second_derivative(lambda_mm: np.ndarray) -> np.ndarray:
    """∂²V/∂λ² of Rosenfalck's intracellular action potential, in V/m² (λ in mm behind the front, 0 ahead)."""
    lam = np.asarray(lambda_mm, dtype=np.float64)
    values = 96.0 * np.exp(-lam) * (6.0 * lam - 6.0 * lam**2 + lam**3) * 1e3  # mV/mm² = 1e3 V/m²
    return np.where(lam >= 0.0, values, 0.0)


@dataclass(frozen=True)
class Fibres:
    """The muscle fibres within reach of the needle, one entry per fibre (coordinates relative to the tip, mm)."""

    unit: np.ndarray  # (F,) index of the motor unit
    xy_mm: np.ndarray  # (F, 2) position in the cross-section; the needle shaft runs along -x, its core faces +y
    endplate_mm: np.ndarray  # (F,) position of the end-plate along the fibre (the tip at 0)
    half_length_mm: np.ndarray  # (F, 2) end-plate to tendon, towards +z and -z
    diameter_um: np.ndarray
    delay_s: np.ndarray  # (F,) discharge to end-plate activation
    counts: np.ndarray  # (U,) fibres of each unit in the whole muscle (not only near the needle)
    area_mm2: np.ndarray  # (U,) cross-sectional area of all the unit's fibres (its force, ``simulators.force``)
    healthy_area_mm2: np.ndarray  # (U,) the same unit's expected area in a healthy muscle (the MVC reference)

    @property
    def velocity_m_s(self) -> np.ndarray:
        return conduction_velocity(self.diameter_um)


def territory_radius_mm(pool: MotorUnitPool) -> np.ndarray:
    """Territory radius before disease: 5-11 mm diameter, growing with the square root of unit size."""
    relative = np.sqrt(pool.size / pool.size.max())
    span = max(float(relative.max() - relative.min()), 1e-9)
    return 0.5 * (5.0 + 6.0 * (relative - relative.min()) / span)


def grow_fibres(
    pool: MotorUnitPool,
    tissue: TissueParameters,
    tip_xy_mm: np.ndarray,
    rng: np.random.Generator,
    reach_mm: float | None = REACH_MM,
) -> Fibres:
    """Every unit's fibres in its territory, changed by the subject's disease; returns those within ``reach_mm``
    of the needle's tip and outside its shaft, or with ``reach_mm=None`` all of them (surface model, no needle)."""
    own_radius = territory_radius_mm(pool)
    unit_endplate = -tissue.needle_from_endplates_mm + rng.normal(0.0, 1.5, pool.n_units)
    parts: list[dict[str, np.ndarray]] = []
    counts = np.zeros(pool.n_units, dtype=np.int64)
    area = np.zeros(pool.n_units)
    healthy_d2 = HEALTHY_DIAMETER_UM**2 + HEALTHY_DIAMETER_SD_UM**2
    healthy_area = tissue.fibre_density_per_mm2 * math.pi * own_radius**2 * math.pi / 4.0 * healthy_d2 * 1e-6
    centres = pool.position_mm[:, :2] - np.asarray(tip_xy_mm, dtype=np.float64)[None, :]
    # orphaned fibres per surviving unit: the lost units' fibres shared among the survivors, up to the most a unit can
    # take on (beyond it the rest stay denervated)
    adopted_ratio = tissue.reinnervated * tissue.unit_loss / max(1.0 - tissue.unit_loss, 1e-6)
    adopted_ratio = min(adopted_ratio, tissue.max_enlargement - 1.0)
    early = 1.0 - tissue.maturity
    for u in range(pool.n_units):
        n_own = max(1, int(rng.poisson(tissue.fibre_density_per_mm2 * math.pi * own_radius[u] ** 2)))
        xy = _uniform_disc(rng, n_own, own_radius[u])
        diameter = rng.normal(tissue.diameter_mean_um, tissue.diameter_sd_um, n_own)
        endplate = unit_endplate[u] + rng.normal(0.0, tissue.endplate_sd_mm, n_own)
        extra = np.zeros(n_own)
        n_adopted = int(rng.poisson(adopted_ratio * n_own))
        if n_adopted:
            # collateral sprouting: a terminal sprouts to denervated junctions next to its own fibre, so adopted
            # fibres lie in groups around the unit's fibres (fibre-type grouping) with end-plates near the parent's.
            # The territory grows only where groups around its edge fibres spill over it (scanning EMG finds
            # reinnervated territories not significantly larger: Stålberg & Dioszeghy 1991). Until fibre model .6
            # the groups were moved outwards with the territory (radius x (1 + territory_gain)), which put them up
            # to ~1 mm from their parent and diluted the fibre density the needle sees
            parent = rng.integers(0, n_own, n_adopted)
            xy_a = xy[parent] + rng.normal(0.0, ADOPTED_GROUP_SD_MM, (n_adopted, 2))
            diameter_a = rng.normal(tissue.adopted_diameter_um, 8.0, n_adopted)
            endplate_a = endplate[parent] + rng.normal(0.0, tissue.adopted_endplate_sd_mm, n_adopted)
            # early sprouts are thin and unmyelinated (slow, scattered delays, some long: satellites); they mature
            late = rng.uniform(0.0, 1.0, n_adopted) < tissue.late_fraction * early
            sprout = np.abs(rng.normal(0.0, tissue.adopted_delay_sd_ms * 1e-3 * early, n_adopted))
            extra_a = sprout + np.where(late, rng.uniform(3e-3, 15e-3, n_adopted), 0.0)
            diameter_a = np.where(late, rng.uniform(20.0, 30.0, n_adopted), diameter_a)
            xy, diameter = np.vstack([xy, xy_a]), np.concatenate([diameter, diameter_a])
            endplate, extra = np.concatenate([endplate, endplate_a]), np.concatenate([extra, extra_a])
        kept = rng.uniform(0.0, 1.0, xy.shape[0]) >= tissue.fibre_loss
        xy, diameter, endplate, extra = xy[kept], diameter[kept], endplate[kept], extra[kept]
        split = rng.uniform(0.0, 1.0, xy.shape[0]) < tissue.split_fraction
        if split.any():
            # a split fibre becomes two adjacent daughters sharing its cross-sectional area
            angle = rng.uniform(0.0, 2.0 * math.pi, int(split.sum()))
            offset = 0.5e-3 * diameter[split, None] * np.column_stack([np.cos(angle), np.sin(angle)])
            daughters = diameter[split] / math.sqrt(2.0)
            xy = np.vstack([xy[~split], xy[split] + offset, xy[split] - offset])
            diameter = np.concatenate([diameter[~split], daughters, daughters])
            endplate = np.concatenate([endplate[~split], endplate[split], endplate[split]])
            extra = np.concatenate([extra[~split], extra[split], extra[split]])
        n = xy.shape[0]
        counts[u] = n
        area[u] = float(np.sum(math.pi / 4.0 * (np.clip(diameter, 10.0, 120.0) * 1e-3) ** 2))
        xy = xy + centres[u]
        if reach_mm is None:
            keep = np.ones(n, dtype=bool)
        else:
            near = np.hypot(xy[:, 0] - CORE_CENTRE_XY_MM[0], xy[:, 1] - CORE_CENTRE_XY_MM[1]) <= reach_mm
            # fibres the needle would pass through are pushed aside by it: none lies inside it (a fibre's axis at
            # least its radius from the metal), while fibres in front of the bevel lie against its face
            keep = near & ~inside_needle(xy, 0.5e-3 * np.clip(diameter, 10.0, 120.0))
        lengths = rng.uniform(40.0, 70.0, (n, 2))
        delay = NEUROMUSCULAR_DELAY_S + rng.normal(0.0, NEUROMUSCULAR_SD_S, n) + extra
        parts.append(
            {
                "unit": np.full(int(keep.sum()), u),
                "xy": xy[keep],
                "endplate": endplate[keep],
                "lengths": lengths[keep],
                "diameter": np.clip(diameter[keep], 10.0, 120.0),
                "delay": np.maximum(delay[keep], 0.3e-3),
            }
        )
    return Fibres(
        unit=np.concatenate([p["unit"] for p in parts]).astype(np.int64),
        xy_mm=np.vstack([p["xy"] for p in parts]),
        endplate_mm=np.concatenate([p["endplate"] for p in parts]),
        half_length_mm=np.vstack([p["lengths"] for p in parts]),
        diameter_um=np.concatenate([p["diameter"] for p in parts]),
        delay_s=np.concatenate([p["delay"] for p in parts]),
        counts=counts,
        area_mm2=area,
        healthy_area_mm2=healthy_area,
    )


FIBRILLATION_RATE_HZ = (0.5, 15.0)
FIBRILLATION_ISI_COV = (0.01, 0.05)


def fibrillating_fibres(
    tissue: TissueParameters, first_unit: int, rng: np.random.Generator
) -> tuple[Fibres, np.ndarray]:
    """(denervated fibres firing on their own near the tip, their rates in Hz): each one an atrophic fibre (25-45 µm)
    0.05-0.6 mm in front of the core's face (over its length) whose action potential starts 2-15 mm away along it;
    units from ``first_unit``."""
    n = int(tissue.fibrillating)
    along = rng.uniform(-0.5 * CORE_LENGTH_MM, 0.5 * CORE_LENGTH_MM, n)
    off_face = rng.uniform(0.05, 0.6, n)
    start = rng.uniform(2.0, 15.0, n) * rng.choice([-1.0, 1.0], n)
    fibres = Fibres(
        unit=first_unit + np.arange(n),
        xy_mm=np.asarray(CORE_CENTRE_XY_MM) + along[:, None] * _FACE_ALONG + off_face[:, None] * _FACE_NORMAL,
        endplate_mm=start,
        half_length_mm=rng.uniform(40.0, 70.0, (n, 2)),
        diameter_um=rng.uniform(25.0, 45.0, n),
        delay_s=np.full(n, 0.3e-3),
        counts=np.ones(n, dtype=np.int64),
        area_mm2=np.zeros(n),  # denervated: no force
        healthy_area_mm2=np.zeros(n),
    )
    return fibres, rng.uniform(*FIBRILLATION_RATE_HZ, n)


def join(first: Fibres, second: Fibres) -> Fibres:
    """The fibres of both sets (units numbered as they are), counts concatenated."""
    return Fibres(
        *(np.concatenate([getattr(first, name), getattr(second, name)]) for name in Fibres.__dataclass_fields__)
    )


def _uniform_disc(rng: np.random.Generator, n: int, radius: float) -> np.ndarray:
    rho = radius * np.sqrt(rng.uniform(0.0, 1.0, n))
    phi = rng.uniform(0.0, 2.0 * math.pi, n)
    return np.column_stack([rho * np.cos(phi), rho * np.sin(phi)])


_BEVEL = math.radians(BEVEL_DEG)
_FACE_ALONG = np.array([math.cos(_BEVEL), -math.sin(_BEVEL)])  # in the cross-section, along the bevel towards the tip
_FACE_NORMAL = np.array([math.sin(_BEVEL), math.cos(_BEVEL)])  # out of the bevel's face
_TIP_X_MM = CORE_CENTRE_XY_MM[0] + CANNULA_RADIUS_MM / math.tan(_BEVEL)  # the bevel's point, on the -y side
_CANNULA_BACK_X_MM = _TIP_X_MM - CANNULA_IN_MUSCLE_MM
CANNULA_ANGLES = 16  # generatrices of the cannula's outer surface, each integrated exactly along the shaft
FACE_NODES = 8  # Gauss-Legendre nodes across an elliptical face (along the fibres); exact along the bevel


def inside_needle(xy_mm: np.ndarray, clearance_mm: np.ndarray | float = 0.0) -> np.ndarray:
    """Whether a fibre at ``xy_mm`` (F, 2) along z would pass within ``clearance_mm`` of the needle: the needle is the
    cannula's cylinder (axis along x through the core's centre) from its tip back CANNULA_IN_MUSCLE_MM, cut by the
    bevel plane, and it is convex, so a fibre misses it by the distance of its point to the needle's outline."""
    xy = np.asarray(xy_mm, dtype=np.float64)
    relative = xy - np.asarray(CORE_CENTRE_XY_MM)
    off_face = relative @ _FACE_NORMAL
    return (
        (xy[:, 0] <= _TIP_X_MM + clearance_mm)
        & (xy[:, 0] >= _CANNULA_BACK_X_MM - clearance_mm)
        & (np.abs(relative[:, 1]) < CANNULA_RADIUS_MM + clearance_mm)
        & (off_face < clearance_mm)
    )


def _face_integral(
    along_mm: np.ndarray, normal_mm: np.ndarray, z_mm: np.ndarray, half_major: float, half_minor: float
) -> np.ndarray:
    """(F, Z) ∫∫ over an ellipse in the bevel plane (centred on the axis, ``half_major`` along the bevel,
    ``half_minor`` along the fibres) of 1 / sqrt(σ_r σ_z ρ² + σ_r² Δz²), in m: exact along the bevel (asinh),
    Gauss-Legendre across, so a fibre at any distance in front of the face sees the face at its true distance."""
    nodes, weights = np.polynomial.legendre.leggauss(FACE_NODES)
    total = np.zeros((along_mm.shape[0], z_mm.size))
    anisotropy = SIGMA_RADIAL / SIGMA_AXIAL
    for node, weight in zip(nodes, weights, strict=True):
        z_face = half_minor * node
        chord = half_major * math.sqrt(1.0 - node**2)
        c = np.sqrt(normal_mm[:, None] ** 2 + anisotropy * (z_mm[None, :] - z_face) ** 2)
        c = np.maximum(c, 1e-6)
        line = np.arcsinh((chord - along_mm[:, None]) / c) + np.arcsinh((chord + along_mm[:, None]) / c)
        total += weight * half_minor * 1e-3 * line
    return total / math.sqrt(SIGMA_RADIAL * SIGMA_AXIAL)


def needle_weighting(xy_mm: np.ndarray, z_mm: np.ndarray) -> np.ndarray:
    """(F, Z) potential at the concentric needle per unit point current on fibre f at axial position z, in V/A: the
    mean over the core's elliptical face in the bevel plane minus the mean over the cannula's metal in the muscle
    (its outer surface back from the bevel, and its elliptical ring on the bevel around the core)."""
    xy = np.asarray(xy_mm, dtype=np.float64)
    relative = xy - np.asarray(CORE_CENTRE_XY_MM)
    along = relative @ _FACE_ALONG
    normal = relative @ _FACE_NORMAL
    core_half = (0.5 * CORE_LENGTH_MM, 0.5 * CORE_WIDTH_MM)
    face_half = (CANNULA_RADIUS_MM / math.sin(_BEVEL), CANNULA_RADIUS_MM)
    core_area = math.pi * core_half[0] * core_half[1] * 1e-6  # m²
    core_integral = _face_integral(along, normal, z_mm, *core_half)
    ring_integral = _face_integral(along, normal, z_mm, *face_half) - core_integral
    ring_area = math.pi * face_half[0] * face_half[1] * 1e-6 - core_area
    # the outer surface: generatrix j at angle θ runs from the back of the cannula to where it meets the bevel plane
    shaft_integral = np.zeros_like(core_integral)
    shaft_area = 0.0
    anisotropy = SIGMA_RADIAL / SIGMA_AXIAL
    for theta in 2.0 * math.pi * (np.arange(CANNULA_ANGLES) + 0.5) / CANNULA_ANGLES:
        dy = relative[:, 1] - CANNULA_RADIUS_MM * math.cos(theta)
        dz = z_mm - CANNULA_RADIUS_MM * math.sin(theta)
        front = CORE_CENTRE_XY_MM[0] - CANNULA_RADIUS_MM * math.cos(theta) / math.tan(_BEVEL)
        c = np.maximum(np.sqrt(dy[:, None] ** 2 + anisotropy * dz[None, :] ** 2), 1e-6)
        line = np.arcsinh((front - xy[:, 0:1]) / c) - np.arcsinh((_CANNULA_BACK_X_MM - xy[:, 0:1]) / c)
        strip = CANNULA_RADIUS_MM * 2.0 * math.pi / CANNULA_ANGLES * 1e-3  # m, the width of its strip
        shaft_integral += strip * line
        shaft_area += strip * (front - _CANNULA_BACK_X_MM) * 1e-3
    shaft_integral /= math.sqrt(SIGMA_RADIAL * SIGMA_AXIAL)
    core = core_integral / core_area
    cannula = (ring_integral + shaft_integral) / (ring_area + shaft_area)
    return (core - cannula) / (4.0 * math.pi)


def needle_templates(fibres: Fibres, n_units: int, fs: float) -> tuple[np.ndarray, float]:
    """(templates (U, T) in µV, template rate): each unit's MUAP at the needle, time 0 at the motor neuron's
    discharge, low-passed at 0.45 ``fs`` (the recording's anti-alias filter) on a grid of at least 65 kHz."""
    fs_template = max(TEMPLATE_MIN_FS, 4.0 * fs)
    n_field = int(round(2.0 * FIELD_HALF_MM / GRID_MM)) + 1
    z = -FIELD_HALF_MM + GRID_MM * np.arange(n_field)
    taper = np.clip((FIELD_HALF_MM - np.abs(z)) / 5.0, 0.0, 1.0)
    taper = 0.5 - 0.5 * np.cos(math.pi * taper)
    n_source = int(round(SOURCE_LENGTH_MM / GRID_MM)) + 1
    source = source_second_derivative(GRID_MM * np.arange(n_source))
    velocity = fibres.velocity_m_s
    start = np.round((fibres.endplate_mm + FIELD_HALF_MM) / GRID_MM).astype(np.int64)  # end-plate on the grid
    n_lag = int(max(n_field - start.min(), start.max() + 1, 1)) if start.size else 1
    n_fft = int(2 ** math.ceil(math.log2(n_lag + n_source)))
    source_fft = np.fft.rfft(source, n_fft)
    longest = float(((n_lag + n_source) * GRID_MM * 1e-3 / velocity).max() + fibres.delay_s.max()) if start.size else 0
    n_time = int(math.ceil(longest * fs_template)) + 2
    times = np.arange(n_time) / fs_template
    templates = np.zeros((n_units, n_time))
    lags = np.arange(n_lag)
    for lo in range(0, fibres.unit.size, 128):
        chunk = slice(lo, lo + 128)
        weight = needle_weighting(fibres.xy_mm[chunk], z) * taper[None, :]
        s = start[chunk, None]
        right = s + lags[None, :]
        left = s - lags[None, :]
        ends_index = np.round(fibres.half_length_mm[chunk] / GRID_MM).astype(np.int64)
        w = _take(weight, right, _extent(lags, ends_index[:, :1]))
        w += _take(weight, left, _extent(lags, ends_index[:, 1:]))
        potential = np.fft.irfft(np.fft.rfft(w, n_fft, axis=1) * source_fft[None, :], n_fft, axis=1)
        radius_m = 0.5e-6 * fibres.diameter_um[chunk]
        potential *= (radius_m**2 * SIGMA_INTRACELLULAR / 4.0 * 4.0 * math.pi * GRID_MM * 1e-3 * 1e6)[:, None]
        # the source moves at v: at time t the front is v (t - delay) from the end-plate
        position = (times[None, :] - fibres.delay_s[chunk, None]) * velocity[chunk, None] * 1e3 / GRID_MM
        values = _interpolate_rows(potential, position)
        # the point sources where the two waves part (end-plate) and where each one ends (tendons)
        front_mm = position * GRID_MM
        ends = ends_index * GRID_MM
        points = -2.0 * source_first_derivative(front_mm) * _take(weight, s)
        for side, sign in ((0, 1), (1, -1)):
            tendon = s + sign * ends_index[:, side : side + 1]
            at_tendon = _take(weight, tendon)
            points = points + source_first_derivative(front_mm - ends[:, side : side + 1]) * at_tendon
        values += points * (math.pi * radius_m**2 * SIGMA_INTRACELLULAR * 1e6)[:, None]
        np.add.at(templates, fibres.unit[chunk], values)
    templates = signal.convolve(templates, anti_alias_taps(fs, fs_template)[None, :], mode="same")
    return templates, fs_template


def anti_alias_taps(fs: float, fs_template: float) -> np.ndarray:
    """Linear-phase low-pass at 0.45 ``fs`` on the template grid, its length scaled to the rate ratio so that it is
    ~-28 dB at ``fs``'s Nyquist frequency and ~-60 dB by 0.6 ``fs`` at every needle rate (4-100 kHz)."""
    ratio = fs_template / fs
    return signal.firwin(max(97, 2 * int(round(12.0 * ratio)) + 1), 0.45 * fs, fs=fs_template)


def _extent(lags: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Trapezoid weights of a half-fibre's samples: 1 inside, 1/2 at the end-plate and at the tendon end."""
    weights = (lags[None, :] <= end).astype(np.float64)
    weights[:, 0] = 0.5
    weights[lags[None, :] == end] = 0.5
    return weights


def _take(weight: np.ndarray, index: np.ndarray, factor: np.ndarray | float = 1.0) -> np.ndarray:
    inside = (index >= 0) & (index < weight.shape[1])
    rows = np.arange(weight.shape[0])[:, None]
    return np.where(inside, weight[rows, np.clip(index, 0, weight.shape[1] - 1)] * factor, 0.0)


def _interpolate_rows(values: np.ndarray, position: np.ndarray) -> np.ndarray:
    """values[f] read at fractional ``position[f]`` (linear), 0 before the start and after the end."""
    whole = np.floor(position).astype(np.int64)
    fraction = position - whole
    inside = (whole >= 0) & (whole < values.shape[1] - 1)
    whole = np.clip(whole, 0, values.shape[1] - 2)
    rows = np.arange(values.shape[0])[:, None]
    out = values[rows, whole] * (1.0 - fraction) + values[rows, whole + 1] * fraction
    return np.where(inside, out, 0.0)
