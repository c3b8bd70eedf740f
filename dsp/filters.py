"""Causal IIR filters as plain data with state, for chunked streams (after MNE-LSL's stream filters).

A filter is second-order sections plus one state per section and channel, carried from chunk to chunk, so the
way a stream is cut into chunks never changes the output: filtering chunk by chunk equals one
``scipy.signal.sosfilt`` over the whole signal (with the same initial state) to float precision.

The state starts at the filter's steady state for the first sample of each channel (``sosfilt_zi`` scaled by it),
so a DC offset present from the first sample does not ring through the band-pass as a start-up transient.

Non-finite input (NaN/Inf from a dropped packet or a broken driver) never reaches the state: ``FilterChain``
flags those samples, replaces each by the last finite value of its channel before filtering (hold, which
adds no step the filters would ring on), and returns the mask so the caller can mark the channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import signal

try:  # scipy's compiled sosfilt loop (sosfilt's own core); the public sosfilt is the fallback if it ever moves
    from scipy.signal._sosfilt import _sosfilt as _sosfilt_kernel
except ImportError:  # pragma: no cover - depends on the scipy version
    _sosfilt_kernel = None

MAINS_CANDIDATES_HZ = (50.0, 60.0)
# Keep band edges strictly inside (0, Nyquist): butter() rejects edges at Nyquist and an edge right next to it
# leaves the top section poorly conditioned.
NYQUIST_MARGIN = 0.95


@dataclass
class StreamingFilter:
    """Second-order sections ``sos`` (n_sections, 6) with state ``zi`` (n_sections, 2, n_channels), float64.

    ``zi`` is None until the first chunk, which sets it to the steady state for that chunk's first sample.
    Input must be finite; ``FilterChain`` takes care of NaN/Inf.
    """

    sos: np.ndarray
    n_channels: int
    zi: np.ndarray | None = None
    _zi_unit: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.sos = np.ascontiguousarray(np.atleast_2d(self.sos), dtype=np.float64)
        if self.sos.ndim != 2 or self.sos.shape[1] != 6:
            raise ValueError(f"sos must be (n_sections, 6), got {self.sos.shape}")
        if self.n_channels <= 0:
            raise ValueError(f"n_channels must be positive, got {self.n_channels}")
        self._zi_unit = signal.sosfilt_zi(self.sos)  # (n_sections, 2): steady state for a unit step

    @property
    def n_sections(self) -> int:
        return self.sos.shape[0]

    def initial_state(self, first_sample: np.ndarray) -> np.ndarray:
        """Steady-state ``zi`` (n_sections, 2, C) for a signal that has been at ``first_sample`` forever."""
        first_sample = np.asarray(first_sample, dtype=np.float64).reshape(self.n_channels)
        return self._zi_unit[:, :, np.newaxis] * first_sample[np.newaxis, np.newaxis, :]

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Filters ``chunk`` (n, C) and advances the state; returns (n, C) float32."""
        chunk = np.asarray(chunk)
        if chunk.ndim != 2 or chunk.shape[1] != self.n_channels:
            raise ValueError(f"expected a (n, {self.n_channels}) chunk, got {chunk.shape}")
        if chunk.shape[0] == 0:
            return np.zeros((0, self.n_channels), dtype=np.float32)
        if self.zi is None:
            self.zi = self.initial_state(chunk[0])
        if _sosfilt_kernel is None:
            filtered, self.zi = signal.sosfilt(self.sos, chunk.astype(np.float64), axis=0, zi=self.zi)
            return filtered.astype(np.float32)
        # the same arithmetic as sosfilt without its per-call checks and axis moves, which on a live stream's
        # 50 ms step (cold caches between steps) cost ~3x the filtering itself: 64 ch x 102 samples ~120 us
        # instead of ~360 us of CPU
        signals = np.array(chunk.T, dtype=np.float64, order="C")  # (C, n): the kernel filters rows in place
        state = np.ascontiguousarray(self.zi.transpose(2, 0, 1))  # (C, n_sections, 2)
        _sosfilt_kernel(self.sos, signals, state)
        self.zi = state.transpose(1, 2, 0)
        return np.ascontiguousarray(signals.T, dtype=np.float32)

    def reset(self) -> None:
        """Forget the state: the next chunk starts a fresh steady state (after a gap in the stream)."""
        self.zi = None


def _check_rate(fs: float, n_channels: int) -> None:
    if not fs > 0:
        raise ValueError(f"sampling rate must be positive, got {fs}")
    if n_channels <= 0:
        raise ValueError(f"n_channels must be positive, got {n_channels}")


def bandpass(fs: float, low_hz: float, high_hz: float, n_channels: int, order: int = 4) -> StreamingFilter:
    """Butterworth band-pass ``low_hz``-``high_hz`` (``order`` per edge, so 2*order poles)."""
    _check_rate(fs, n_channels)
    if not 0 < low_hz < high_hz < fs / 2:
        raise ValueError(f"band-pass needs 0 < low ({low_hz}) < high ({high_hz}) < Nyquist ({fs / 2})")
    sos = signal.butter(order, (low_hz, high_hz), btype="bandpass", fs=fs, output="sos")
    return StreamingFilter(sos, n_channels)


def highpass(fs: float, cutoff_hz: float, n_channels: int, order: int = 4) -> StreamingFilter:
    """Butterworth high-pass at ``cutoff_hz``."""
    _check_rate(fs, n_channels)
    if not 0 < cutoff_hz < fs / 2:
        raise ValueError(f"high-pass cut-off {cutoff_hz} Hz must lie in (0, Nyquist = {fs / 2})")
    sos = signal.butter(order, cutoff_hz, btype="highpass", fs=fs, output="sos")
    return StreamingFilter(sos, n_channels)


def notch_frequencies(fs: float, mains_hz: float, harmonics: bool = True, max_hz: float | None = None) -> list[float]:
    """Mains and (optionally) its harmonics strictly below Nyquist and at most ``max_hz``."""
    limit = fs / 2 if max_hz is None else min(fs / 2, max_hz)
    if not 0 < mains_hz < fs / 2:
        raise ValueError(f"mains frequency {mains_hz} Hz must lie in (0, Nyquist = {fs / 2})")
    if not harmonics:
        return [float(mains_hz)]
    count = int(np.ceil(limit / mains_hz))
    return [k * float(mains_hz) for k in range(1, count + 1) if k * mains_hz < fs / 2 and k * mains_hz <= limit]


def notch(
    fs: float,
    mains_hz: float,
    n_channels: int,
    harmonics: bool = True,
    quality: float = 30.0,
    max_hz: float | None = None,
) -> StreamingFilter:
    """IIR notch (quality factor ``quality``) at mains and, with ``harmonics``, every multiple below Nyquist.

    ``max_hz`` drops harmonics above it (``default_chain`` passes the band-pass edge: beyond it the band-pass
    already attenuates them, and each notch costs one section per sample per channel).
    """
    _check_rate(fs, n_channels)
    sections = []
    for frequency in notch_frequencies(fs, mains_hz, harmonics, max_hz):
        b, a = signal.iirnotch(frequency, quality, fs=fs)
        sections.append(signal.tf2sos(b, a))
    return StreamingFilter(np.vstack(sections), n_channels)


class FilterChain:
    """Filters applied in sequence, with NaN/Inf protection.

    The sections of all filters are cascaded into one ``sosfilt`` call (the same arithmetic as filtering one
    after the other, one pass over the data instead of several).
    """

    def __init__(self, filters: Sequence[StreamingFilter]) -> None:
        if not filters:
            raise ValueError("a filter chain needs at least one filter")
        channel_counts = {f.n_channels for f in filters}
        if len(channel_counts) != 1:
            raise ValueError(f"filters disagree on the channel count: {sorted(channel_counts)}")
        self.filters = tuple(filters)
        self.n_channels = channel_counts.pop()
        self._cascade = StreamingFilter(np.vstack([f.sos for f in filters]), self.n_channels)
        self._last_finite: np.ndarray | None = None
        self.nonfinite_counts = np.zeros(self.n_channels, dtype=np.int64)

    @property
    def sos(self) -> np.ndarray:
        return self._cascade.sos

    def process(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Filters ``chunk`` (n, C); returns ``(filtered (n, C) float32, nonfinite_mask (n, C) bool)``.

        Samples under the mask were NaN/Inf; they were filtered as the last finite value of their channel
        (0 if the channel has had none yet), so their output is finite and later output is unaffected.
        """
        chunk = np.asarray(chunk)
        if chunk.ndim != 2 or chunk.shape[1] != self.n_channels:
            raise ValueError(f"expected a (n, {self.n_channels}) chunk, got {chunk.shape}")
        nonfinite = ~np.isfinite(chunk)
        if self._last_finite is None and len(chunk):
            self._last_finite = _first_finite_per_channel(chunk, nonfinite)
        if nonfinite.any():
            self.nonfinite_counts += nonfinite.sum(axis=0)
            chunk = _hold_last_finite(chunk, nonfinite, self._last_finite)
        if len(chunk):
            self._last_finite = chunk[-1].astype(np.float64)
        return self._cascade.process(chunk), nonfinite

    def reset(self) -> None:
        self._cascade.reset()
        self._last_finite = None


def _first_finite_per_channel(chunk: np.ndarray, nonfinite: np.ndarray) -> np.ndarray:
    finite = ~nonfinite
    first_index = np.argmax(finite, axis=0)
    values = chunk[first_index, np.arange(chunk.shape[1])].astype(np.float64)
    return np.where(finite.any(axis=0), values, 0.0)


def _hold_last_finite(chunk: np.ndarray, nonfinite: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Replaces each non-finite sample by the latest finite one before it (``previous`` before the chunk)."""
    n = chunk.shape[0]
    # row index of the latest finite sample at or before each position; -1 means "before this chunk"
    source_row = np.where(nonfinite, -1, np.arange(n)[:, np.newaxis])
    np.maximum.accumulate(source_row, axis=0, out=source_row)
    extended = np.vstack([previous[np.newaxis, :].astype(chunk.dtype, copy=False), chunk])
    return extended[source_row + 1, np.arange(chunk.shape[1])]


def default_chain(
    fs: float,
    n_channels: int,
    mode: str = "surface",
    mains_hz: float | None = 50.0,
    low_hz: float = 20.0,
    high_hz: float = 450.0,
    order: int = 4,
) -> FilterChain:
    """The monitor's standard filters.

    ``surface``: band-pass ``low_hz``-``high_hz`` (the high edge clipped below Nyquist, e.g. 95 Hz for a 200 Hz
    Myo armband) and notches at mains and its harmonics inside the pass band. ``needle``: high-pass at ``low_hz``
    only (needle EMG carries energy up to 1-2 kHz) and notches at every harmonic below Nyquist.
    ``mains_hz=None`` adds no notch. ``order`` is the Butterworth order per band edge.
    """
    if mode not in ("surface", "needle"):
        raise ValueError(f"filter mode must be 'surface' or 'needle', got {mode!r}")
    _check_rate(fs, n_channels)
    if mode == "surface":
        high = min(high_hz, NYQUIST_MARGIN * fs / 2)
        if not low_hz < high:
            raise ValueError(f"band-pass low edge {low_hz} Hz is not below the high edge {high:g} Hz at {fs} Hz")
        filters = [bandpass(fs, low_hz, high, n_channels, order)]
        notch_limit: float | None = high
    else:
        filters = [highpass(fs, low_hz, n_channels, order)]
        # needle spikes live at 0.5-2 kHz: notching every harmonic up to Nyquist would strip most of that band,
        # while mains pick-up is concentrated in the first few harmonics
        notch_limit = 5.5 * mains_hz if mains_hz else None
    if mains_hz is not None and mains_hz < fs / 2:
        filters.append(notch(fs, mains_hz, n_channels, harmonics=True, max_hz=notch_limit))
    return FilterChain(filters)


def detect_mains(x: np.ndarray, fs: float, min_prominence_db: float = 10.0) -> float | None:
    """50.0 or 60.0 if the recording ``x`` (n, C) carries mains interference, else None.

    The mains line is the candidate whose spectral peak stands highest (median over channels) above the
    background a few hertz to either side, provided it stands at least ``min_prominence_db`` above it.
    Needs a few seconds of signal for a 1 Hz resolution spectrum.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, np.newaxis]
    finite_rows = np.isfinite(x).all(axis=1)
    x = x[finite_rows]
    if len(x) < 16:
        return None
    nperseg = min(len(x), int(fs))  # ~1 Hz bins
    frequencies, power = signal.welch(x, fs=fs, nperseg=nperseg, axis=0)
    best, best_prominence = None, min_prominence_db
    for mains in MAINS_CANDIDATES_HZ:
        if mains + 8 >= fs / 2:
            continue
        peak_band = np.abs(frequencies - mains) <= 1.0
        side_band = (np.abs(frequencies - mains) >= 3.0) & (np.abs(frequencies - mains) <= 8.0)
        if not peak_band.any() or not side_band.any():
            continue
        peak = power[peak_band].max(axis=0)
        background = np.median(power[side_band], axis=0) + np.finfo(float).tiny
        prominence = float(np.median(10 * np.log10(peak / background + np.finfo(float).tiny)))
        if prominence > best_prominence:
            best, best_prominence = mains, prominence
    return best
