"""Causal, chunk-invariant application of a calibrated decomposition to a stream.

Each chunk of raw samples goes through the calibration's band-pass (its state carried over), is extended with the
last R - 1 filtered samples of the previous chunk, and every unit's separation filter gives its source. A sample is
a discharge when its normalised source s|s|/scale passes the unit's threshold and is the local peak within
+-half window (``dsp.decomposition.local_peak_mask``): the decision on a sample waits for the half window after it,
so discharges come out with a fixed delay of ``delay_samples`` (10 ms by default) after the chunk that completes it,
and the same samples are found whatever the chunking. Instantaneous rate: 1 / the interval to the unit's previous
discharge; smoothed rate: discharges in the last ``rate_window_s`` over its length.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from scipy import signal

from dsp.decomposition import Decomposition, filter_state_at, local_peak_mask

#: a unit silent for this long has no instantaneous rate (its previous discharge belongs to another burst)
MAX_INTERVAL_S = 1.0
#: samples processed per matrix product; bounds the extended copy's memory for long offline chunks
BLOCK_SAMPLES = 4096


@dataclass
class Discharges:
    """Discharges decided by one call, in time order."""

    units: np.ndarray  # (k,) int: index of the unit in the decomposition
    counters: np.ndarray  # (k,) int64: stream sample counter of the source peak
    timestamps: np.ndarray  # (k,) float64: LSL time of that sample
    instantaneous_hz: np.ndarray  # (k,) float64: 1 / interval to the unit's previous discharge, NaN if none

    def __len__(self) -> int:
        return int(self.units.size)


def _empty() -> Discharges:
    return Discharges(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0))


class LiveDecomposer:
    """Applies ``decomposition``'s units to a stream of raw samples, one chunk at a time."""

    def __init__(self, decomposition: Decomposition, rate_window_s: float = 1.0) -> None:
        self.decomposition = decomposition
        self.fs = decomposition.fs
        self.n_units = len(decomposition.units)
        self.n_channels = decomposition.n_channels
        self.extension = decomposition.extension
        self.delay_samples = max(1, int(round(decomposition.settings.peak_half_window_s * self.fs)))
        self.rate_window_s = float(rate_window_s)
        units = decomposition.units
        self._filters = decomposition.filters.reshape(self.n_units, -1).T.astype(np.float32)  # (C*R, U)
        self._bias = np.array([unit.bias for unit in units], dtype=np.float32)
        self._scale = np.array([unit.scale for unit in units], dtype=np.float32)
        self._threshold = np.array([unit.threshold for unit in units], dtype=np.float32)
        self._recent: list[deque[int]] = [deque() for _ in range(self.n_units)]
        self.total_discharges = np.zeros(self.n_units, dtype=np.int64)
        self.reset()

    def reset(self, next_counter: int | None = None) -> None:
        """Forget the stream (a gap): the band-pass restarts at the next sample as the calibration did."""
        self._zi: np.ndarray | None = None  # set from the first sample of the stream (dsp.decomposition.bandpass)
        self._history = np.zeros((self.extension - 1, self.n_channels), dtype=np.float32)
        width = 2 * self.delay_samples
        self._values = np.full((self.n_units, width), -np.inf, dtype=np.float32)  # undecided tail, -inf: none
        self._times = np.zeros(width)
        self._next_counter = next_counter
        self._last_discharge = np.full(self.n_units, -(2**62), dtype=np.int64)

    def process(self, samples: np.ndarray, timestamps: np.ndarray, first_counter: int) -> Discharges:
        """Discharges decided once ``samples`` ((n, C) raw µV, stream counters from ``first_counter``) are in."""
        samples = np.asarray(samples)
        n = samples.shape[0]
        if n == 0 or self.n_units == 0:
            return _empty()
        if samples.shape[1] != self.n_channels:
            raise ValueError(f"calibrated on {self.n_channels} channels, got {samples.shape[1]}")
        if self._next_counter is not None and first_counter != self._next_counter:
            self.reset(first_counter)  # samples were lost: the extension and filter states no longer fit
        self._next_counter = first_counter + n
        samples = samples.astype(np.float64)
        if not np.isfinite(samples).all():
            # an electrode off or a saturated amplifier: a NaN would stay in the filter state for ever
            samples = np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0)
        if self._zi is None:
            self._zi = filter_state_at(self.decomposition.sos, samples[0])
        filtered, self._zi = signal.sosfilt(self.decomposition.sos, samples, axis=0, zi=self._zi)
        normalised = self._sources(filtered.astype(np.float32))
        values = np.concatenate([self._values, normalised], axis=1)
        times = np.concatenate([self._times, np.asarray(timestamps, dtype=np.float64)])
        width = 2 * self.delay_samples
        # centres decidable now: the first undecided one (delay before the tail's end) up to delay before the end
        mask = local_peak_mask(values, self.delay_samples) & (values[:, self.delay_samples : -self.delay_samples]
                                                               > self._threshold[:, None])  # fmt: skip
        self._values, self._times = values[:, -width:], times[-width:]
        first_centre = first_counter - self.delay_samples  # counter of mask column 0
        unit_index, column = np.nonzero(mask)
        order = np.argsort(column, kind="stable")
        unit_index, column = unit_index[order], column[order]
        counters = first_centre + column.astype(np.int64)
        instantaneous = np.full(unit_index.size, np.nan)
        for position, (unit, counter) in enumerate(zip(unit_index.tolist(), counters.tolist(), strict=True)):
            interval = counter - self._last_discharge[unit]
            if interval <= MAX_INTERVAL_S * self.fs:
                instantaneous[position] = self.fs / interval
            self._last_discharge[unit] = counter
            self._recent[unit].append(counter)
        np.add.at(self.total_discharges, unit_index, 1)
        self._forget_before(first_counter + n - int(self.rate_window_s * self.fs))
        return Discharges(unit_index.astype(np.int64), counters, times[column + self.delay_samples], instantaneous)

    def finish(self) -> Discharges:
        """Decides the last half window of a finished stream (as if the stream went on below every threshold)."""
        if self._next_counter is None or self.n_units == 0:
            return _empty()
        values = np.concatenate([self._values, np.full((self.n_units, self.delay_samples), -np.inf, np.float32)], 1)
        mask = local_peak_mask(values, self.delay_samples) & (values[:, self.delay_samples : -self.delay_samples]
                                                               > self._threshold[:, None])  # fmt: skip
        unit_index, column = np.nonzero(mask[:, self.delay_samples :])  # the columns not decided yet
        order = np.argsort(column, kind="stable")
        unit_index, column = unit_index[order], column[order]
        counters = self._next_counter - self.delay_samples + column.astype(np.int64)
        self._values[:] = -np.inf
        return Discharges(unit_index.astype(np.int64), counters, self._times[self.delay_samples + column],
                          np.full(unit_index.size, np.nan))  # fmt: skip

    def _sources(self, filtered: np.ndarray) -> np.ndarray:
        """(U, n) normalised sources of a chunk, the extension reaching back into the previous chunk."""
        joined = np.concatenate([self._history, filtered])
        self._history = joined[joined.shape[0] - (self.extension - 1) :]
        n = filtered.shape[0]
        out = np.empty((self.n_units, n), dtype=np.float32)
        for start in range(0, n, BLOCK_SAMPLES):
            stop = min(n, start + BLOCK_SAMPLES)
            windows = np.lib.stride_tricks.sliding_window_view(joined[start : stop + self.extension - 1],
                                                               self.extension, axis=0)  # fmt: skip
            # (samples, C, R) -> (samples, C*R): the row order of dsp.decomposition.extend
            raw = windows.reshape(stop - start, -1) @ self._filters + self._bias
            out[:, start:stop] = (raw * np.abs(raw) / self._scale).T
        return out

    def _forget_before(self, counter: int) -> None:
        for recent in self._recent:
            while recent and recent[0] < counter:
                recent.popleft()

    def smoothed_rates(self) -> np.ndarray:
        """(U,) discharges per second over the last ``rate_window_s`` of the stream."""
        return np.array([len(recent) for recent in self._recent], dtype=np.float64) / self.rate_window_s


class RecruitmentTracker:
    """Force at each unit's recruitment (a discharge after ``silence_s`` without any, the stream's start of this unit
    set included) and de-recruitment (its last discharge, once ``silence_s`` has passed without another), from a force
    channel that arrives with the EMG. Every event is kept as (sample counter, force).

    A unit that discharges within ``silence_s`` of the set's first sample was already firing when the set was
    installed (a calibration is made during a contraction): that discharge is no recruitment, and the unit's
    recruitment force is unknown until it falls silent and comes back; its de-recruitment is still measured."""

    def __init__(self, n_units: int, fs: float, silence_s: float = 1.0) -> None:
        self.silence = int(silence_s * fs)
        self.recruitments: list[list[tuple[int, float]]] = [[] for _ in range(n_units)]
        self.derecruitments: list[list[tuple[int, float]]] = [[] for _ in range(n_units)]
        self._last = np.full(n_units, -1, dtype=np.int64)
        self._last_force = np.full(n_units, np.nan)
        self._active = np.zeros(n_units, dtype=bool)
        self._tail = np.zeros(0)
        self._tail_first = 0
        self._start: int | None = None  # the set's first sample: silence is observed from there

    def update(self, force: np.ndarray, first_counter: int, found: Discharges) -> None:
        """``force`` holds the chunk's force samples from ``first_counter``; ``found`` what the decomposer decided
        on that chunk (discharges at most its half window + the chunk old, so a second of force is kept)."""
        force = np.asarray(force, dtype=np.float64)
        if self._start is None:
            self._start = first_counter
        if first_counter != self._tail_first + self._tail.size:  # samples lost: the tail no longer lines up
            self._tail, self._tail_first = np.zeros(0), first_counter
        joined = np.concatenate([self._tail, force])
        for unit, counter in zip(found.units.tolist(), found.counters.tolist(), strict=True):
            position = counter - self._tail_first
            value = float(joined[position]) if 0 <= position < joined.size else float("nan")
            since = counter - (self._start if self._last[unit] < 0 else self._last[unit])
            if since > self.silence:
                self.recruitments[unit].append((counter, value))
            self._active[unit] = True
            self._last[unit], self._last_force[unit] = counter, value
        end = first_counter + force.size
        gone = self._active & (end - self._last > self.silence)
        for unit in np.flatnonzero(gone).tolist():
            self.derecruitments[unit].append((int(self._last[unit]), float(self._last_force[unit])))
        self._active &= ~gone
        keep = min(joined.size, max(self.silence, 1))
        self._tail, self._tail_first = joined[joined.size - keep :], end - keep

    def thresholds(self) -> list[tuple[float, float]]:
        """Per unit (latest recruitment force, latest de-recruitment force); NaN where none yet."""
        return [(r[-1][1] if r else float("nan"), d[-1][1] if d else float("nan"))
                for r, d in zip(self.recruitments, self.derecruitments, strict=True)]  # fmt: skip
