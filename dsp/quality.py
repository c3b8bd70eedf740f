"""Per-channel signal quality from the raw (unfiltered) stream: which electrodes to trust, and why not.

Raw samples are used on purpose: filtering hides the evidence (a clipped plateau or a flat line turns into a small
band-passed wiggle; mains would be notched away). The monitor keeps the last ``window_s`` of raw samples and
re-evaluates every ``evaluate_every_s`` (mains every ``mains_every_s``, as it needs an FFT). The engine's own
NaN mask acts at once; these flags lag by up to a window plus an evaluation interval.

- nonfinite: a NaN/Inf sample in the window (a dropped packet, a broken driver).
- flat: standard deviation below ``flat_rms_uv`` (electrode off, lead shorted, channel not wired).
- saturated: the amplifier's range is hit. With ``full_scale_uv`` known: more than ``clip_fraction`` of samples
  at >= 98 % of it. Without it: the window's extreme value repeats in at least ``clip_fraction`` of samples with
  three in a row, on a finely quantised signal (on a coarse ADC like the Myo's int8, repeats are normal, so
  the heuristic stays off and ``full_scale_uv`` is needed).
- mains: mains and harmonics carry at least ``mains_fraction`` of the 20-450 Hz power and at least
  ``mains_rms_uv`` RMS (a loose contact picks up mains; a few µV at rest is normal and notched anyway).
- stale (stream level): no sample for ``stale_s`` of LSL time (``report(now)`` checks; the stream vanished).

``usable`` is True where none of the flags in ``mask_on`` is raised and the stream is not stale; it feeds the
channel mask of inference and the GUI's electrode map.
"""

from __future__ import annotations

import collections
import functools
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import fft as sp_fft
from scipy import signal

QUALITY_FLAGS = ("nonfinite", "flat", "saturated", "mains")


@dataclass(frozen=True)
class QualitySettings:
    window_s: float = 0.5
    evaluate_every_s: float = 0.5
    mains_every_s: float = 1.0
    flat_rms_uv: float = 0.1
    full_scale_uv: float | None = None
    clip_fraction: float = 0.01
    mains_hz: float | None = 50.0  # None: whichever of 50/60 is stronger
    mains_fraction: float = 0.5
    mains_rms_uv: float = 50.0
    stale_s: float = 1.0
    mask_on: tuple[str, ...] = QUALITY_FLAGS

    def __post_init__(self) -> None:
        unknown = set(self.mask_on) - set(QUALITY_FLAGS)
        if unknown:
            raise ValueError(f"unknown quality flags {sorted(unknown)}; known: {QUALITY_FLAGS}")
        if self.window_s <= 0 or self.evaluate_every_s <= 0:
            raise ValueError("quality window and evaluation interval must be positive")


@dataclass
class QualityReport:
    timestamp: float  # LSL time of the last sample evaluated
    flags: dict[str, np.ndarray]  # flag -> (C,) bool
    usable: np.ndarray  # (C,) bool
    stale: bool
    rms_uv: np.ndarray  # (C,) standard deviation of the raw window
    mains_rms_uv: np.ndarray  # (C,)
    reasons: tuple[str, ...] = field(default=())  # per channel: "" or e.g. "flat" / "saturated, mains"

    def to_dict(self) -> dict[str, object]:
        return {
            "timestamp": self.timestamp,
            "stale": self.stale,
            "usable": self.usable.tolist(),
            "flags": {name: values.tolist() for name, values in self.flags.items()},
            "reasons": list(self.reasons),
            "rms_uv": self.rms_uv.tolist(),
            "mains_rms_uv": self.mains_rms_uv.tolist(),
        }


class QualityMonitor:
    def __init__(self, fs: float, n_channels: int, settings: QualitySettings | None = None) -> None:
        if not fs > 0 or n_channels <= 0:
            raise ValueError(f"need a positive rate and channel count, got {fs} Hz x {n_channels}")
        self.fs = float(fs)
        self.n_channels = int(n_channels)
        self.settings = settings or QualitySettings()
        self._capacity = max(16, int(round(self.settings.window_s * self.fs)))
        self.reset()

    def reset(self) -> None:
        c = self.n_channels
        self._buffer = np.zeros((self._capacity, c), dtype=np.float32)
        self._written = 0
        self._since_evaluation = 0
        self._since_mains = 0
        self._mains_evaluated = False
        self._last_timestamp = float("nan")
        self._mains_rms = np.zeros(c)
        self._mains_flag = np.zeros(c, dtype=bool)
        self._latest = QualityReport(
            timestamp=float("nan"),
            flags={name: np.zeros(c, dtype=bool) for name in QUALITY_FLAGS},
            usable=np.ones(c, dtype=bool),
            stale=False,
            rms_uv=np.zeros(c),
            mains_rms_uv=np.zeros(c),
            reasons=("",) * c,
        )
        self._initial = self._latest
        self._history: collections.deque[tuple[int, QualityReport]] = collections.deque(maxlen=64)

    def update(self, raw_chunk: np.ndarray, last_timestamp: float) -> QualityReport:
        """Adds raw samples (n, C) whose last sample has LSL time ``last_timestamp``; returns the latest report.

        Evaluations fall at fixed sample counts (every ``evaluate_every_s`` of samples since the first), whatever
        the chunking, so a live stream and an offline pass over the same samples flag the same windows."""
        raw_chunk = np.asarray(raw_chunk)
        if raw_chunk.ndim != 2 or raw_chunk.shape[1] != self.n_channels:
            raise ValueError(f"expected a (n, {self.n_channels}) chunk, got {raw_chunk.shape}")
        interval = max(1, int(round(self.settings.evaluate_every_s * self.fs)))
        position = 0
        while position < len(raw_chunk):
            piece = raw_chunk[position : position + interval - self._since_evaluation]
            position += len(piece)
            self._append(piece)
            self._since_evaluation += len(piece)
            self._since_mains += len(piece)
            self._last_timestamp = float(last_timestamp) - (len(raw_chunk) - position) / self.fs
            if self._since_evaluation >= interval:
                self._evaluate()
                self._history.append((self._written, self._latest))
        return self._latest

    @property
    def samples_seen(self) -> int:
        return self._written

    def samples_until_evaluation(self) -> int:
        """How many more samples ``update`` takes before it evaluates (1: the next sample triggers it)."""
        return max(1, int(round(self.settings.evaluate_every_s * self.fs))) - self._since_evaluation

    def report_at(self, samples_seen: int) -> QualityReport:
        """The report in force once ``samples_seen`` samples had arrived (the latest evaluation at or before it)."""
        for evaluated_at, report in reversed(self._history):
            if evaluated_at <= samples_seen:
                return report
        return self._initial

    def report(self, now: float | None = None) -> QualityReport:
        """The latest report; with ``now`` (LSL time) it also says whether the stream has gone stale."""
        if now is None or not (now - self._last_timestamp > self.settings.stale_s):
            return self._latest
        return replace(self._latest, stale=True, usable=np.zeros(self.n_channels, dtype=bool))

    def _append(self, chunk: np.ndarray) -> None:
        if len(chunk) >= self._capacity:
            self._buffer[:] = chunk[-self._capacity :]
        else:
            position = self._written % self._capacity
            first = min(len(chunk), self._capacity - position)
            self._buffer[position : position + first] = chunk[:first]
            self._buffer[: len(chunk) - first] = chunk[first:]
        self._written += len(chunk)

    def _window(self) -> np.ndarray:
        if self._written < self._capacity:
            return self._buffer[: self._written]
        position = self._written % self._capacity
        return np.concatenate([self._buffer[position:], self._buffer[:position]])

    def _evaluate(self) -> None:
        s = self.settings
        self._since_evaluation = 0
        window = self._window()
        if len(window) < 4:
            return
        finite = np.isfinite(window)
        nonfinite = ~finite.all(axis=0)
        if nonfinite.any():
            window = np.where(finite, window, np.float32(0.0))
        rms = window.std(axis=0, dtype=np.float64)
        flat = (rms < s.flat_rms_uv) & ~nonfinite
        saturated = self._saturated(window) & ~nonfinite & ~flat
        if self._since_mains >= s.mains_every_s * self.fs or not self._mains_evaluated:
            self._since_mains = 0
            self._mains_evaluated = True
            self._mains_rms, self._mains_flag = self._mains(window)
        flags = {
            "nonfinite": nonfinite,
            "flat": flat,
            "saturated": saturated,
            "mains": self._mains_flag & ~nonfinite & ~flat,
        }
        masked = np.zeros(self.n_channels, dtype=bool)
        for name in s.mask_on:
            masked |= flags[name]
        reasons = tuple(
            ", ".join(name for name in QUALITY_FLAGS if flags[name][channel]) for channel in range(self.n_channels)
        )
        self._latest = QualityReport(
            timestamp=self._last_timestamp,
            flags=flags,
            usable=~masked,
            stale=False,
            rms_uv=rms,
            mains_rms_uv=self._mains_rms.copy(),
            reasons=reasons,
        )

    def _saturated(self, window: np.ndarray) -> np.ndarray:
        s = self.settings
        n = len(window)
        needed = max(3, int(np.ceil(s.clip_fraction * n)))
        if s.full_scale_uv is not None:
            return (np.abs(window) >= 0.98 * s.full_scale_uv).sum(axis=0) >= needed
        result = np.zeros(self.n_channels, dtype=bool)
        at_max, at_min = window == window.max(axis=0), window == window.min(axis=0)
        for at_extreme in (at_max, at_min):
            three_in_a_row = (at_extreme[:-2] & at_extreme[1:-1] & at_extreme[2:]).any(axis=0)
            result |= (at_extreme.sum(axis=0) >= needed) & three_in_a_row
        candidates = np.flatnonzero(result)
        if not len(candidates):  # the sort below only decides for channels stuck at a rail: usually none
            return result
        # a fine converter gives nearly every sample off the rails its own value; a coarse one (the Myo's int8)
        # reuses a few levels, so repeated extremes mean nothing there. Counting distinct values holds even when
        # the signal is mostly clipped, where the smallest step between samples would not.
        ordered = np.sort(window[:, candidates], axis=0)
        distinct = (np.diff(ordered, axis=0) != 0).sum(axis=0) + 1
        off_rails = (~(at_max[:, candidates] | at_min[:, candidates])).sum(axis=0)
        result[candidates] = (distinct - 2 >= np.minimum(64, 0.5 * off_rails)) & (off_rails > 0)
        return result

    def _mains(self, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = self.settings
        frequencies, psd = hann_periodogram(window, self.fs)
        df = frequencies[1] - frequencies[0]
        band = (frequencies >= 20.0) & (frequencies <= min(450.0, self.fs / 2))
        band_power = psd[band].sum(axis=0) * df
        candidates = [s.mains_hz] if s.mains_hz is not None else [50.0, 60.0]
        best = np.zeros(self.n_channels)
        for mains in candidates:
            harmonics = np.arange(mains, min(450.0, self.fs / 2), mains)
            near = np.zeros_like(frequencies, dtype=bool)
            for harmonic in harmonics:
                near |= np.abs(frequencies - harmonic) <= max(2.0, 1.5 * df)
            best = np.maximum(best, psd[near].sum(axis=0) * df)
        mains_rms = np.sqrt(best)
        fraction = np.divide(best, band_power, out=np.zeros_like(best), where=band_power > 0)
        return mains_rms, (fraction >= s.mains_fraction) & (mains_rms >= s.mains_rms_uv)


def hann_periodogram(window: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.signal.periodogram(window, fs, window="hann", detrend="constant", axis=0)`` of (n, C) samples, in
    the samples' precision, to float rounding (``tests/dsp/test_quality.py``): scipy 1.17 runs it through its
    ShortTimeFFT, whose per-call set-up and detrending cost ~3 ms a call at 256 channels x 0.5 s."""
    n_samples = len(window)
    dtype = np.result_type(window.dtype, np.float32)
    taper = _hann(n_samples).astype(dtype)
    centred = window - window.mean(axis=0, dtype=dtype).astype(dtype, copy=False)
    centred *= taper[:, np.newaxis]
    spectrum = sp_fft.rfft(centred, axis=0)
    psd = np.square(spectrum.real) + np.square(spectrum.imag)
    psd *= dtype.type(1.0 / (fs * float(np.sum(np.square(taper, dtype=np.float64)))))
    psd[1 : None if n_samples % 2 else -1] *= 2  # one-sided: every bin but DC (and Nyquist) counts twice
    return sp_fft.rfftfreq(n_samples, 1.0 / fs), psd


@functools.cache
def _hann(length: int) -> np.ndarray:
    return signal.get_window("hann", length)
