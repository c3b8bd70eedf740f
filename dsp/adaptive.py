"""Adaptive, causal, streaming filters: a mains canceller that follows a drifting mains frequency, and a
baseline remover that follows steps quickly and slow wander gently.

Both are plain data with state, like ``dsp.filters.StreamingFilter``: ``process(chunk (n, C)) -> (n, C)`` and
``reset()``. Their slow decisions (frequency re-estimate, baseline time constant) happen at fixed blocks counted
from the first sample of the stream, not from the start of each chunk, so cutting a stream into chunks differently
never changes the output.

Mains canceller (Widrow's adaptive noise canceller with a synthetic reference, plus frequency re-estimation):
for each harmonic k the reference is sin(k*phi), cos(k*phi), where phi advances at the estimated mains frequency.
Per channel, two LMS weights per harmonic model the hum (tracking its amplitude and phase); the output is the input
minus the modelled hum. With a fixed reference frequency this is an LTI notch about ``bandwidth_hz`` wide whose
depth at an offset df from the reference is about df / (bandwidth / 2), so the reference frequency must follow
the mains: it is re-estimated from the spectrum of the last seconds of input. A fixed IIR notch at the nominal
frequency instead loses depth as the mains drifts away from it (about 9 dB left at 50.3 Hz for Q = 30).

A loop locked to the rotation of the LMS weight phasor was tried first: with EMG present, the narrowband EMG under
the notch makes that phasor wander and the loop's frequency error stayed at 0.2-0.6 Hz; the windowed spectrum,
summed over channels, holds it near 0.02 Hz.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dsp.spectral import welch

_NYQUIST_MARGIN = 0.95
_GRID_STEP_HZ = 0.02
_DECIMATED_RATE_HZ = 32.0


def _check_chunk(chunk: np.ndarray, n_channels: int) -> np.ndarray:
    chunk = np.asarray(chunk)
    if chunk.ndim != 2 or chunk.shape[1] != n_channels:
        raise ValueError(f"expected a (n, {n_channels}) chunk, got {chunk.shape}")
    return chunk.astype(np.float64)


class _FiniteGuard:
    """Keeps NaN/Inf (dropped packets) out of an adaptive filter's state: such samples are filtered as the last
    finite value of their channel (0 before any) and come out as NaN again, so ``FilterChain`` downstream still
    sees and flags them."""

    def __init__(self, n_channels: int) -> None:
        self.last = np.zeros(n_channels)

    def clean(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        bad = ~np.isfinite(x)
        if bad.any():
            rows = np.where(bad, -1, np.arange(len(x))[:, None])
            np.maximum.accumulate(rows, axis=0, out=rows)
            x = np.vstack([self.last[None, :], x])[rows + 1, np.arange(x.shape[1])]
        else:
            bad = None
        if len(x):
            self.last = x[-1].copy()
        return x, bad


def _block_spans(position: int, n: int, block: int) -> list[tuple[int, int, bool]]:
    """(start, stop, ends_block) spans of a chunk of ``n`` samples starting at stream sample ``position``."""
    spans = []
    start = 0
    while start < n:
        to_boundary = block - (position + start) % block
        stop = min(n, start + to_boundary)
        spans.append((start, stop, stop - start == to_boundary))
        start = stop
    return spans


@dataclass
class AdaptiveMainsCanceller:
    """LMS hum canceller with a sin/cos reference whose frequency is re-estimated from the signal.

    ``bandwidth_hz``: notch width the LMS step is set from (narrower removes less EMG but adapts more slowly;
    time constant about 1 / (pi * bandwidth_hz) s). ``harmonics``: multiples of the mains to cancel, kept below
    0.95 x Nyquist and ``max_hz``. ``lock_range_hz``: how far from ``mains_hz`` the estimate may go.
    Every ``estimate_every_s`` the frequency is re-estimated from the last ``estimate_window_s`` of input: the
    Hann-windowed spectrum, summed over channels (mains is common to all of them) and averaged over about
    ``average_s``, is evaluated on a 0.02 Hz grid; its peak within the lock range is refined by a parabola, and the
    estimate moves only when that peak stands at least ``min_prominence`` times above the median spectrum beside
    it (no hum, no change). The weights adapt sample by sample (exact LMS), vectorised over each block.
    """

    fs: float
    n_channels: int
    mains_hz: float = 50.0
    harmonics: tuple[int, ...] = (1, 2, 3, 4, 5)
    bandwidth_hz: float = 4.0
    lock_range_hz: float = 1.0
    block_s: float = 0.008
    estimate_window_s: float = 2.0
    estimate_every_s: float = 0.25
    average_s: float = 4.0  # exponential averaging of successive spectra: steadier estimates, later by about this
    min_prominence: float = 4.0
    max_hz: float | None = None
    track_frequency: bool = True
    record_frequency: bool = False  # keep the frequency each block used, in ``frequency_log`` (for analysis)
    schedule_hz: np.ndarray | None = None  # replay: block i uses schedule_hz[i] instead of tracking
    frequency_hz: float = field(init=False)
    weights: np.ndarray = field(init=False, repr=False)  # (2H, C): sin then cos weight per harmonic

    def __post_init__(self) -> None:
        if not self.fs > 0 or self.n_channels <= 0:
            raise ValueError(f"need a positive rate and channel count, got {self.fs} Hz x {self.n_channels}")
        limit = _NYQUIST_MARGIN * self.fs / 2
        if self.max_hz is not None:
            limit = min(limit, self.max_hz)
        if not 0 < self.mains_hz + self.lock_range_hz < limit:
            raise ValueError(f"mains {self.mains_hz} Hz (+{self.lock_range_hz} lock range) is not below {limit:g} Hz")
        if self.bandwidth_hz <= 0 or not 0 <= self.lock_range_hz < self.mains_hz / 2:
            raise ValueError("bandwidth must be positive and the lock range within [0, mains / 2)")
        kept = [k for k in self.harmonics if k >= 1 and k * (self.mains_hz + self.lock_range_hz) < limit]
        if 1 not in kept:
            raise ValueError("the harmonics must include the fundamental (1)")
        self.harmonics = tuple(sorted(set(kept)))
        self._orders = np.asarray(self.harmonics, dtype=np.float64)
        # LMS with unit-amplitude sin/cos: w += mu * e * r is a notch with poles at radius 1 - mu/2, i.e. a -3 dB
        # width of mu * fs / (2 pi) Hz
        self._mu = 2.0 * math.pi * self.bandwidth_hz / self.fs
        self._block = max(1, int(round(self.block_s * self.fs)))
        self._blocks_per_estimate = max(1, int(round(self.estimate_every_s * self.fs / self._block)))
        # the estimate needs only a few hertz around the mains: the input is shifted down by the nominal frequency
        # (complex baseband) and averaged over DECIMATED_RATE_HZ-rate bins, so the spectrum is taken over a few dozen
        # points per channel instead of seconds of full-rate samples
        self._decimation = max(1, int(self.fs // _DECIMATED_RATE_HZ))
        self._decimated_rate = self.fs / self._decimation
        self._history_samples = max(8, int(round(self.estimate_window_s * self._decimated_rate)))
        # the grid reaches past the lock range by more than the Hann main lobe (2 / window) so that a line's
        # prominence is judged against the spectrum beside it, not against its own skirts
        self._lobe_hz = 2.0 / self.estimate_window_s
        reach = self.lock_range_hz + 1.5 * self._lobe_hz
        self._grid_hz = np.arange(self.mains_hz - reach, self.mains_hz + reach + 1e-9, _GRID_STEP_HZ)
        self._searched = np.flatnonzero(np.abs(self._grid_hz - self.mains_hz) <= self.lock_range_hz + 1e-9)
        self._basis: np.ndarray | None = None  # (history, grid) windowed DFT, built on first use
        self.reset()

    def reset(self) -> None:
        self._guard = _FiniteGuard(self.n_channels)
        self.frequency_hz = float(self.mains_hz)
        self.weights = np.zeros((2 * len(self.harmonics), self.n_channels))
        self._phase = 0.0
        self._position = 0
        self._history = np.zeros((self._history_samples, self.n_channels), dtype=np.complex128)
        self._bin_sum = np.zeros(self.n_channels, dtype=np.complex128)
        self._history_filled = 0
        self._history_next = 0
        self._power: np.ndarray | None = None
        self._blocks_done = 0
        self.frequency_log: list[float] = []
        self._apply_schedule()

    def _apply_schedule(self) -> None:
        if self.schedule_hz is not None and self._blocks_done < len(self.schedule_hz):
            self.frequency_hz = float(self.schedule_hz[self._blocks_done])

    @property
    def amplitude_uv(self) -> np.ndarray:
        """(H, C) modelled hum amplitude per harmonic and channel."""
        h = len(self.harmonics)
        return np.hypot(self.weights[:h], self.weights[h:])

    def process(self, chunk: np.ndarray) -> np.ndarray:
        x, bad = self._guard.clean(_check_chunk(chunk, self.n_channels))
        out = np.empty_like(x)
        for start, stop, ends_block in _block_spans(self._position, len(x), self._block):
            out[start:stop] = self._run_span(x[start:stop])
            if ends_block:
                self._end_block()
        if bad is not None:
            out[bad] = np.nan
        return out.astype(np.float32)

    def _run_span(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        step = 2.0 * math.pi * self.frequency_hz / self.fs
        phases = self._phase + step * np.arange(n)
        angles = phases[:, None] * self._orders[None, :]
        reference = np.hstack([np.sin(angles), np.cos(angles)])  # (n, 2H)
        # exact sample-by-sample LMS (e[i] = x[i] - r[i].w[i], w[i+1] = w[i] + mu e[i] r[i]) for the whole span at
        # once: substituting the updates gives (I + mu * strictly-lower(R R^T)) e = x - R w, one triangular solve
        # shared by all channels. (Updating only once per block would act like a delayed LMS and lift the whole
        # band by about mu * block * harmonics / 2.)
        coupling = (reference @ reference.T) * self._mu
        error = x - reference @ self.weights
        # forward substitution: spans are at most one block long, and for such tiny systems a LAPACK call costs
        # more than this loop (and, with a threaded BLAS on a loaded machine, far more)
        for i in range(1, n):
            error[i] -= coupling[i, :i] @ error[:i]
        self.weights += self._mu * (reference.T @ error)
        self._phase = float((self._phase + step * n) % (2.0 * math.pi))
        self._position += n
        if self.track_frequency and self.schedule_hz is None:
            self._remember(x)
        return error

    def _remember(self, x: np.ndarray) -> None:
        """Adds the span just processed (ending at ``self._position``) to the decimated baseband history."""
        start = self._position - len(x)
        cycles = ((start + np.arange(len(x))) * (self.mains_hz / self.fs)) % 1.0  # absolute time: no drift over hours
        baseband = x * np.exp(-2j * math.pi * cycles)[:, None]
        for lo, hi, ends_bin in _block_spans(start, len(x), self._decimation):
            self._bin_sum += baseband[lo:hi].sum(axis=0)
            if ends_bin:
                self._history[self._history_next] = self._bin_sum / self._decimation
                self._bin_sum[:] = 0.0
                self._history_next = (self._history_next + 1) % self._history_samples
                self._history_filled = min(self._history_samples, self._history_filled + 1)

    def _end_block(self) -> None:
        if self.record_frequency:
            self.frequency_log.append(self.frequency_hz)
        self._blocks_done += 1
        if self.schedule_hz is not None:
            self._apply_schedule()
        elif self.track_frequency and self._blocks_done % self._blocks_per_estimate == 0:
            estimate = self.estimate_frequency()
            if estimate is not None:
                self.frequency_hz = estimate

    def estimate_frequency(self) -> float | None:
        """Mains frequency in the remembered input (Hz), or None without a full window or a clear peak."""
        if self._history_filled < self._history_samples:
            return None
        if self._basis is None:
            times = np.arange(self._history_samples) / self._decimated_rate
            window = np.hanning(self._history_samples)
            offsets = self._grid_hz - self.mains_hz
            self._basis = window[:, None] * np.exp(-2j * math.pi * times[:, None] * offsets[None, :])
        ordered = np.roll(self._history, -self._history_next, axis=0)
        power = (np.abs(ordered.T @ self._basis) ** 2).sum(axis=0)  # (grid,)
        if self._power is None:
            self._power = power
        else:
            weight = min(1.0, self.estimate_every_s / self.average_s) if self.average_s > 0 else 1.0
            self._power = (1.0 - weight) * self._power + weight * power
        power = self._power
        peak = int(self._searched[np.argmax(power[self._searched])])
        beside = np.abs(self._grid_hz - self._grid_hz[peak]) >= self._lobe_hz
        if power[peak] < self.min_prominence * np.median(power[beside]):
            return None
        # the Hann main lobe is close to a Gaussian, whose logarithm is a parabola: three points give its top
        left, centre, right = np.log(power[peak - 1 : peak + 2])
        curvature = left - 2.0 * centre + right
        offset = 0.5 * (left - right) / curvature if curvature < 0 else 0.0
        estimate = self._grid_hz[peak] + float(np.clip(offset, -1.0, 1.0)) * _GRID_STEP_HZ
        return float(np.clip(estimate, self.mains_hz - self.lock_range_hz, self.mains_hz + self.lock_range_hz))

@dataclass
class AdaptiveBaseline:
    """Removes a moving baseline: a one-pole tracker whose time constant shortens when the baseline jumps.

    Per block the tracker follows the signal with time constant ``slow_s`` (long enough to leave EMG alone); when
    a block's mean departs from the tracked baseline by more than ``jump_factor`` times the signal's own spread
    (a step from an electrode pop or movement) it follows with ``fast_s`` until it has caught up. Output is the
    input minus the baseline before each sample.
    """

    fs: float
    n_channels: int
    slow_s: float = 0.5
    fast_s: float = 0.02
    jump_factor: float = 4.0
    block_s: float = 0.04  # whole mains periods (2 at 50 Hz): hum does not read as a baseline jump
    baseline: np.ndarray | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if not self.fs > 0 or self.n_channels <= 0:
            raise ValueError(f"need a positive rate and channel count, got {self.fs} Hz x {self.n_channels}")
        if not 0 < self.fast_s < self.slow_s:
            raise ValueError("need 0 < fast_s < slow_s")
        self._block = max(2, int(round(self.block_s * self.fs)))
        self.reset()

    def reset(self) -> None:
        self._guard = _FiniteGuard(self.n_channels)
        self.baseline = None
        self._alpha = np.full(self.n_channels, self._coefficient(self.slow_s))
        self._spread = np.zeros(self.n_channels)  # running mean |x - baseline|
        self._position = 0
        self._sum = np.zeros(self.n_channels)
        self._count = 0

    def _coefficient(self, tau_s: float) -> float:
        return 1.0 - math.exp(-1.0 / (tau_s * self.fs))

    def process(self, chunk: np.ndarray) -> np.ndarray:
        x, bad = self._guard.clean(_check_chunk(chunk, self.n_channels))
        if len(x) == 0:
            return np.zeros((0, self.n_channels), dtype=np.float32)
        if self.baseline is None:
            self.baseline = x[0].copy()
        out = np.empty_like(x)
        for start, stop, ends_block in _block_spans(self._position, len(x), self._block):
            span = x[start:stop]
            tracked = self._track(span)
            # output uses the baseline before each sample: causal, and a step shows fully in its first sample
            before = np.vstack([self.baseline[None, :], tracked[:-1]])
            out[start:stop] = span - before
            self._sum += (span - before).sum(axis=0)
            self._spread += np.abs(span - before).sum(axis=0)
            self._count += len(span)
            self.baseline = tracked[-1]
            self._position += len(span)
            if ends_block:
                self._end_block()
        if bad is not None:
            out[bad] = np.nan
        return out.astype(np.float32)

    def _track(self, span: np.ndarray) -> np.ndarray:
        """Baseline after each sample of ``span``: b[n] = b[n-1] + alpha * (x[n] - b[n-1]) per channel.

        Closed form over the (short) span, vectorised over channels: b[n] = beta^n * (b[0] + alpha * sum_k
        beta^-k x[k]) with beta = 1 - alpha; a span is at most one block, so beta^-n stays well scaled."""
        beta = 1.0 - self._alpha
        powers = beta[None, :] ** np.arange(1, len(span) + 1)[:, None]
        return powers * (self.baseline[None, :] + self._alpha[None, :] * np.cumsum(span / powers, axis=0))

    def _end_block(self) -> None:
        mean_offset = self._sum / self._count
        spread = self._spread / self._count
        # a zero-mean signal's block mean stays within a few spread / sqrt(n); a step moves it by far more
        jumped = np.abs(mean_offset) > self.jump_factor * spread / math.sqrt(self._count)
        self._alpha = np.where(jumped, self._coefficient(self.fast_s), self._coefficient(self.slow_s))
        self._sum[:] = 0.0
        self._spread[:] = 0.0
        self._count = 0


def mains_canceller_split(
    clean: np.ndarray, hum: np.ndarray, fs: float, **settings: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the canceller does to each part of ``clean + hum``: (output, output of the clean part, output of the hum
    part), all (n, C) float64.

    Given its reference frequency trajectory the LMS canceller is linear in its input, so the run on the sum is
    replayed with the same trajectory on each part alone: the parts add up to the output (to rounding), and residual
    hum and EMG distortion are measured exactly instead of being confused with each other near the mains lines.
    """
    clean = np.asarray(clean, dtype=np.float64)
    hum = np.asarray(hum, dtype=np.float64)
    n_channels = clean.shape[1]
    tracking = AdaptiveMainsCanceller(fs, n_channels, record_frequency=True, **settings)
    output = tracking.process(clean + hum).astype(np.float64)
    schedule = np.asarray(tracking.frequency_log)
    parts = []
    for part in (clean, hum):
        replay = AdaptiveMainsCanceller(fs, n_channels, schedule_hz=schedule, **settings)
        parts.append(replay.process(part).astype(np.float64))
    return output, parts[0], parts[1]


def drifting_mains(
    n_samples: int,
    fs: float,
    n_channels: int,
    start_hz: float = 50.25,
    end_hz: float = 50.35,
    amplitude_uv: float = 40.0,
    harmonics: tuple[tuple[int, float], ...] = ((1, 1.0), (3, 0.3), (5, 0.1)),
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A test hum: frequency sweeping linearly ``start_hz`` -> ``end_hz``, amplitude swelling +-20 % every 6 s,
    per-channel gain (0.5-1.5 x ``amplitude_uv``) and phase, odd harmonics. -> ((n, C) µV, (n,) frequency in Hz)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / fs
    frequency = start_hz + (end_hz - start_hz) * t / max(t[-1], 1.0 / fs) if n_samples else t
    phase = 2.0 * math.pi * np.cumsum(frequency) / fs
    envelope = 1.0 + 0.2 * np.sin(2.0 * math.pi * t / 6.0)
    gains = amplitude_uv * rng.uniform(0.5, 1.5, n_channels)
    offsets = rng.uniform(0.0, 2.0 * math.pi, n_channels)
    hum = np.zeros((n_samples, n_channels))
    for order, weight in harmonics:
        hum += weight * envelope[:, None] * gains * np.sin(order * (phase[:, None] + offsets))
    return hum, frequency


def inband_power_db(
    x: np.ndarray, reference: np.ndarray, fs: float, low_hz: float = 20.0, high_hz: float = 450.0
) -> float:
    """Power of ``x`` relative to ``reference`` in ``low_hz``-``high_hz`` (Welch, summed over channels), in dB.
    Offline (the canceller's figures in `neurofusion stages` and its tests), but it shares the one numpy Welch."""
    nperseg = min(len(x), int(fs))
    frequencies, px = welch(x, fs, nperseg, axis=0)
    _, pr = welch(reference, fs, nperseg, axis=0)
    band = (frequencies >= low_hz) & (frequencies <= min(high_hz, fs / 2))
    return float(10.0 * np.log10(px[band].sum() / pr[band].sum()))


def mains_removal_figures(clean: np.ndarray, hum: np.ndarray, clean_out: np.ndarray, hum_out: np.ndarray,
                          fs: float, settle_s: float = 3.0) -> dict[str, float]:  # fmt: skip
    """Hum reduction (dB of hum power removed), in-band power change of the EMG (dB), signal-to-distortion of the EMG
    (dB) and their margin (reduction - |change|), after ``settle_s``, from a filter's outputs for each part."""
    skip = int(settle_s * fs)
    clean, hum, clean_out, hum_out = (np.asarray(a, dtype=np.float64)[skip:] for a in (clean, hum, clean_out, hum_out))
    reduction = 10.0 * np.log10(np.sum(hum**2) / max(np.sum(hum_out**2), np.finfo(float).tiny))
    change = inband_power_db(clean_out, clean, fs)
    distortion = 10.0 * np.log10(np.sum(clean**2) / max(np.sum((clean_out - clean) ** 2), np.finfo(float).tiny))
    return {
        "hum_reduction_db": round(float(reduction), 2),
        "inband_change_db": round(change, 3),
        "signal_to_distortion_db": round(float(distortion), 2),
        "margin_db": round(float(reduction - abs(change)), 2),
    }


class AdaptivePreprocessor:
    """The switchable adaptive stages in the order a stream meets them, before the fixed ``FilterChain``:
    baseline removal (optional), then the mains canceller (optional; use the chain without its notch then:
    ``default_chain(..., mains_hz=None)``). ``process(chunk (n, C)) -> (n, C)``; NaN/Inf stay NaN."""

    def __init__(self, fs: float, n_channels: int, mains_hz: float | None = 50.0, baseline: bool = False) -> None:
        self.stages: list[AdaptiveMainsCanceller | AdaptiveBaseline] = []
        if baseline:
            self.stages.append(AdaptiveBaseline(fs, n_channels))
        if mains_hz is not None:
            self.stages.append(AdaptiveMainsCanceller(fs, n_channels, mains_hz=mains_hz))

    def process(self, chunk: np.ndarray) -> np.ndarray:
        for stage in self.stages:
            chunk = stage.process(chunk)
        return np.asarray(chunk, dtype=np.float32)

    def reset(self) -> None:
        for stage in self.stages:
            stage.reset()
