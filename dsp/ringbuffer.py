"""Preallocated samples x channels ring buffer with LSL timestamps and a monotonically increasing sample counter.

One writer (the acquisition thread), any number of readers, each with its own cursor. The writer never waits for
readers: a reader that falls more than ``capacity`` samples behind loses the oldest samples, and that loss is
counted on its cursor, never hidden. Writes copy only the new samples (no np.roll of the whole buffer).

A waiter says how many samples it waits for, and a write wakes only the waiters whose count it reached (not every
waiter on every write: a DSP thread waiting for the end of a 50 ms hop sleeps through the chunks before it).
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

_NO_WAITER = sys.maxsize  # ``_next_wake`` when nobody waits: no counter ever passes it


@dataclass
class Block:
    """Consecutive samples read from the buffer: ``data`` (n, C), ``timestamps`` (n,), counter of the first sample."""

    data: np.ndarray
    timestamps: np.ndarray
    first_counter: int

    @property
    def end_counter(self) -> int:
        return self.first_counter + len(self.timestamps)


class RingBuffer:
    def __init__(self, capacity: int, n_channels: int, dtype: np.dtype | type = np.float32) -> None:
        if capacity <= 0 or n_channels <= 0:
            raise ValueError(f"capacity and n_channels must be positive, got {capacity} x {n_channels}")
        self.capacity = int(capacity)
        self.n_channels = int(n_channels)
        self._data = np.zeros((self.capacity, self.n_channels), dtype=dtype)
        self._timestamps = np.zeros(self.capacity, dtype=np.float64)
        self._total_written = 0
        self._lock = threading.Lock()
        #: sleeping waiters: (counter the buffer must pass, the waiter's own condition on the buffer's lock)
        self._waiters: list[tuple[int, threading.Condition]] = []
        #: the smallest counter a waiter needs passed: a write below it wakes nobody and looks at no waiter
        self._next_wake = _NO_WAITER

    @property
    def total_written(self) -> int:
        """Samples written since creation: the counter of the next sample to be written."""
        return self._total_written

    def write(self, samples: np.ndarray, timestamps: np.ndarray) -> None:
        samples = np.asarray(samples)
        timestamps = np.asarray(timestamps, dtype=np.float64)
        if samples.ndim != 2 or samples.shape[1] != self.n_channels:
            raise ValueError(f"expected (n, {self.n_channels}) samples, got {samples.shape}")
        if samples.shape[0] != timestamps.shape[0]:
            raise ValueError(f"{samples.shape[0]} samples but {timestamps.shape[0]} timestamps")
        n = samples.shape[0]
        if n == 0:
            return
        with self._lock:
            start = self._total_written
            if n > self.capacity:
                # only the newest `capacity` samples can be kept; readers will count the rest as dropped
                skip = n - self.capacity
                samples, timestamps, start, n = samples[skip:], timestamps[skip:], start + skip, self.capacity
            position = start % self.capacity
            first = min(n, self.capacity - position)
            self._data[position : position + first] = samples[:first]
            self._timestamps[position : position + first] = timestamps[:first]
            if first < n:
                self._data[: n - first] = samples[first:]
                self._timestamps[: n - first] = timestamps[first:]
            self._total_written = total = start + n
            if total > self._next_wake:
                self._wake_waiters(total)

    def _wake_waiters(self, total: int) -> None:
        # called with the lock held; a waiter woken here leaves the list at once, so that a write coming before it
        # runs again does not look at it (or notify it) a second time
        waiting, next_wake = [], _NO_WAITER
        for entry in self._waiters:
            if total > entry[0]:
                entry[1].notify()
            else:
                waiting.append(entry)
                next_wake = min(next_wake, entry[0])
        self._waiters, self._next_wake = waiting, next_wake

    def wait_for_data(self, after_counter: int, timeout_s: float) -> bool:
        """Blocks until a sample with counter >= ``after_counter`` exists (True) or the timeout passes (False).

        Only the write that reaches that sample wakes this waiter; writes before it do not."""
        with self._lock:
            if self._total_written > after_counter:
                return True
            if timeout_s <= 0:
                return False
            entry = (after_counter, threading.Condition(self._lock))
            self._waiters.append(entry)
            self._next_wake = min(self._next_wake, after_counter)
            try:
                deadline = time.monotonic() + timeout_s
                while self._total_written <= after_counter:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    entry[1].wait(remaining)
                return True
            finally:
                if entry in self._waiters:  # timed out, or stopped waiting before a write reached its count
                    self._waiters.remove(entry)
                if not self._waiters:
                    self._next_wake = _NO_WAITER

    def read_from(self, counter: int, max_samples: int | None = None) -> Block:
        """Copies samples from ``counter`` on (or from the oldest still held, if ``counter`` was overwritten)."""
        with self._lock:
            oldest = max(0, self._total_written - self.capacity)
            start = max(counter, oldest)
            stop = self._total_written if max_samples is None else min(self._total_written, start + max_samples)
            return self._copy(start, stop)

    def latest(self, n_samples: int) -> Block:
        """The newest ``n_samples`` (fewer if fewer were written), for views."""
        with self._lock:
            stop = self._total_written
            start = max(0, stop - self.capacity, stop - n_samples)
            return self._copy(start, stop)

    def _copy(self, start: int, stop: int) -> Block:
        n = max(0, stop - start)
        position = start % self.capacity
        if position + n > self.capacity:
            indices: np.ndarray | slice = (position + np.arange(n)) % self.capacity
        else:
            indices = slice(position, position + n)
        return Block(self._data[indices].copy(), self._timestamps[indices].copy(), start)


class RingReader:
    """A reader's cursor: returns every new sample once, and counts the samples it lost to overruns."""

    def __init__(self, buffer: RingBuffer, start_counter: int | None = None) -> None:
        self.buffer = buffer
        self.next_counter = buffer.total_written if start_counter is None else start_counter
        self.dropped = 0

    def read(self, max_samples: int | None = None, timeout_s: float = 0.0) -> Block:
        if timeout_s > 0:
            self.buffer.wait_for_data(self.next_counter, timeout_s)
        block = self.buffer.read_from(self.next_counter, max_samples)
        self.dropped += block.first_counter - self.next_counter
        self.next_counter = block.end_counter if len(block.timestamps) else max(self.next_counter, block.first_counter)
        return block
