"""Motor-unit action potential shapes and their amplitude at each electrode.

Each MUAP is a sum of Gaussian-derivative components a_k * phi_n((t - tau_k) / sigma_k), with phi_1 biphasic and
phi_2 triphasic. That family has closed forms for the things the simulator needs:
- the volume conductor between fibres and skin acts as a Gaussian low-pass of width sigma_t, which maps each
  component to sigma' = sqrt(sigma^2 + sigma_t^2) with amplitude scaled by (sigma / sigma')^(n + 1);
- stretching in time (conduction velocity falling with fatigue) is t -> t / stretch, so S(f) -> stretch S(stretch f);
- the Fourier transform is sigma sqrt(2 pi) (i 2 pi f sigma)^n exp(-(2 pi f sigma)^2 / 2) exp(-i 2 pi f tau),
  which gives the true spectrum of the noise-free signal for the ground truth.
Time 0 of a shape is its onset (the first component starts 4 sigma after it), so a discharge never reaches back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulators.conditions import SubjectParameters
from simulators.electrodes import ElectrodeLayout
from simulators.motor_units import MotorUnitPool

NEEDLE_MAIN_WIDTH_S = 0.5e-3  # sigma of the main triphasic spike of a healthy needle MUAP
NEEDLE_AMPLITUDE_UV = 450.0  # main-spike amplitude of the smallest healthy unit at the needle (~0.65 mV peak-to-peak)
SURFACE_AMPLITUDE_UV = 450.0  # main-component amplitude of the smallest healthy unit right under an electrode
TISSUE_SHAPE_PENALTY = 1.0  # share of the volume conductor's preference for long MUAPs that is kept (see below)
SLOW_WAVE_RATIO = 0.25  # relative size of the slow biphasic wave that sets the long initial/terminal phases
# A needle sees a distant unit through the muscle around its tip: the spike (from the few fibres nearest the tip)
# falls off steeply (``channel_gains``), while the slow initial/terminal phases, summed over all the unit's
# fibres, fall off over millimetres (Nandedkar et al. 1988: amplitude reflects fibres within ~0.5 mm, duration
# those within ~2.5 mm). The tissue also low-passes the spike, so a far MUAP is smaller, blunter and about as
# long, never shorter. The two constants set those near-field effects (needle layout only).
NEEDLE_LOWPASS_S_PER_MM = 0.15e-3  # Gaussian smoothing width added per mm between the territory and the tip
NEEDLE_SLOW_REACH_MM = 2.5  # the slow wave has fallen to half here, and fades fast beyond (the spike: 0.8 mm)
NEEDLE_SPIKE_REACH_MM = 0.8


@dataclass(frozen=True)
class MuapShapes:
    """Component parameters per unit, arrays (U, K); unused components have amplitude 0."""

    amplitude: np.ndarray
    delay_s: np.ndarray
    width_s: np.ndarray
    order: np.ndarray  # 1 or 2
    support_s: np.ndarray  # (U,) time after onset by which the MUAP has returned to baseline

    def evaluate(self, units: np.ndarray, local_time_s: np.ndarray) -> np.ndarray:
        """MUAP values of ``units`` (S,) at times since onset ``local_time_s`` (S, L), in µV."""
        xi = (local_time_s[:, :, None] - self.delay_s[units, None, :]) / self.width_s[units, None, :]
        first = self.order[units, None, :] == 1
        polynomial = np.where(first, -xi, xi * xi - 1.0)
        return np.einsum("slk,sk->sl", polynomial * np.exp(-0.5 * xi * xi), self.amplitude[units])

    def spectrum(self, units: np.ndarray, freqs_hz: np.ndarray, stretch: np.ndarray | float = 1.0) -> np.ndarray:
        """Fourier transforms (len(units), F) of the MUAPs stretched in time by ``stretch`` (per unit or scalar)."""
        stretch = np.broadcast_to(np.asarray(stretch, dtype=np.float64), units.shape)
        f = freqs_hz[None, :, None] * stretch[:, None, None]
        sigma = self.width_s[units, None, :]
        omega_sigma = 2.0 * math.pi * f * sigma
        order = self.order[units, None, :]
        transform = (
            self.amplitude[units, None, :]
            * sigma
            * math.sqrt(2.0 * math.pi)
            * (1j * omega_sigma) ** order
            * np.exp(-0.5 * omega_sigma**2 - 2j * math.pi * f * self.delay_s[units, None, :])
        )
        return stretch[:, None] * transform.sum(axis=2)

    def peak_to_peak(self, units: np.ndarray, fs: float = 50_000.0) -> np.ndarray:
        """Peak-to-peak amplitude of each unit's unstretched MUAP (µV), sampled finely."""
        times = np.arange(0.0, float(self.support_s[units].max()), 1.0 / fs)
        values = self.evaluate(units, np.broadcast_to(times, (units.size, times.size)))
        return values.max(axis=1) - values.min(axis=1)


@dataclass(frozen=True)
class SampledShapes:
    """MUAPs as cached templates (U, T) sampled at ``fs`` from the discharge (time 0), read by linear
    interpolation: the fibre-level needle model's units (``simulators.fibres``). Same interface as MuapShapes."""

    templates: np.ndarray
    fs: float
    support_s: np.ndarray  # (U,)

    @classmethod
    def from_templates(cls, templates: np.ndarray, fs: float, floor_uv: float = 0.05) -> SampledShapes:
        """Trims each template after its last value above ``floor_uv`` (µV) and sets its support there."""
        above = np.abs(templates) > floor_uv
        last = np.where(above.any(axis=1), templates.shape[1] - np.argmax(above[:, ::-1], axis=1), 1)
        support = (last + 1) / fs
        length = int(last.max()) + 2
        trimmed = np.zeros((templates.shape[0], length))
        trimmed[:, : min(length, templates.shape[1])] = templates[:, :length]
        trimmed[np.arange(length)[None, :] >= last[:, None]] = 0.0
        return cls(trimmed, float(fs), support)

    def evaluate(self, units: np.ndarray, local_time_s: np.ndarray) -> np.ndarray:
        """MUAP values of ``units`` (S,) at times since the discharge ``local_time_s`` (S, L), in µV."""
        position = np.asarray(local_time_s) * self.fs
        whole = np.floor(position).astype(np.int64)
        fraction = position - whole
        inside = (whole >= 0) & (whole < self.templates.shape[1] - 1)
        whole = np.clip(whole, 0, self.templates.shape[1] - 2)
        rows = np.asarray(units)[:, None]
        values = self.templates[rows, whole] * (1.0 - fraction) + self.templates[rows, whole + 1] * fraction
        return np.where(inside, values, 0.0)

    def spectrum(self, units: np.ndarray, freqs_hz: np.ndarray, stretch: np.ndarray | float = 1.0) -> np.ndarray:
        """Fourier transforms (len(units), F) in µV·s of the MUAPs stretched in time by ``stretch``."""
        n_fft = int(2 ** math.ceil(math.log2(8 * self.templates.shape[1])))
        transform = np.fft.rfft(self.templates[units], n_fft, axis=1) / self.fs
        grid = np.fft.rfftfreq(n_fft, 1.0 / self.fs)
        stretch = np.broadcast_to(np.asarray(stretch, dtype=np.float64), np.asarray(units).shape)
        out = np.empty((len(units), freqs_hz.size), dtype=np.complex128)
        for row in range(len(units)):
            f = freqs_hz * stretch[row]
            out[row] = np.interp(f, grid, transform[row].real, right=0.0) + 1j * np.interp(
                f, grid, transform[row].imag, right=0.0
            )
        return stretch[:, None] * out

    def peak_to_peak(self, units: np.ndarray, fs: float = 50_000.0) -> np.ndarray:
        """Peak-to-peak amplitude of each unit's template (µV)."""
        values = self.templates[units]
        return values.max(axis=1) - values.min(axis=1)


def build_shapes(
    pool: MotorUnitPool, subject: SubjectParameters, layout: ElectrodeLayout, rng: np.random.Generator
) -> MuapShapes:
    """Draws every unit's MUAP: triphasic main spike, slow wave, and the condition's satellite phases."""
    n_units = pool.n_units
    lo_extra, hi_extra = subject.extra_phases
    n_extra = rng.integers(lo_extra, hi_extra + 1, n_units)
    n_components = 2 + int(hi_extra)
    amplitude = np.zeros((n_units, n_components))
    delay = np.zeros((n_units, n_components))
    width = np.full((n_units, n_components), 1e-3)
    order = np.full((n_units, n_components), 2, dtype=np.int64)

    main_width = NEEDLE_MAIN_WIDTH_S * subject.duration_scale * rng.uniform(0.85, 1.15, n_units)
    main_width = main_width * pool.size**-0.05  # bigger units conduct a little faster: slightly sharper spikes
    duration = 12.0 * main_width  # ~9-10 ms for a healthy unit from first to last deflection
    size_gain = pool.size ** (0.3 if layout.kind == "needle" else 0.5)
    base = subject.amplitude_scale * size_gain * rng.uniform(0.8, 1.2, n_units)
    amplitude[:, 0] = base
    width[:, 0] = main_width
    # slow biphasic wave spanning the whole duration: the long, low initial and terminal phases of a needle MUAP
    # (a near-field feature: through tissue it would dominate and drag the surface spectrum below physiology)
    amplitude[:, 1] = SLOW_WAVE_RATIO * base if layout.kind == "needle" else 0.0
    width[:, 1] = duration / 3.0
    order[:, 1] = 1
    for k in range(int(hi_extra)):
        present = n_extra > k
        sign = rng.choice([-1.0, 1.0], n_units)
        amplitude[:, 2 + k] = np.where(present, sign * rng.uniform(0.25, 0.6, n_units) * base, 0.0)
        delay[:, 2 + k] = subject.phase_spread * duration * rng.uniform(-0.5, 0.5, n_units)
        width[:, 2 + k] = main_width * rng.uniform(0.5, 0.9, n_units)

    if layout.kind == "needle":
        amplitude *= NEEDLE_AMPLITUDE_UV
        width = _near_field(amplitude, width, needle_distance_mm(pool, layout).min(axis=1))
    else:
        amplitude, width = _through_tissue(amplitude, width, order, _depth_below_skin_mm(pool, layout))
        amplitude *= SURFACE_AMPLITUDE_UV
    lead = np.max(4.0 * width - delay, axis=1, keepdims=True)  # shift so every component starts after onset
    delay = delay + lead
    support = np.max(delay + 4.0 * width, axis=1)
    used = np.any(amplitude != 0.0, axis=0)  # components no unit uses would only cost time
    return MuapShapes(amplitude[:, used], delay[:, used], width[:, used], order[:, used], support)


def _near_field(amplitude: np.ndarray, width: np.ndarray, distance_mm: np.ndarray) -> np.ndarray:
    """Widths after the tissue between each unit's territory and the needle tip (``distance_mm`` (U,)); scales the
    slow wave (component 1) in place so that, after the spike gain of ``channel_gains``, it falls off over
    NEEDLE_SLOW_REACH_MM instead. Peaks keep their value (the gain sets amplitude), so distance only blunts."""
    distance = distance_mm[:, None]
    widened = np.sqrt(width**2 + (NEEDLE_LOWPASS_S_PER_MM * distance) ** 2)
    spike_gain = _needle_gain(distance_mm)
    # fourth power: flat within the ~2.5 mm that sets duration, gone a few mm further (no far-field hum)
    slow_gain = 1.0 / (1.0 + (distance_mm / NEEDLE_SLOW_REACH_MM) ** 4)
    amplitude[:, 1] *= slow_gain / spike_gain
    return widened


def _needle_gain(distance_mm: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + (distance_mm / NEEDLE_SPIKE_REACH_MM) ** 2)


def needle_distance_mm(pool: MotorUnitPool, layout: ElectrodeLayout) -> np.ndarray:
    """(U, C) distance from the edge of each unit's territory to each needle electrode (0 inside it), in mm."""
    electrodes = np.column_stack([layout.positions_mm, np.zeros(layout.n_channels)])
    offset = pool.position_mm[:, None, :] - electrodes[None, :, :]
    return np.maximum(np.linalg.norm(offset, axis=2) - 0.5 * pool.territory_mm[:, None], 0.0)


def _through_tissue(
    amplitude: np.ndarray, width: np.ndarray, order: np.ndarray, depth_mm: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian low-pass of the volume conductor, widening with depth, normalised so that a healthy main spike
    keeps its amplitude. The low-pass shrinks short (myopathic) MUAPs and spares long (neuropathic) ones:
    TISSUE_SHAPE_PENALTY = 1 keeps that whole effect (surface RMS at equal %MVC: myopathy ~0.1x, neuropathy ~10x
    healthy, more than real surface EMG shows); 0.25 would leave ~0.3x / 3x. The bundled model was trained at 1,
    so changing it means retraining (a model trained at 1 reads most 0.25-myopathy subjects as healthy)."""
    tissue = (0.8e-3 + 0.12e-3 * depth_mm)[:, None]
    widened = np.sqrt(width**2 + tissue**2)
    reference = width[:, :1] ** (1.0 - TISSUE_SHAPE_PENALTY) * NEEDLE_MAIN_WIDTH_S**TISSUE_SHAPE_PENALTY
    normaliser = (np.sqrt(reference**2 + tissue**2) / reference) ** 3
    return amplitude * (width / widened) ** (order + 1) * normaliser, widened


def _depth_below_skin_mm(pool: MotorUnitPool, layout: ElectrodeLayout) -> np.ndarray:
    if layout.kind == "ring":
        skin_radius = float(np.hypot(*layout.positions_mm[0]))
        return skin_radius - np.hypot(pool.position_mm[:, 0], pool.position_mm[:, 1])
    return np.abs(pool.position_mm[:, 2])


def channel_gains(pool: MotorUnitPool, layout: ElectrodeLayout) -> np.ndarray:
    """(U, C) attenuation from each unit's territory to each electrode (1 = at the electrode)."""
    if layout.kind == "needle":
        return _needle_gain(needle_distance_mm(pool, layout))
    electrodes = np.column_stack([layout.positions_mm, np.zeros(layout.n_channels)])
    offset = pool.position_mm[:, None, :] - electrodes[None, :, :]
    if layout.kind == "grid":
        # potentials spread far further along the fibres (rows) than across them
        offset = offset * np.array([1.0, 1.0 / 3.0, 1.0])
    distance = np.maximum(np.linalg.norm(offset, axis=2) - 0.5 * pool.territory_mm[:, None], 0.0)
    return (10.0 / (10.0 + distance)) ** 2


def true_muap(
    shapes: MuapShapes, gains: np.ndarray, unit: int, fs: float, channel: int = 0, pad_s: float = 0.01
) -> np.ndarray:
    """The noise-free, unfiltered MUAP of ``unit`` as ``channel`` records it (shape x gain), sampled at ``fs`` from
    ``pad_s`` before its onset to ``pad_s`` after its support, in µV: the truth to compare extracted templates
    with (a grid's conduction delays are not applied)."""
    times = np.arange(-pad_s, float(shapes.support_s[unit]) + pad_s, 1.0 / fs)
    waveform = shapes.evaluate(np.array([unit]), np.clip(times, 0.0, None)[None, :])[0]
    waveform[times < 0] = 0.0
    return waveform * float(gains[unit, channel])
