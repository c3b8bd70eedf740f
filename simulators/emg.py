"""The simulated EMG source: motor-unit pools driven by a force profile, through MUAPs and electrodes, plus artifacts.

Generation runs in fixed internal blocks (0.25 s) whatever the caller's read sizes, and every random draw is tied
to a block or to absolute time, so ``read`` in any chunking returns exactly the same samples for a seed. Each block:
profile -> muscle activation -> fatigue (conduction velocity) -> discharge times -> MUAPs rendered per spike at its
exact (sub-sample) time and stretch into a (samples x units) matrix -> one matrix product with the (units x channels)
gains -> the tail that runs past the block is carried into the next -> anti-alias/decimate when fs < 1 kHz ->
artifacts. Ground truth (condition, gesture, %MVC, conduction velocity, MNF/MDF) is analytic from the same state.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import signal

from simulators import surface
from simulators.artifacts import DEFAULT_ARTIFACTS, ArtifactConfig, ArtifactGenerator
from simulators.conditions import CONDITIONS, draw_subject
from simulators.electrodes import ElectrodeLayout
from simulators.fatigue import EnduranceFatigue, FatigueModel
from simulators.fibres import (
    FIBRILLATION_ISI_COV,
    NEEDLE_NOISE_UV_PER_RT_HZ,
    fibrillating_fibres,
    grow_fibres,
    join,
    needle_templates,
)
from simulators.force import ForceFluctuation, ForceModel, steady_force
from simulators.jitter import FibreJitter, margin_samples, near_fibres, split_templates, subset
from simulators.motor_units import SpikeGenerator, build_pool, gestures_for, with_spontaneous_units
from simulators.muap import SampledShapes, build_shapes, channel_gains
from simulators.tissue import SEVERITIES, draw_tissue

# Bump whenever the samples generated for a given config change, so caches of simulated data can key on it.
SIMULATOR_VERSION = "2026-11-24.3"  # .3: needle MUAPs blunter, not shorter, with distance
# The opt-in fibre-level needle model (tissue="fibres") has its own version: its samples change with it, while every
# legacy config keeps SIMULATOR_VERSION's samples (benchmarks/bench_sim_checksum.py), so surface caches stay valid.
# .3: reinnervation by collateral sprouting (adopted fibres around a parent fibre, end-plates near its), its maturity
# and the most a unit can take on; endurance fatigue (opt-in); .4: the needle's muscle conductivities are the surface
# model's (Farina & Merletti 2001, 0.1 / 0.5 S/m; were 0.063 / 0.33): one muscle, one set; .5: the needle's held force
# fluctuates around its target (simulators.force.ForceFluctuation, Baweja et al. 2009); .6: reinnervation's adopted
# fibres stay next to their parent fibres, the territory grows only at its edge (Stålberg & Dioszeghy 1991); changes
# neuropathy on the needle and on the surface fibre model; .7: the needle's white noise is a fixed floor in µV/√Hz
# measured on the real recordings (fibres.NEEDLE_NOISE_UV_PER_RT_HZ), not 30 dB below the signal (needle only)
FIBRE_MODEL_VERSION = "2026-12-06.8"  # .8: the needle core is its elliptical face in the bevel plane (fibres.py)
PROFILES = ("rest", "ramp", "hold", "intermittent", "gestures")
TISSUE_MODELS = ("legacy", "fibres")
# the opt-in endurance fatigue's own version (written to a file's config_json with it), for the same reason
# .2: the maximal voluntary drive falls with fatigue (more at low force), potentials keep their energy as they stretch
ENDURANCE_FATIGUE_VERSION = "2026-12-06.2"
FATIGUE_MODELS = ("legacy", "endurance")  # endurance: force-dependent, ends at an endurance limit (simulators.fatigue)
# between-subject spread of endurance time (log-normal SD): elbow flexors at 20 %MVC held 8.2 ± 6.2 min
ENDURANCE_SCALE_LOG_SD = 0.3
BLOCK_S = 0.25
NEEDLE_MIN_FS = 4000.0
SURFACE_MIN_FS = 100.0
INTERNAL_MIN_FS = 1000.0  # surface MUAPs reach ~450 Hz, so low output rates are generated above this and decimated
SPIKES_PER_RENDER = 512


@dataclass
class SimulationConfig:
    """Everything that defines a simulated recording; identical configs give identical samples."""

    layout: str | ElectrodeLayout = "ring8"
    fs: float = 2048.0
    condition: str = "healthy"
    profile: str = "gestures"
    mvc_percent: float = 50.0
    gesture: str | None = None  # muscles used by rest/ramp/hold/intermittent; default fist (ring) or contraction
    period_s: float = 5.0  # on and off time of intermittent contractions and of each gesture
    ramp_s: float = 10.0
    # rest before the profile begins. A live monitor learns the rest level from the stream's first seconds, so a
    # hold that contracts from the first sample would be learnt as rest; 0 here because the training corpus
    # (models.datasets) draws hold subjects and must stay sample-identical for its cache and the bundled model.
    # The user-facing commands (simulate, demo) switch it on for hold and ramp.
    rest_lead_in_s: float = 0.0
    fatigue_rate: float = 0.15  # fraction of conduction velocity lost per minute at 50% MVC
    recovery_rate: float = 1.0  # per minute, exponential recovery at rest
    mains_hz: float = 50.0
    snr_db: float = 30.0  # against the mean channel RMS of the noise-free signal at the profile's contraction
    # (not on the fibre-level needle, whose noise floor is fixed: simulators.fibres.NEEDLE_NOISE_UV_PER_RT_HZ)
    artifacts: tuple[str, ...] = DEFAULT_ARTIFACTS
    seed: int = 0
    record_spikes: bool = False
    # "fibres": MUAPs summed over each unit's muscle fibres, disease as tissue changes at ``severity``
    # (simulators.fibres, simulators.tissue), at a concentric needle or, on a ring or grid, through skin, fat and
    # muscle layers (simulators.surface); "legacy": the shape-family model every bundled model was trained on
    tissue: str = "legacy"
    severity: str = "moderate"  # mild / moderate / severe; used by tissue="fibres" for myopathy and neuropathy
    # "endurance": fatigue grows with force to an endurance limit and needs more drive as it grows (fatigue_rate is
    # then unused); "legacy": conduction velocity falls at fatigue_rate, the model every bundled model was trained on
    fatigue_model: str = "legacy"
    artifact_options: dict[str, Any] = field(default_factory=dict)

    def electrode_layout(self) -> ElectrodeLayout:
        return self.layout if isinstance(self.layout, ElectrodeLayout) else ElectrodeLayout.from_name(self.layout)

    def validate(self) -> None:
        """Raises ValueError naming the first invalid setting or combination."""
        durations = ("period_s", "ramp_s", "rest_lead_in_s")
        numbers = ("fs", "mvc_percent", *durations, "fatigue_rate", "recovery_rate", "mains_hz", "snr_db")
        for name in numbers:
            if not math.isfinite(float(getattr(self, name))):
                raise ValueError(f"{name} must be a finite number, not {getattr(self, name)}")
        layout = self.electrode_layout()
        if layout.kind == "needle" and self.fs < NEEDLE_MIN_FS:
            raise ValueError(
                f"needle EMG needs fs >= {NEEDLE_MIN_FS:g} Hz (its MUAPs reach 1-2 kHz); got {self.fs:g} Hz"
            )
        if self.fs < SURFACE_MIN_FS or self.fs > 100_000:
            raise ValueError(f"sampling rate must be between {SURFACE_MIN_FS:g} Hz and 100 kHz, not {self.fs:g} Hz")
        if self.condition not in CONDITIONS:
            raise ValueError(f"unknown condition {self.condition!r}: use one of {', '.join(CONDITIONS)}")
        if self.tissue not in TISSUE_MODELS:
            raise ValueError(f"unknown tissue model {self.tissue!r}: use one of {', '.join(TISSUE_MODELS)}")
        if self.fatigue_model not in FATIGUE_MODELS:
            raise ValueError(f"unknown fatigue model {self.fatigue_model!r}: use one of {', '.join(FATIGUE_MODELS)}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}: use one of {', '.join(SEVERITIES)}")
        if self.tissue == "fibres" and layout.kind == "needle" and layout.n_channels != 1:
            raise ValueError("the fibre-level needle model covers one concentric needle")
        if self.tissue == "fibres" and layout.kind not in ("needle", "ring", "grid"):
            raise ValueError(f"the fibre-level tissue model needs a needle, ring or grid layout, not {layout.kind!r}")
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}: use one of {', '.join(PROFILES)}")
        if not 0.0 <= self.mvc_percent <= 100.0:
            raise ValueError(f"contraction level must be 0-100 %MVC, not {self.mvc_percent:g}")
        if self.gesture is not None and self.gesture not in gestures_for(layout):
            raise ValueError(f"unknown gesture {self.gesture!r} for a {layout.kind}: {', '.join(gestures_for(layout))}")
        if self.period_s <= 0 or self.ramp_s <= 0:
            raise ValueError("period and ramp durations must be positive")
        if self.rest_lead_in_s < 0:
            raise ValueError(f"rest lead-in must not be negative, not {self.rest_lead_in_s:g} s")
        if self.fatigue_rate < 0 or self.recovery_rate < 0:
            raise ValueError("fatigue and recovery rates must not be negative")


class ForceProfile:
    """Commanded contraction over time: which gesture, at what %MVC, and each muscle's activation."""

    def __init__(self, config: SimulationConfig, muscle_names: tuple[str, ...], gestures: dict[str, dict[str, float]]):
        self.kind = config.profile
        self.level = config.mvc_percent / 100.0
        self.period_s = config.period_s
        self.ramp_s = config.ramp_s
        self.rest_lead_in_s = config.rest_lead_in_s
        self.cycle = [name for name in gestures if name != "rest"]
        default = "fist" if "fist" in gestures else self.cycle[0]
        self.held_gesture = config.gesture or default
        self.weights = {
            name: np.array([pattern.get(muscle, 0.0) for muscle in muscle_names]) for name, pattern in gestures.items()
        }

    def at(self, time_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(gesture index into ``names``, contraction level in fraction of MVC) at each time."""
        time_s = np.asarray(time_s, dtype=np.float64)
        if self.rest_lead_in_s <= 0:  # no shift at all: the corpus's samples must not move by a rounding
            return self._profile_at(time_s)
        since_start = time_s - self.rest_lead_in_s
        gesture, level = self._profile_at(since_start)
        waiting = since_start < 0
        rest = self.names.index("rest")
        return np.where(waiting, rest, gesture), np.where(waiting, 0.0, level)

    def _profile_at(self, time_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``at`` measured from the profile's start (after the lead-in)."""
        names = self.names
        held = names.index(self.held_gesture)
        rest = names.index("rest")
        if self.kind == "rest":
            return np.full(time_s.shape, rest), np.zeros(time_s.shape)
        if self.kind == "hold":
            return np.full(time_s.shape, held), np.full(time_s.shape, self.level)
        if self.kind == "ramp":
            return np.full(time_s.shape, held), self.level * np.clip(time_s / self.ramp_s, 0.0, 1.0)
        slot = np.floor(time_s / self.period_s).astype(np.int64)
        on = slot % 2 == 1  # starts at rest, like the recorded gesture sessions
        if self.kind == "intermittent":
            return np.where(on, held, rest), np.where(on, self.level, 0.0)
        cycled = np.array([names.index(g) for g in self.cycle])[(slot // 2) % len(self.cycle)]
        return np.where(on, cycled, rest), np.where(on, self.level, 0.0)

    @property
    def names(self) -> list[str]:
        return list(self.weights)

    def activation(self, time_s: np.ndarray) -> np.ndarray:
        """(N, muscles) activation in fraction of MVC."""
        gesture, level = self.at(time_s)
        table = np.stack([self.weights[name] for name in self.names])
        return table[gesture] * level[:, None]


_blas_controller: Any = None


def _one_blas_thread() -> Any:
    """Context limiting BLAS to one thread while a block is generated. The products here are small (hundreds of
    rows); extra OpenBLAS threads only spin, and on a loaded 2-core machine that made 256-channel generation 10x
    slower (below real time). ThreadpoolController.limit costs microseconds; threadpoolctl comes with scikit-learn."""
    global _blas_controller
    if _blas_controller is None:
        try:
            from threadpoolctl import ThreadpoolController

            _blas_controller = ThreadpoolController()
        except ImportError:
            _blas_controller = False
    if _blas_controller is False:
        return contextlib.nullcontext()
    return _blas_controller.limit(limits=1, user_api="blas")


@dataclass
class _Propagation:
    """Conduction along the fibres of a grid: each row of electrodes sees a unit's MUAP delayed by its distance
    along y from the unit's innervation zone over the unit's conduction velocity (which fatigue lowers)."""

    row_channels: list[np.ndarray]  # channels sharing one y (one grid row)
    distance_mm: np.ndarray  # (U, rows) |y_row - y_innervation_zone|
    velocity_m_s: np.ndarray  # (U,) fresh conduction velocity

    @classmethod
    def for_grid(cls, simulator: EmgSimulator) -> _Propagation:
        y = simulator.layout.positions_mm[:, 1]
        rows = np.unique(y)
        pool = simulator.pool
        # larger units conduct faster (about +-10 % across the pool)
        rank = np.argsort(np.argsort(pool.size)) / max(pool.n_units - 1, 1)
        velocity = simulator.subject.conduction_velocity_m_s * (0.9 + 0.2 * rank)
        return cls(
            row_channels=[np.flatnonzero(y == row) for row in rows],
            distance_mm=np.abs(rows[None, :] - pool.position_mm[:, 1:2]),
            velocity_m_s=velocity,
        )

    def max_delay_samples(self, cv_floor: float, fs: float) -> int:
        return int(math.ceil(float((self.distance_mm / (self.velocity_m_s[:, None] * cv_floor)).max()) * 1e-3 * fs)) + 2

    def project(self, rendered: np.ndarray, gains: np.ndarray, relative_cv: np.ndarray, fs: float) -> np.ndarray:
        """(samples, C): each row's channels get the units' signals delayed (linear interpolation) then mixed."""
        n_rows, n_units = rendered.shape
        delays = self.distance_mm / (self.velocity_m_s * relative_cv)[:, None] * 1e-3 * fs
        out = np.empty((n_rows, gains.shape[1]))
        flat = np.concatenate([np.zeros(2 * n_units), rendered.ravel()])  # rows -1 and -2 read zeros
        time_index = np.arange(n_rows)[:, None]
        columns = np.arange(n_units)[None, :]
        for row, channels in enumerate(self.row_channels):
            whole = np.floor(delays[:, row]).astype(np.int64)
            fraction = delays[:, row] - whole
            source = np.maximum(time_index - whole[None, :], -2) + 2
            at = flat.take(source * n_units + columns)
            before = np.vstack([np.zeros((1, n_units)), at[:-1]])  # x(t - whole - 1): the same gather, one row on
            out[:, channels] = (at + fraction * (before - at)) @ gains[:, channels]
        return out


@dataclass
class _BlockRecord:
    start: int
    relative_cv: np.ndarray  # (N, muscles) at the output rate
    capacity: np.ndarray | None = None  # (N, muscles) share of the fresh MVC left (endurance fatigue only)


class EmgSimulator:
    """Physiological multichannel EMG in µV, read as a continuous stream or generated offline."""

    def __init__(self, config: SimulationConfig | None = None) -> None:
        config = config or SimulationConfig()
        config.validate()
        self.config = config
        self.layout = config.electrode_layout()
        self.fs = float(config.fs)
        self.n_channels = self.layout.n_channels
        self.channel_labels = list(self.layout.labels)
        self.mode = "needle" if self.layout.kind == "needle" else "surface"
        rng = np.random.default_rng([config.seed, 1])
        self.subject = draw_subject(config.condition, rng)
        self.tissue = None
        self.fibres = None
        self.force: ForceModel | None = None
        self._jitter: FibreJitter | None = None
        # a held voluntary force fluctuates around its target (simulators.force.ForceFluctuation); the fibre-level
        # needle model only for now: every other config keeps its samples
        self._steadiness: ForceFluctuation | None = None
        # fibre-level surface model: render units are each pool unit's RANK time courses (pool unit = index // RANK)
        self._unit_of: np.ndarray | None = None
        if config.tissue == "fibres" and self.layout.kind != "needle":
            self._build_surface_fibres(config, rng)
        elif config.tissue == "fibres":
            tissue_rng = self._fibre_tissue_and_pool(config, rng)
            self.fibres = grow_fibres(self.pool, self.tissue, self.layout.positions_mm[0], tissue_rng)
            # denervated fibres near the tip fibrillate at rest: extra sources with fixed, regular rates
            denervated, rates = fibrillating_fibres(self.tissue, self.pool.n_units, tissue_rng)
            covs = tissue_rng.uniform(*FIBRILLATION_ISI_COV, rates.size)
            self.n_motor_units = self.pool.n_units
            self.pool = with_spontaneous_units(self.pool, rates, covs)
            self.fibres = join(self.fibres, denervated)
            templates, template_fs = needle_templates(self.fibres, self.pool.n_units, self.fs)
            near, parents = near_fibres(self.fibres, self.n_motor_units)
            children, _ = needle_templates(subset(self.fibres, near), near.size, self.fs)
            split = split_templates(templates, children, parents, template_fs)
            self._render_shapes = SampledShapes.from_templates(split, template_fs)
            self._render_gains = np.ones((split.shape[0], 1))
            self._jitter = FibreJitter(parents, self.pool.n_units, self.tissue.jitter_us * 1e-6, self.tissue.blocking)
            # %MVC is force, against a healthy muscle of the same size: weaker (myopathic) units need more drive
            reference = steady_force(self.pool, self.fibres.healthy_area_mm2, 1.0) * (
                self.tissue.units_before_loss / self.n_motor_units
            )
            self.force = ForceModel(self.pool, self.fibres.area_mm2, reference)
            self._steadiness = ForceFluctuation.draw(np.random.default_rng([config.seed, 6]))
            self.shapes = SampledShapes.from_templates(templates, template_fs)
            self.gains = np.ones((self.pool.n_units, 1))
        else:
            self.pool = build_pool(self.layout, self.subject, rng)
            self.n_motor_units = self.pool.n_units
            self.shapes = build_shapes(self.pool, self.subject, self.layout, rng)
            self.gains = channel_gains(self.pool, self.layout)
        self.profile = ForceProfile(config, self.pool.muscle_names, gestures_for(self.layout))
        self.fatigue: FatigueModel | EnduranceFatigue = FatigueModel(config.fatigue_rate, config.recovery_rate)
        self._endurance = config.fatigue_model == "endurance"
        if self._endurance:
            scale = float(np.exp(np.random.default_rng([config.seed, 5]).normal(0.0, ENDURANCE_SCALE_LOG_SD)))
            self.fatigue = EnduranceFatigue(endurance_scale=scale, recovery_per_min=config.recovery_rate)
            if self.force is not None:  # the fresh muscle's force at each drive, a share of its MVC
                drives = np.linspace(0.0, 1.0, 201)
                forces = np.array([self.force.force_at(d) for d in drives]) / self.force.force_at(1.0)
                self.fatigue.force_fraction = lambda drive: np.interp(drive, drives, forces)
        # Rohmert's curve is in shares of the subject's own MVC; with the force model %MVC is a healthy muscle's
        self._own_mvc = self.force.max_force if self.force is not None else 1.0
        self._spikes = SpikeGenerator(self.pool, np.random.default_rng([config.seed, 2]))
        if self._jitter is None:
            self._render_shapes, self._render_gains = self.shapes, self.gains
        self._render_muscle = np.zeros(self._render_shapes.support_s.size, dtype=np.int64)
        if self._unit_of is not None:
            self._render_muscle[:] = self.pool.muscle_index[self._unit_of]
        else:
            self._render_muscle[: self.pool.n_units] = self.pool.muscle_index

        self._factor = 1 if self.mode == "needle" else max(1, math.ceil(INTERNAL_MIN_FS / self.fs))
        self._internal_fs = self.fs * self._factor
        self._block = max(1, int(round(BLOCK_S * self.fs)))
        stretch_max = 1.0 / self.fatigue.floor
        support = max(float(self.shapes.support_s.max()), float(self._render_shapes.support_s.max()))
        self._tail = int(math.ceil(support * stretch_max * self._internal_fs)) + 2
        self._tail += margin_samples(self._jitter, self._internal_fs)
        # the fibre-level surface templates carry their own propagation along the fibres
        grid = self.layout.kind == "grid" and self._unit_of is None
        self._propagation = _Propagation.for_grid(self) if grid else None
        if self._propagation is not None:
            self._tail += self._propagation.max_delay_samples(self.fatigue.floor, self._internal_fs)
        self._carry = np.zeros((self._tail, self.n_channels))
        self._cv_state = np.ones(len(self.pool.muscle_names))
        self._fatigue_state = np.zeros(len(self.pool.muscle_names))  # φ of the endurance model
        self._antialias = None
        if self._factor > 1:
            self._antialias = signal.butter(8, 0.45 * self.fs, fs=self._internal_fs, output="sos")
            self._antialias_state = np.zeros((self._antialias.shape[0], 2, self.n_channels))
        self._gain_power = (self.gains**2).sum(axis=1)
        self._freqs = np.linspace(0.0, self.fs / 2.0, 513)[1:]
        # fresh MUAP power spectra out to the highest frequency a fatigue-stretched query can reach
        self._fresh_freqs = np.linspace(0.0, self.fs / 2.0 / self.fatigue.floor, 2049)
        n_shapes = self.shapes.support_s.size  # pool units; the fibre-level surface model's time courses
        self._fresh_power = np.concatenate(
            [
                np.abs(self.shapes.spectrum(chunk, self._fresh_freqs)) ** 2
                for chunk in np.array_split(np.arange(n_shapes), max(1, n_shapes // 128))
            ]
        ).astype(np.float32)
        self._response = np.ones_like(self._freqs)
        if self._antialias is not None:
            _, h = signal.sosfreqz(self._antialias, worN=self._freqs, fs=self._internal_fs)
            self._response = np.abs(h) ** 2

        if config.tissue == "fibres" and self.layout.kind == "needle":
            # a needle's noise is its electrode's and amplifier's, fixed in µV/√Hz (fibres.NEEDLE_NOISE_UV_PER_RT_HZ,
            # measured on the real recordings), not a share of the muscle's signal; fibre model .7
            self.noise_rms_uv = NEEDLE_NOISE_UV_PER_RT_HZ * math.sqrt(self.fs / 2.0)
        else:
            self.noise_rms_uv = self.reference_rms_uv() / 10.0 ** (config.snr_db / 20.0)
        options = {"enabled": tuple(config.artifacts), "mains_hz": float(config.mains_hz), **config.artifact_options}
        if config.mains_hz == 0:
            options["enabled"] = tuple(a for a in options["enabled"] if a != "mains")
            options["mains_hz"] = 50.0
        self.artifacts = ArtifactGenerator(
            ArtifactConfig(**options), self.n_channels, self.fs, config.seed, self.noise_rms_uv
        )
        self._pending: deque[np.ndarray] = deque()
        self._pending_samples = 0
        self._generated = 0  # output samples generated so far
        self.position = 0  # output samples handed out by read()
        self._records: deque[_BlockRecord] = deque()
        self.spike_log: list[tuple[np.ndarray, np.ndarray]] = []

    def _fibre_tissue_and_pool(self, config: SimulationConfig, rng: np.random.Generator) -> np.random.Generator:
        """The fibre-level models' tissue (condition at its severity), subject and motor-unit pool; returns the
        tissue's random generator, from which the fibres are grown next."""
        tissue_rng = np.random.default_rng([config.seed, 3])
        self.tissue = draw_tissue(config.condition, config.severity, tissue_rng)
        units = max(3, int(round(self.tissue.units_before_loss * (1.0 - self.tissue.unit_loss))))
        # recruitment and rate coding of a healthy pool: the condition's recruitment pattern has to come out of its
        # tissue through the force model, not out of condition-specific thresholds and rates
        healthy = draw_subject("healthy", np.random.default_rng([config.seed, 1]))
        self.subject = replace(healthy, condition=config.condition, n_units=units)
        self.pool = build_pool(self.layout, self.subject, rng)
        return tissue_rng

    def _build_surface_fibres(self, config: SimulationConfig, rng: np.random.Generator) -> None:
        """The fibre-level surface model (simulators.surface): pool, tissue, force model, and each unit's templates
        at every channel as RANK time courses with fixed channel gains."""
        tissue_rng = self._fibre_tissue_and_pool(config, rng)
        self.n_motor_units = self.pool.n_units
        geometry = surface.fibre_geometry(
            self.pool, self.tissue, self.layout, self.subject.fat_thickness_mm, tissue_rng
        )
        self.fibres = geometry.fibres
        table, _ = surface.surface_table(self.subject.fat_thickness_mm, surface.Detection.for_layout(self.layout))
        internal_fs = self.fs * max(1, math.ceil(INTERNAL_MIN_FS / self.fs))
        templates, template_fs = surface.surface_templates(geometry, self.pool.n_units, table, internal_fs)
        courses, gains, self.surface_energy_kept = surface.low_rank(templates)
        self.shapes = SampledShapes.from_templates(courses, template_fs, floor_uv=0.01)
        self.gains = gains
        self._unit_of = np.repeat(np.arange(self.pool.n_units), surface.RANK)
        # %MVC is force against a healthy muscle of the same size, as at the needle; on a ring one curve serves all
        # eight muscles (their pools share recruitment and rate coding, their fibres differ by draw only)
        reference = steady_force(self.pool, self.fibres.healthy_area_mm2, 1.0) * (
            self.tissue.units_before_loss / self.subject.n_units  # units per muscle
        )
        self.force = ForceModel(self.pool, self.fibres.area_mm2, reference)

    # ----- stream interface -------------------------------------------------------------------------------------
    def read(self, n_samples: int) -> np.ndarray:
        """The next ``n_samples`` of the stream, (n, C) float32 µV; chunking never changes the samples."""
        if n_samples < 0:
            raise ValueError("cannot read a negative number of samples")
        while self._pending_samples < n_samples:
            block = self._next_block()
            self._pending.append(block)
            self._pending_samples += block.shape[0]
        parts, needed = [], n_samples
        while needed > 0:
            head = self._pending[0]
            if head.shape[0] <= needed:
                parts.append(self._pending.popleft())
                needed -= head.shape[0]
            else:
                parts.append(head[:needed])
                self._pending[0] = head[needed:]
                needed = 0
        self._pending_samples -= n_samples
        self.position += n_samples
        while len(self._records) > 1 and self._records[1].start <= self.position - 1:
            self._records.popleft()
        if not parts:
            return np.zeros((0, self.n_channels), dtype=np.float32)
        return np.concatenate(parts).astype(np.float32, copy=False)

    def generate(self, duration_s: float) -> np.ndarray:
        """The next ``duration_s`` seconds at once (offline use)."""
        return self.read(int(round(duration_s * self.fs)))

    def generate_with_truth(
        self, duration_s: float, truth_rate_hz: float = 4.0
    ) -> tuple[np.ndarray, np.ndarray, list[dict]]:
        """(data, position after each truth's sample, truths) for ``duration_s``, a truth every 1/rate s.

        ``position`` counts samples from the stream's start: truth k describes sample position[k] - 1."""
        if truth_rate_hz <= 0:
            raise ValueError(f"truth rate must be positive, not {truth_rate_hz:g} Hz")
        total = int(round(duration_s * self.fs))
        step = max(1, int(round(self.fs / truth_rate_hz)))
        chunks, indices, truths = [], [], []
        done = 0
        while done < total:
            n = min(step, total - done)
            chunks.append(self.read(n))
            done += n
            indices.append(self.position)
            truths.append(self.ground_truth())
        data = np.concatenate(chunks) if chunks else np.zeros((0, self.n_channels), np.float32)
        return data, np.asarray(indices, dtype=np.int64), truths

    def ground_truth(self) -> dict[str, Any]:
        """Truth at the last sample read: condition, gesture, %MVC, relative CV, MNF/MDF of the noise-free signal."""
        sample = max(self.position - 1, 0)
        time_s = sample / self.fs
        gesture_index, level = self.profile.at(np.array([time_s]))
        activation = self.profile.activation(np.array([time_s]))[0]
        cv = self._relative_cv_at(sample)
        capacity = self._capacity_at(sample)
        active = activation > 0
        if capacity is not None:  # the share of the fresh muscle's MVC whose drive holds the force
            share = np.minimum(activation / self._own_mvc, 1.0)
            activation = self.fatigue.demand(share, capacity) * self._own_mvc  # type: ignore[union-attr]
        weights = activation if active.any() else np.ones_like(activation)
        mnf, mdf = self.true_frequencies(activation, cv)
        extra: dict[str, Any] = {}
        if self.force is not None:
            extra = {"drive": round(float(self.excitation(activation).max()), 5), "severity": self.tissue.severity}
        if capacity is not None:
            extra["capacity"] = round(float(np.average(capacity, weights=weights)), 5)
        return {
            "condition": self.config.condition,
            "gesture": self.profile.names[int(gesture_index[0])],
            "mvc_percent": round(float(level[0]) * 100.0, 3),
            "relative_cv": round(float(np.average(cv, weights=weights)), 5),
            "true_mnf_hz": None if mnf is None else round(mnf, 3),
            "true_mdf_hz": None if mdf is None else round(mdf, 3),
            "time_s": round(time_s, 6),
            "sample": int(sample),
            "artifacts": ",".join(self.artifacts.active(sample)),
            **extra,
        }

    def excitation(self, activation: np.ndarray) -> np.ndarray:
        """The pool's drive for an activation (fraction of MVC): the same number, or with the force model the drive
        that makes that force."""
        if self.force is None:
            return activation
        return self.force.drive_for_force(activation)

    # ----- analytic truths ---------------------------------------------------------------------------------------
    def expected_psd(self, activation: np.ndarray, relative_cv: np.ndarray) -> np.ndarray:
        """Expected power spectrum of the noise-free signal summed over channels, on ``self._freqs``.

        Each unit contributes its MUAP power times the spectrum of its discharge train, a renewal process with
        Gaussian intervals: rate (1 - |phi|^2) / |1 - phi|^2, phi the interval distribution's characteristic
        function. A muscle whose MUAPs are stretched by s, their amplitude scaled by s^-a (the fatigue model's
        amplitude_exponent), has MUAP power s^(2 - 2a) P(s f), read off the fresh spectra tabulated at init."""
        pool = self.pool
        rates = pool.firing_rate(self.excitation(activation)[pool.muscle_index])
        muscle_index = pool.muscle_index
        isi_cov = pool.isi_cov
        if self._unit_of is not None:  # per render unit (time course): its pool unit's rate
            rates, muscle_index = rates[self._unit_of], muscle_index[self._unit_of]
            isi_cov = np.broadcast_to(isi_cov, (pool.n_units,))[self._unit_of]
        psd = np.zeros_like(self._freqs)
        omega = 2.0 * np.pi * self._freqs
        step = self._fresh_freqs[1]
        for muscle in np.unique(muscle_index[rates > 0]):
            members = np.flatnonzero((muscle_index == muscle) & (rates > 0))
            stretch = 1.0 / float(relative_cv[muscle])
            position = stretch * self._freqs / step
            below = np.minimum(position.astype(np.int64), self._fresh_freqs.size - 2)
            weight = position - below
            table = self._fresh_power[members]
            power_scale = stretch ** (2.0 - 2.0 * self.fatigue.amplitude_exponent)
            muap_power = power_scale * (table[:, below] * (1.0 - weight) + table[:, below + 1] * weight)
            interval = 1.0 / rates[members, None]
            cov = isi_cov if np.ndim(isi_cov) == 0 else np.asarray(isi_cov)[members, None]
            phi = np.exp(-1j * omega * interval - 0.5 * (omega * cov * interval) ** 2)
            train = rates[members, None] * (1.0 - np.abs(phi) ** 2) / np.maximum(np.abs(1.0 - phi) ** 2, 1e-12)
            psd += self._gain_power[members] @ (muap_power * train)
        return psd * self._response

    def true_frequencies(self, activation: np.ndarray, relative_cv: np.ndarray) -> tuple[float | None, float | None]:
        """(mean, median) frequency of ``expected_psd``; None when no unit fires."""
        psd = self.expected_psd(activation, relative_cv)
        total = psd.sum()
        if total <= 0:
            return None, None
        mnf = float((self._freqs * psd).sum() / total)
        cumulative = np.cumsum(psd)
        mdf = float(np.interp(total / 2.0, cumulative, self._freqs))
        return mnf, mdf

    def reference_rms_uv(self) -> float:
        """Mean channel RMS of the noise-free signal at the profile's contraction (at least 10% MVC), fresh muscle."""
        level = max(self.config.mvc_percent, 10.0) / 100.0
        weights = self.profile.weights[self.profile.held_gesture]
        if self.config.profile == "gestures":
            weights = np.mean([w for name, w in self.profile.weights.items() if name != "rest"], axis=0)
        rates = self.pool.firing_rate(self.excitation(weights * level)[self.pool.muscle_index])
        if self._unit_of is not None:
            rates = rates[self._unit_of]
        units = np.flatnonzero(rates > 0)
        if units.size == 0:
            return 1.0
        dt = 1.0 / 50_000.0
        times = np.arange(0.0, float(self.shapes.support_s.max()), dt)
        energy = np.concatenate(
            [
                (self.shapes.evaluate(chunk, np.broadcast_to(times, (chunk.size, times.size))) ** 2).sum(axis=1) * dt
                for chunk in np.array_split(units, max(1, units.size // 128))
            ]
        )
        power = (rates[units] * energy) @ (self.gains[units] ** 2)
        return float(np.sqrt(power.mean()))

    def _capacity_at(self, sample: int) -> np.ndarray | None:
        """Share of the fresh MVC each muscle can still make at ``sample`` (endurance fatigue), else None."""
        if not self._endurance:
            return None
        for record in reversed(self._records):
            if record.start <= sample < record.start + record.relative_cv.shape[0] and record.capacity is not None:
                return record.capacity[sample - record.start].astype(np.float64)
        return np.ones(len(self.pool.muscle_names))

    def _relative_cv_at(self, sample: int) -> np.ndarray:
        for record in reversed(self._records):
            if record.start <= sample < record.start + record.relative_cv.shape[0]:
                return record.relative_cv[sample - record.start]
        return self._cv_state.copy()

    # ----- generation --------------------------------------------------------------------------------------------
    def _next_block(self) -> np.ndarray:
        with _one_blas_thread():
            return self._generate_block()

    def _generate_block(self) -> np.ndarray:
        start = self._generated
        n_internal = self._block * self._factor
        fs = self._internal_fs
        start_internal = start * self._factor
        times = (start_internal + np.arange(n_internal)) / fs
        activation = self.profile.activation(times)
        if self._steadiness is not None:
            activation = activation * self._steadiness.factor(times)[:, None]
        capacity = None
        if isinstance(self.fatigue, EnduranceFatigue):
            level = np.minimum(activation / self._own_mvc, 1.0)
            relative_cv, capacity = self.fatigue.advance(self._fatigue_state, level, fs)
            self._cv_state[:] = relative_cv[-1]
            activation = self.fatigue.demand(level, capacity) * self._own_mvc  # a tired muscle needs more drive
        else:
            relative_cv = self.fatigue.advance(self._cv_state, activation, fs)
        units, spike_times = self._spikes.block(start_internal / fs, self.excitation(activation), fs)
        if self.config.record_spikes:
            self.spike_log.append((units, spike_times))
        if self._jitter is not None:
            units, spike_times = self._jitter.expand(
                units, spike_times, np.random.default_rng([self.config.seed, 4, start])
            )
        if self._unit_of is not None:  # each discharge plays all of its unit's time courses
            units = (units[:, None] * surface.RANK + np.arange(surface.RANK)[None, :]).ravel()
            spike_times = np.repeat(spike_times, surface.RANK)
        if units.size:
            rendered = self._render(units, spike_times, relative_cv, start_internal, n_internal)
            if self._propagation is None:
                combined = rendered @ self._render_gains
            else:
                unit_cv = relative_cv[0, self.pool.muscle_index]
                combined = self._propagation.project(rendered, self.gains, unit_cv, self._internal_fs)
        else:
            combined = np.zeros((n_internal + self._tail, self.n_channels))
        combined[: self._tail] += self._carry
        self._carry = combined[n_internal : n_internal + self._tail].copy()
        clean = combined[:n_internal]
        if self._antialias is not None:
            clean, self._antialias_state = signal.sosfilt(self._antialias, clean, axis=0, zi=self._antialias_state)
            clean = clean[:: self._factor]
        block = np.ascontiguousarray(clean)
        self.artifacts.apply(block, start)
        kept = None if capacity is None else capacity[:: self._factor].astype(np.float32)
        self._records.append(_BlockRecord(start, relative_cv[:: self._factor].astype(np.float32), kept))
        self._generated += self._block
        return block

    def _render(
        self, units: np.ndarray, spike_times: np.ndarray, relative_cv: np.ndarray, start: int, n: int
    ) -> np.ndarray:
        """(n + tail, U) per-unit signal: each discharge's MUAP sampled at its exact time, stretched by fatigue."""
        fs = self._internal_fs
        shapes = self._render_shapes
        width = shapes.support_s.size
        rows = n + self._tail
        # unit-major while accumulating: discharges come grouped by unit, so each chunk's bincount spans only its
        # own units' rows instead of the whole block (the fibre surface model's 6 time courses per unit made that
        # a (samples x 6 units) array per chunk, most of the render time); every sum is taken in the same order
        out = np.zeros(width * rows)
        if units.size == 0:
            return out.reshape(width, rows).T.copy()
        for lo in range(0, units.size, SPIKES_PER_RENDER):
            u = units[lo : lo + SPIKES_PER_RENDER]
            t = spike_times[lo : lo + SPIKES_PER_RENDER]
            onset = np.ceil(t * fs - 1e-9).astype(np.int64) - start  # first sample at or after the discharge
            row = np.clip(onset, 0, n - 1)
            stretch = 1.0 / relative_cv[row, self._render_muscle[u]]
            exponent = self.fatigue.amplitude_exponent  # endurance fatigue: amplitude falls as the MUAP lengthens
            length = min(self._tail, int(math.ceil(float((shapes.support_s[u] * stretch).max()) * fs)) + 2)
            offsets = np.arange(length)
            since = ((onset[:, None] + offsets[None, :]) + start) / fs - t[:, None]
            local = since / stretch[:, None]
            values = shapes.evaluate(u, local)
            if exponent:
                values *= (stretch ** -exponent)[:, None]
            values[local > shapes.support_s[u, None]] = 0.0
            first, last = int(u.min()) * rows, (int(u.max()) + 1) * rows
            flat = u[:, None] * rows + (onset[:, None] + offsets[None, :]) - first
            out[first:last] += np.bincount(flat.ravel(), weights=values.ravel(), minlength=last - first)
        return out.reshape(width, rows).T.copy()
