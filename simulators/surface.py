"""Surface motor-unit potentials summed over each unit's muscle fibres, seen through skin, fat and muscle layers.

Opt-in (``SimulationConfig(tissue="fibres")`` on a ring or grid layout). The fibres are those of the fibre-level
needle model (``simulators.fibres.grow_fibres``: territory, fibre density, diameters and conduction velocities,
end-plate scatter, disease as fibre loss / splitting / reinnervation), every fibre of the muscle instead of those
near a needle. Each fibre carries Rosenfalck's action potential from its end-plate to both tendons; its membrane
current is seen through a planar volume conductor of three layers (Farina & Merletti 2001, IEEE Trans Biomed Eng
48:637): anisotropic muscle (a half-space below the fat), isotropic fat and isotropic skin, with no current through
the skin's surface. The potential of a point current at depth d in the muscle is solved in the spatial-frequency
domain (kx across, kz along the fibres), multiplied by the electrode's size (a disc of radius r: 2 J1(k r)/(k r))
and, for bipolar channels, by the difference of two such discs an inter-electrode distance apart along the fibres;
an inverse 2-D FFT tabulates it on a grid of lateral offset x, axial offset z and depth d. A fibre's potential is
then, as at the needle, one convolution of ∂²V/∂λ² with that weighting along the fibre (cut at the end-plate and
the tendons, plus their point sources) read at x = v t. The MUAP of a unit at each channel is the sum over its
fibres (a random subset, weighted to keep the unit's total membrane area, see ``FIBRES_PER_UNIT``), low-passed at
0.45 fs (anti-alias) on a grid of 4 fs. Nothing maps width into amplitude. Each unit's (channels x time) template
is reduced to ``RANK`` time courses by an SVD, so streaming stays a sum of templates times fixed channel gains.
Sources of every number: docs/simulator.md, "Fibre-level surface model".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import signal, special

from simulators.electrodes import ElectrodeLayout
from simulators.fibres import (
    SIGMA_AXIAL,
    SIGMA_INTRACELLULAR,
    SIGMA_RADIAL,
    Fibres,
    _extent,
    _interpolate_rows,
    _take,
    anti_alias_taps,
    grow_fibres,
    source_first_derivative,
    source_second_derivative,
)
from simulators.motor_units import MotorUnitPool
from simulators.tissue import TissueParameters

# version of this model's samples (written to a file's config_json with tissue="fibres" on a surface layout)
SURFACE_MODEL_VERSION = "2026-12-06.2"  # .2: the muscle's conductivities are Farina & Merletti's (were the needle's)
# The layered conductor's tissue conductivities are one set, from the paper whose conductor this is (Farina &
# Merletti 2001, the parameters of their simulations: muscle 0.1 S/m across and 0.5 S/m along the fibres, fat 0.05,
# skin 1 S/m). The muscle's pair is defined once in simulators.fibres, which the needle model uses as well (since
# fibre model 2026-12-06.4; before it the needle had Andreassen & Rosenfalck's 0.063 / 0.33 S/m).
SIGMA_MUSCLE_RADIAL = SIGMA_RADIAL  # 0.1 S/m, across the fibres (Farina & Merletti 2001)
SIGMA_MUSCLE_AXIAL = SIGMA_AXIAL  # 0.5 S/m, along the fibres (Farina & Merletti 2001)
SIGMA_FAT = 0.05  # S/m (Farina & Merletti 2001)
SIGMA_SKIN = 1.0  # S/m (Farina & Merletti 2001)
SKIN_MM = 1.0  # (Farina & Merletti 2001)
GRID_MM = 0.5  # spatial step: surface fields are smooth over the >= 1 mm of skin and fat
TABLE_HALF_X_MM = 64.0  # fibres further across from an electrode than this are left out
TABLE_HALF_Z_MM = 128.0
TAPER_MM = 5.0
DEPTHS_MM = np.concatenate([np.arange(0.0, 10.0, 0.5), np.arange(10.0, 36.0, 1.0)])  # below the muscle's surface
SOURCE_LENGTH_MM = 15.0
FIBRES_PER_UNIT = 12  # fibres simulated per unit; each stands for (unit's fibre area) / (their area)
RANK = 6  # time courses kept per unit (SVD of its channels x time template)
TEMPLATE_OVERSAMPLING = 4
# the ring's channels: bipolar along the fibres, SENIAM's recommendation (Hermens et al. 2000, J Electromyogr
# Kinesiol 10:361: inter-electrode distance 20 mm, electrode diameter <= 10 mm); the grids: monopolar at their
# 8 mm pitch, electrodes of 3 mm diameter (an assumption for OT Bioelettronica's GR08MM1305, not checked here)
RING_IED_MM = 20.0
RING_ELECTRODE_DIAMETER_MM = 10.0
GRID_ELECTRODE_DIAMETER_MM = 3.0
# the forearm muscles' innervation zones lie 15-45 mm from the ring along the arm (an assumption, drawn per muscle)
RING_IZ_DISTANCE_MM = (15.0, 45.0)


@dataclass(frozen=True)
class Detection:
    """How a channel sees the skin: one disc (monopolar) or the difference of two along the fibres (bipolar)."""

    electrode_diameter_mm: float
    ied_mm: float  # 0: monopolar

    @classmethod
    def for_layout(cls, layout: ElectrodeLayout) -> Detection:
        if layout.kind == "ring":
            return cls(RING_ELECTRODE_DIAMETER_MM, RING_IED_MM)
        return cls(GRID_ELECTRODE_DIAMETER_MM, 0.0)


def layered_transfer(
    kx: np.ndarray, kz: np.ndarray, depth_mm: float, fat_mm: float, skin_mm: float = SKIN_MM
) -> np.ndarray:
    """Potential (V) at the skin's surface, in the spatial-frequency domain (V·m²), of a 1 A point current
    ``depth_mm`` below the muscle's surface, under fat and skin (no current through the skin's surface)."""
    k = np.hypot(kx, kz)
    k_muscle = np.sqrt(kx**2 + (SIGMA_MUSCLE_AXIAL / SIGMA_MUSCLE_RADIAL) * kz**2)
    fat, skin, depth = fat_mm * 1e-3, skin_mm * 1e-3, depth_mm * 1e-3
    safe_k = np.where(k > 0, k, 1.0)
    # the skin's admittance ratio (current over potential) at the skin-fat boundary, then at the fat-muscle one
    skin_ratio = (SIGMA_SKIN / SIGMA_FAT) * np.tanh(safe_k * skin)
    c, s = np.cosh(safe_k * fat), np.sinh(safe_k * fat)
    fat_ratio = SIGMA_FAT * safe_k * (s + skin_ratio * c) / (c + skin_ratio * s)
    muscle_ratio = SIGMA_MUSCLE_RADIAL * np.where(k_muscle > 0, k_muscle, 1.0)
    at_muscle = np.exp(-k_muscle * depth) / (muscle_ratio + fat_ratio)  # potential at the fat-muscle boundary
    at_skin = at_muscle / (c + skin_ratio * s) / np.cosh(safe_k * skin)
    return np.where(k > 0, at_skin, 0.0)


def surface_table(fat_mm: float, detection: Detection) -> tuple[np.ndarray, np.ndarray]:
    """(table (D, X, Z) in V/A, z offsets in mm): a channel's potential per unit point current at each depth of
    ``DEPTHS_MM``, lateral offset -64..64 mm and axial offset -128..128 mm (source minus channel), step GRID_MM."""
    n_x, n_z = 4 * int(TABLE_HALF_X_MM / GRID_MM), 2 * int(2 * TABLE_HALF_Z_MM / GRID_MM)
    step = GRID_MM * 1e-3
    kx = 2.0 * math.pi * np.fft.fftfreq(n_x, step)[:, None]
    kz = 2.0 * math.pi * np.fft.rfftfreq(n_z, step)[None, :]
    k = np.hypot(kx, kz)
    radius = 0.5e-3 * detection.electrode_diameter_mm
    kr = np.maximum(k * radius, 1e-12)
    size = np.where(k * radius > 1e-9, 2.0 * special.j1(kr) / kr, 1.0)
    electrode = size.astype(np.complex128)
    if detection.ied_mm > 0:
        # channel = disc at +IED/2 minus disc at -IED/2 along the fibres (source minus channel offsets: sign flips)
        electrode = electrode * (-2j * np.sin(kz * 0.5e-3 * detection.ied_mm))
    half_x, half_z = int(TABLE_HALF_X_MM / GRID_MM), int(TABLE_HALF_Z_MM / GRID_MM)
    z = GRID_MM * np.arange(-half_z, half_z + 1)
    taper = np.clip((TABLE_HALF_Z_MM - np.abs(z)) / TAPER_MM, 0.0, 1.0)
    taper = 0.5 - 0.5 * np.cos(math.pi * taper)
    table = np.empty((DEPTHS_MM.size, 2 * half_x + 1, 2 * half_z + 1), dtype=np.float32)
    for i, depth in enumerate(DEPTHS_MM):
        spectrum = layered_transfer(kx, kz, float(depth), fat_mm) * electrode
        field = np.fft.irfft2(spectrum, s=(n_x, n_z)) / step**2
        field = np.fft.fftshift(field)
        cx, cz = n_x // 2, n_z // 2
        table[i] = field[cx - half_x : cx + half_x + 1, cz - half_z : cz + half_z + 1] * taper[None, :]
    return table, z


@dataclass(frozen=True)
class FibreGeometry:
    """Where each simulated fibre lies against the channels, mm: one row per fibre."""

    fibres: Fibres
    weight: np.ndarray  # (F,) how many fibres' membrane current each simulated fibre carries
    lateral_mm: np.ndarray  # (F, C) offset across the fibres from each channel
    depth_mm: np.ndarray  # (F,) below the muscle's surface
    endplate_mm: np.ndarray  # (F, C) end-plate's position along the fibre minus the channel's


def fibre_geometry(
    pool: MotorUnitPool,
    tissue: TissueParameters,
    layout: ElectrodeLayout,
    fat_mm: float,
    rng: np.random.Generator,
) -> FibreGeometry:
    """Grows every unit's fibres (disease included), keeps ``FIBRES_PER_UNIT`` per unit, places them under the
    channels. Grids: x across the fibres, y along them (a unit's y is its innervation zone), z = -depth. Rings: the
    cross-section, skin at the layout's radius; each muscle's innervation zone lies 15-45 mm from the ring."""
    if layout.kind == "grid":
        cross = pool.position_mm[:, [0, 2]]  # x across, z (negative depth) as the cross-section's second axis
        innervation = pool.position_mm[:, 1]
    else:
        cross = pool.position_mm[:, :2]
        side = rng.choice([-1.0, 1.0], len(pool.muscle_names))
        distance = rng.uniform(*RING_IZ_DISTANCE_MM, len(pool.muscle_names))
        innervation = (side * distance)[pool.muscle_index]
    placed = replace(pool, position_mm=np.column_stack([cross, np.zeros(pool.n_units)]))
    every = grow_fibres(placed, tissue, np.zeros(2), rng, reach_mm=None)
    # a random subset per unit, each fibre standing for the unit's membrane area (radius squared) over the subset's
    keep = np.zeros(every.unit.size, dtype=bool)
    weight = np.zeros(every.unit.size)
    order = np.argsort(every.unit, kind="stable")
    bounds = np.searchsorted(every.unit[order], np.arange(pool.n_units + 1))
    area = every.diameter_um**2
    for u in range(pool.n_units):
        members = order[bounds[u] : bounds[u + 1]]
        if members.size == 0:
            continue
        chosen = rng.choice(members, min(FIBRES_PER_UNIT, members.size), replace=False)
        keep[chosen] = True
        weight[chosen] = area[members].sum() / area[chosen].sum()
    per_fibre = ("unit", "xy_mm", "endplate_mm", "half_length_mm", "diameter_um", "delay_s")
    fibres = replace(every, **{name: getattr(every, name)[keep] for name in per_fibre})
    weight = weight[keep]
    endplate_axial = innervation[fibres.unit] + fibres.endplate_mm + tissue.needle_from_endplates_mm
    positions = layout.positions_mm
    if layout.kind == "grid":
        lateral = positions[None, :, 0] - fibres.xy_mm[:, None, 0]
        depth = -fibres.xy_mm[:, 1] - fat_mm
        channel_axial = positions[:, 1]
    else:
        radius = float(np.hypot(*positions[0]))
        angle = np.arctan2(fibres.xy_mm[:, 1], fibres.xy_mm[:, 0])
        channel_angle = np.arctan2(positions[:, 1], positions[:, 0])
        lateral = radius * np.angle(np.exp(1j * (channel_angle[None, :] - angle[:, None])))
        depth = radius - fat_mm - np.hypot(fibres.xy_mm[:, 0], fibres.xy_mm[:, 1])
        channel_axial = np.zeros(positions.shape[0])
    depth = np.clip(depth, 0.2, float(DEPTHS_MM[-1]))  # fibres drawn above the muscle's surface lie just under it
    return FibreGeometry(fibres, weight, lateral, depth, endplate_axial[:, None] - channel_axial[None, :])


def surface_templates(geometry: FibreGeometry, n_units: int, table: np.ndarray, fs: float) -> tuple[np.ndarray, float]:
    """(templates (U, C, T) in µV, template rate): each unit's MUAP at each channel, time 0 at the motor neuron's
    discharge, low-passed at 0.45 ``fs`` on a grid of ``TEMPLATE_OVERSAMPLING`` x ``fs``."""
    fibres = geometry.fibres
    n_channels = geometry.lateral_mm.shape[1]
    fs_template = TEMPLATE_OVERSAMPLING * fs
    half_x = (table.shape[1] - 1) // 2
    n_field = table.shape[2]
    half_z = (n_field - 1) // 2
    n_source = int(round(SOURCE_LENGTH_MM / GRID_MM)) + 1
    source = source_second_derivative(GRID_MM * np.arange(n_source))
    velocity = fibres.velocity_m_s
    ends_index = np.round(fibres.half_length_mm / GRID_MM).astype(np.int64)
    n_lag = int(ends_index.max()) + 1
    n_fft = int(2 ** math.ceil(math.log2(n_lag + n_source)))
    source_fft = np.fft.rfft(source, n_fft)
    longest = float(((n_lag + n_source) * GRID_MM * 1e-3 / velocity).max() + fibres.delay_s.max())
    n_time = int(math.ceil(longest * fs_template)) + 2
    times = np.arange(n_time) / fs_template
    templates = np.zeros((n_units * n_channels, n_time))
    lags = np.arange(n_lag)
    # depth: linear interpolation between the table's depths
    depth_index = np.interp(geometry.depth_mm, DEPTHS_MM, np.arange(DEPTHS_MM.size))
    d0 = np.minimum(np.floor(depth_index).astype(np.int64), DEPTHS_MM.size - 2)
    dw = depth_index - d0
    fibre_index, channel_index = np.nonzero(np.abs(geometry.lateral_mm) < TABLE_HALF_X_MM - GRID_MM)
    for lo in range(0, fibre_index.size, 256):
        f = fibre_index[lo : lo + 256]
        c = channel_index[lo : lo + 256]
        x = geometry.lateral_mm[f, c] / GRID_MM + half_x
        x0 = np.floor(x).astype(np.int64)
        xw = (x - x0)[:, None]
        dd, dwf = d0[f], dw[f][:, None]
        weight = (
            (table[dd, x0] * (1 - xw) + table[dd, x0 + 1] * xw) * (1 - dwf)
            + (table[dd + 1, x0] * (1 - xw) + table[dd + 1, x0 + 1] * xw) * dwf
        ).astype(np.float64)
        s = np.round(geometry.endplate_mm[f, c] / GRID_MM).astype(np.int64)[:, None] + half_z
        right, left = s + lags[None, :], s - lags[None, :]
        ends = ends_index[f]
        w = _take(weight, right, _extent(lags, ends[:, :1])) + _take(weight, left, _extent(lags, ends[:, 1:]))
        potential = np.fft.irfft(np.fft.rfft(w, n_fft, axis=1) * source_fft[None, :], n_fft, axis=1)
        radius_m = 0.5e-6 * fibres.diameter_um[f]
        strength = radius_m**2 * SIGMA_INTRACELLULAR * math.pi * geometry.weight[f] * 1e6  # µV per V/A per (V/m²)
        potential *= (strength * GRID_MM * 1e-3)[:, None]
        position = (times[None, :] - fibres.delay_s[f, None]) * velocity[f, None] * 1e3 / GRID_MM
        values = _interpolate_rows(potential, position)
        front_mm = position * GRID_MM
        points = -2.0 * source_first_derivative(front_mm) * _take(weight, s)
        for side, sign in ((0, 1), (1, -1)):
            at_tendon = _take(weight, s + sign * ends[:, side : side + 1])
            points = points + source_first_derivative(front_mm - GRID_MM * ends[:, side : side + 1]) * at_tendon
        values += points * strength[:, None]
        np.add.at(templates, fibres.unit[f] * n_channels + c, values)
    templates = signal.oaconvolve(templates, anti_alias_taps(fs, fs_template)[None, :], mode="same", axes=1)
    return templates.reshape(n_units, n_channels, n_time), fs_template


def low_rank(templates: np.ndarray, rank: int = RANK) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(time courses (U * rank, T), channel gains (U * rank, C), energy kept per unit (U,)): each unit's
    (C, T) template as the sum of ``rank`` products of a unit-norm channel pattern and a time course (SVD)."""
    n_units, n_channels, n_time = templates.shape
    rank = min(rank, n_channels)
    courses = np.zeros((n_units, rank, n_time))
    gains = np.zeros((n_units, rank, n_channels))
    kept = np.ones(n_units)
    for u in range(n_units):
        left, values, right = np.linalg.svd(templates[u], full_matrices=False)
        courses[u] = values[:rank, None] * right[:rank]
        gains[u] = left[:, :rank].T
        total = float((values**2).sum())
        if total > 0:
            kept[u] = float((values[:rank] ** 2).sum()) / total
    return courses.reshape(n_units * rank, n_time), gains.reshape(n_units * rank, n_channels), kept
