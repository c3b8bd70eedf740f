"""Noise and artifacts a real amplifier picks up, each switchable, rendered onto clean blocks.

Everything is a function of the absolute sample index and the seed, never of how the stream is cut into blocks:
periodic interference uses absolute time, random noise is seeded by the block's first sample (the simulator's
blocks are fixed), and events (motion, lift-off, saturation, dropouts) are scheduled per 10 s segment from a
generator seeded by (seed, kind, segment), so an event spanning two blocks renders identically in both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

ARTIFACTS = ("mains", "wander", "noise", "motion", "liftoff", "saturation", "dropout")
DEFAULT_ARTIFACTS = ("mains", "wander", "noise")
EVENT_KINDS = ("motion", "liftoff", "saturation", "dropout")
SEGMENT_S = 10.0
MAINS_HARMONICS = ((1, 1.0), (3, 0.3), (5, 0.1))


@dataclass(frozen=True)
class ArtifactConfig:
    enabled: tuple[str, ...] = DEFAULT_ARTIFACTS
    mains_hz: float = 50.0
    mains_uv: float = 10.0
    wander_uv: float = 30.0
    snr_db: float = 30.0
    motion_uv: float = 400.0
    rail_uv: float = 5000.0
    events_per_min: dict[str, float] = field(
        default_factory=lambda: {"motion": 6.0, "liftoff": 1.0, "saturation": 1.0, "dropout": 3.0}
    )

    def __post_init__(self) -> None:
        unknown = set(self.enabled) - set(ARTIFACTS)
        if unknown:
            raise ValueError(f"unknown artifact(s) {', '.join(sorted(unknown))}: choose from {', '.join(ARTIFACTS)}")
        if "mains" in self.enabled and self.mains_hz not in (50.0, 60.0):
            raise ValueError(f"mains frequency must be 50 or 60 Hz, not {self.mains_hz:g}")


@dataclass(frozen=True)
class _Event:
    kind: str
    start: int
    length: int
    channels: np.ndarray
    params: tuple[float, ...]


class ArtifactGenerator:
    """Adds the enabled artifacts to (N, C) float64 blocks of clean signal in µV."""

    def __init__(self, config: ArtifactConfig, n_channels: int, fs: float, seed: int, noise_rms_uv: float) -> None:
        self.config = config
        self.n_channels = n_channels
        self.fs = float(fs)
        self.seed = int(seed)
        self.noise_rms_uv = float(noise_rms_uv)
        rng = np.random.default_rng([self.seed, 101])
        self._mains_gain = config.mains_uv * rng.uniform(0.5, 1.5, n_channels)
        self._mains_phase = rng.uniform(0.0, 2.0 * math.pi, n_channels)
        self._wander_freq = rng.uniform(0.1, 0.8, 3)
        self._wander_gain = config.wander_uv * rng.uniform(0.3, 1.0, (3, n_channels))
        self._wander_phase = rng.uniform(0.0, 2.0 * math.pi, (3, n_channels))
        self._segment_samples = int(round(SEGMENT_S * self.fs))
        self._segments: dict[tuple[str, int], list[_Event]] = {}

    def apply(self, block: np.ndarray, start_sample: int) -> None:
        """Renders every enabled artifact onto ``block`` (samples start_sample..start_sample+N), in place."""
        enabled = set(self.config.enabled)
        n = block.shape[0]
        t = (start_sample + np.arange(n)) / self.fs
        # periodic interference is a few sinusoids per channel differing only in gain and phase:
        # sin(wt + p) = sin(wt) cos(p) + cos(wt) sin(p), so one (N, 2K) basis times a (2K, C) mixing matrix
        basis, mixing = [], []
        if "mains" in enabled:
            for harmonic, weight in MAINS_HARMONICS:
                if harmonic * self.config.mains_hz < self.fs / 2:
                    omega = 2.0 * math.pi * harmonic * self.config.mains_hz
                    basis.append(omega * t)
                    mixing.append((weight * self._mains_gain, harmonic * self._mains_phase))
        if "wander" in enabled:
            for k, freq in enumerate(self._wander_freq):
                basis.append(2.0 * math.pi * freq * t)
                mixing.append((self._wander_gain[k], self._wander_phase[k]))
        if basis:
            phases = np.stack(basis, axis=1)
            waves = np.concatenate([np.sin(phases), np.cos(phases)], axis=1)
            gains = np.stack([g * np.cos(p) for g, p in mixing] + [g * np.sin(p) for g, p in mixing])
            block += waves @ gains
        if "noise" in enabled and self.noise_rms_uv > 0:
            rng = np.random.default_rng([self.seed, 102, start_sample])
            block += self.noise_rms_uv * rng.standard_normal(block.shape)
        # events last: flat, railed and missing samples override whatever the electrode saw
        for kind in EVENT_KINDS:
            if kind in enabled:
                for event in self._events_overlapping(kind, start_sample, n):
                    self._render(event, block, start_sample)

    def active(self, sample: int) -> list[str]:
        """Names of the events covering ``sample``, e.g. ``["liftoff:3"]`` (channel index after the colon)."""
        names = []
        for kind in EVENT_KINDS:
            if kind in self.config.enabled:
                for event in self._events_overlapping(kind, sample, 1):
                    names.extend(f"{kind}:{int(c)}" for c in event.channels)
        return names

    def _events_overlapping(self, kind: str, start: int, n: int) -> list[_Event]:
        first = max(start // self._segment_samples - 1, 0)  # events may run over from the previous segment
        last = (start + n - 1) // self._segment_samples
        return [
            event
            for segment in range(first, last + 1)
            for event in self._segment_events(kind, segment)
            if event.start < start + n and event.start + event.length > start
        ]

    def _segment_events(self, kind: str, segment: int) -> list[_Event]:
        key = (kind, segment)
        if key not in self._segments:
            if len(self._segments) > 64:
                self._segments.clear()
            self._segments[key] = self._draw_events(kind, segment)
        return self._segments[key]

    def _draw_events(self, kind: str, segment: int) -> list[_Event]:
        rng = np.random.default_rng([self.seed, 103, EVENT_KINDS.index(kind), segment])
        count = rng.poisson(self.config.events_per_min.get(kind, 0.0) * SEGMENT_S / 60.0)
        events = []
        for _ in range(count):
            start = segment * self._segment_samples + int(rng.integers(0, self._segment_samples))
            if kind == "motion":
                decay_s = rng.uniform(0.08, 0.3)
                length = int(5 * decay_s * self.fs)
                channels = np.arange(self.n_channels)
                params = (rng.uniform(1.0, 4.0), decay_s, self.config.motion_uv * rng.uniform(0.5, 1.0))
                params += tuple(rng.uniform(0.3, 1.0, self.n_channels))
            elif kind == "dropout":
                length = int(rng.integers(2, max(int(0.05 * self.fs), 3)))
                whole = rng.uniform() < 0.5
                channels = np.arange(self.n_channels) if whole else rng.integers(0, self.n_channels, 1)
                params = ()
            else:
                length = int(rng.uniform(0.5, 3.0) * self.fs)
                channels = rng.integers(0, self.n_channels, 1)
                params = (float(rng.choice([-1.0, 1.0])),)
            events.append(_Event(kind, start, max(length, 1), channels, params))
        return events

    def _render(self, event: _Event, block: np.ndarray, start_sample: int) -> None:
        lo = max(event.start, start_sample)
        hi = min(event.start + event.length, start_sample + block.shape[0])
        rows = slice(lo - start_sample, hi - start_sample)
        if event.kind == "motion":
            freq, decay_s, amplitude = event.params[:3]
            weights = np.asarray(event.params[3:])
            since = (np.arange(lo, hi) - event.start) / self.fs
            wave = amplitude * np.sin(2.0 * math.pi * freq * since) * np.exp(-since / decay_s)
            block[rows] += wave[:, None] * weights[None, :]
        elif event.kind == "liftoff":
            block[rows, event.channels] = 0.0
        elif event.kind == "saturation":
            block[rows, event.channels] = event.params[0] * self.config.rail_uv
        else:
            block[rows, event.channels] = np.nan
