"""Per-channel signal quality from the raw (unfiltered) stream: which electrodes to trust, and why not.

Raw samples are used on purpose: filtering hides the evidence (a clipped plateau or a flat line turns into a small
band-passed wiggle; mains would be notched away). The monitor keeps the last ``window_s`` of raw samples and
re-evaluates every ``evaluate_every_s`` (mains every ``mains_every_s``, as it needs an FFT). The engine's own
NaN mask acts at once; these flags lag by up to a window plus an evaluation interval.

- nonfinite: a NaN/Inf sample in the window (a dropped packet, a broken driver).
- flat: standard deviation below ``flat_rms_uv`` at a level away from the rail (electrode off, lead shorted,
  channel not wired: "disconnected").
- saturated: the amplifier's range is hit. With ``full_scale_uv`` known: more than ``clip_fraction`` of samples
  at >= 98 % of it, a channel pinned there included. Without it: a constant channel at ``stuck_level_uv`` or
  further from zero (a converter's code held at its rail; no electrode offset comes without noise), or the
  window's extreme value repeating in at least ``clip_fraction`` of samples with three in a row, on a finely
  quantised signal (on a coarse ADC like the Myo's int8, repeats are normal, so the heuristic stays off and
  ``full_scale_uv`` is needed). A constant channel is "saturated" or "flat", never both.
- mains: per channel, all of: the mains line (fundamental or a harmonic, +-1.5 Hz) stands at least
  ``mains_peak_ratio`` above the channel's own EMG background in the same bandwidth (the median density 4-10 Hz
  either side of that line, over the last ``mains_window_s``); its RMS is at least ``mains_rms_uv``, and at least
  ``mains_channel_ratio`` x the median of the other channels' (a loose or dry contact on this electrode, not the
  mains every electrode shares, which the notch removes); in two mains evaluations in a row, or in one where
  mains carries at least ``mains_fraction`` of the channel's 20-450 Hz power. Common-mode mains
  on every channel is therefore not a per-channel flag.
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
    # the mains test looks at the last second (1 Hz resolution): at 0.5 s (2 Hz bins, a Hann main lobe of +-4 Hz)
    # the 40-60 Hz Piper rhythm of a strong contraction (the real HD-EMG grid, 45-46 Hz) reads as a 50 Hz line
    mains_window_s: float = 1.0
    # a mains line carrying this share of a channel's 20-450 Hz power is flagged at its first evaluation (the
    # electrode picks up little else); a smaller one must persist for two (ours)
    mains_fraction: float = 0.5
    flat_rms_uv: float = 0.1
    full_scale_uv: float | None = None
    clip_fraction: float = 0.01
    mains_hz: float | None = 50.0  # None: whichever of 50/60 is stronger
    # µV: without full_scale_uv, a constant channel this far from zero is a converter held at its rail. Ours, no
    # published figure: a value with no noise at all is a converter code, not an electrode; a lifted or shorted
    # electrode on an AC-coupled or high-passed input settles near 0; the simulator's rail is 5000 µV
    stuck_level_uv: float | None = 1000.0
    # power ratio (10 dB) of the mains line to the EMG background in the same bandwidth. Ours: a line 10 dB
    # above the background is unmistakable on the spectrum, while EMG's own spectrum is smooth at 2 Hz resolution
    mains_peak_ratio: float = 10.0
    # µV RMS: the simulator's normal pick-up is 5-15 µV per electrode (simulators/artifacts.py, mains_uv=10 x
    # 0.5-1.5) and the notch removes that; ours, no published limit is cited
    mains_rms_uv: float = 20.0
    # x the median of the other channels' mains RMS: pick-up that one electrode has far more of than the rest is
    # its contact (impedance imbalance converts common-mode mains into a differential signal); ours
    mains_channel_ratio: float = 3.0
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
        self._window_samples = max(16, int(round(self.settings.window_s * self.fs)))
        self._capacity = max(self._window_samples, int(round(self.settings.mains_window_s * self.fs)))
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
        self._mains_candidate = np.zeros(c, dtype=bool)
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
        long_window = self._window()
        window = long_window[-self._window_samples :]
        if len(window) < 4:
            return
        finite = np.isfinite(window)
        nonfinite = ~finite.all(axis=0)
        if nonfinite.any():
            window = np.where(finite, window, np.float32(0.0))
        rms = window.std(axis=0, dtype=np.float64)
        constant = (rms < s.flat_rms_uv) & ~nonfinite
        saturated = (self._saturated(window) | self._stuck_at_rail(window, constant)) & ~nonfinite
        flat = constant & ~saturated
        if self._since_mains >= s.mains_every_s * self.fs or not self._mains_evaluated:
            self._since_mains = 0
            self._mains_evaluated = True
            self._mains_rms, candidate, dominant = self._mains(np.where(np.isfinite(long_window), long_window, 0))
            # a loose contact hums for seconds; a burst of the 40-60 Hz Piper rhythm in a strong contraction
            # (seen on the real HD-EMG grid) passes within a second: two evaluations in a row are needed, unless
            # mains carries most of the channel's power (an electrode that picks up nothing else: flagged at once)
            self._mains_flag = candidate & (self._mains_candidate | dominant)
            self._mains_candidate = candidate
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

    def _stuck_at_rail(self, window: np.ndarray, constant: np.ndarray) -> np.ndarray:
        """Constant channels held at the rail: at >= 98 % of ``full_scale_uv`` when known (the count rule in
        ``_saturated`` covers that too), else at ``stuck_level_uv`` or further from zero."""
        s = self.settings
        if not constant.any():
            return constant
        level = np.abs(window.mean(axis=0, dtype=np.float64))
        if s.full_scale_uv is not None:
            return constant & (level >= 0.98 * s.full_scale_uv)
        if s.stuck_level_uv is None:
            return np.zeros_like(constant)
        return constant & (level >= s.stuck_level_uv)

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

    def _mains(self, window: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mains RMS, mains candidate, mains dominant) per channel; rule in the module docstring. Candidate: the
        line stands out, loud, and louder than on the other channels; dominant: a candidate whose mains carries at
        least ``mains_fraction`` of the channel's 20-450 Hz power."""
        s = self.settings
        frequencies, psd = hann_periodogram(window, self.fs)
        df = frequencies[1] - frequencies[0]
        top = min(450.0, self.fs / 2)
        band_power = psd[(frequencies >= 20.0) & (frequencies <= top)].sum(axis=0) * df
        candidates = [s.mains_hz] if s.mains_hz is not None else [50.0, 60.0]
        best_excess = np.zeros(self.n_channels)
        best_ratio = np.zeros(self.n_channels)
        for mains in candidates:
            harmonics = np.arange(mains, top, mains)
            # a Hann window's main lobe is +-2 bins: +-1.5 Hz holds nearly all of a line at 1 s (df 1 Hz)
            half_width = max(1.5, 1.5 * df)
            near_any = np.zeros_like(frequencies, dtype=bool)
            for harmonic in harmonics:
                near_any |= np.abs(frequencies - harmonic) <= half_width
            excess = np.zeros(self.n_channels)
            ratio = np.zeros(self.n_channels)
            for harmonic in harmonics:
                distance = np.abs(frequencies - harmonic)
                near = distance <= half_width
                # the channel's own EMG right beside the line, 4-10 Hz away (past the Hann lobe; as detect_mains's
                # 3-8 Hz): a broad physiological peak (Piper rhythm) stands as high there, a mains line does not
                beside = (distance >= 4.0) & (distance <= 10.0) & (frequencies >= 10.0) & ~near_any
                if not beside.any():
                    continue
                # a periodogram bin of broadband EMG is exponentially distributed: its median is ln 2 x its mean
                background = np.median(psd[beside], axis=0) / np.log(2.0) * df * near.sum()
                line = psd[near].sum(axis=0) * df
                standing = np.divide(line, background, out=np.where(line > 0, np.inf, 0.0), where=background > 0)
                ratio = np.maximum(ratio, standing)
                # only a line that stands out counts, and only what it adds above the EMG: a contraction's
                # broadband power in the same few bins is not pick-up
                excess += np.where(standing >= s.mains_peak_ratio, line - background, 0.0)
            use = excess > best_excess
            best_excess = np.where(use, excess, best_excess)
            best_ratio = np.where(use, ratio, best_ratio)
        mains_rms = np.sqrt(best_excess)
        flag = (best_ratio >= s.mains_peak_ratio) & (mains_rms >= s.mains_rms_uv)
        if self.n_channels > 1:
            flag &= mains_rms >= s.mains_channel_ratio * _median_of_others(mains_rms)
        dominant = flag & (best_excess >= s.mains_fraction * band_power)
        return mains_rms, flag, dominant


def _median_of_others(values: np.ndarray) -> np.ndarray:
    """Per element, the median of all the other elements."""
    n = len(values)
    others = np.broadcast_to(values, (n, n))[~np.eye(n, dtype=bool)].reshape(n, n - 1)
    return np.median(others, axis=1)


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
