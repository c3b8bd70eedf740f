"""Cuts a filtered stream into overlapping windows aligned to the sample counter.

Windows end at counters that are multiples of the hop, so two pipelines fed the same samples (live or replay,
chunked differently) produce exactly the same windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Window:
    data: np.ndarray  # (C, S) float32, filtered
    last_timestamp: float  # LSL time of the window's last sample
    end_counter: int  # counter of the sample after the window's last one

    @property
    def start_counter(self) -> int:
        return self.end_counter - self.data.shape[1]


def is_gap(last_timestamp: float, next_timestamp: float, fs: float) -> bool:
    """Whether samples resuming at ``next_timestamp`` after one at ``last_timestamp`` follow a gap: a jump of more
    than 50 ms plus five sample periods, well above LSL's time-stamp jitter at any supported rate. Acquisition holds
    a returned stream on the same rule that makes the engine restart its filters and windows (here, not in
    dsp.engine, so that acquisition needs neither scipy nor the engine's imports)."""
    return next_timestamp - last_timestamp > 0.05 + 5.0 / fs


def samples_for(duration_ms: float, fs: float) -> int:
    n = int(round(duration_ms * fs / 1000.0))
    if n < 1:
        raise ValueError(f"{duration_ms} ms at {fs} Hz is less than one sample")
    return n


class Windower:
    def __init__(self, fs: float, n_channels: int, window_ms: float = 200.0, hop_ms: float = 50.0) -> None:
        self.fs = float(fs)
        self.n_channels = int(n_channels)
        self.window_samples = samples_for(window_ms, fs)
        self.hop_samples = samples_for(hop_ms, fs)
        if self.hop_samples > self.window_samples:
            raise ValueError(f"hop ({hop_ms} ms) must not exceed the window ({window_ms} ms)")
        self._tail = np.zeros((0, self.n_channels), dtype=np.float32)
        self._tail_times = np.zeros(0, dtype=np.float64)
        self._tail_end = 0  # counter after the last sample held

    def reset(self) -> None:
        """Forget held samples (after a gap: a window must never straddle one)."""
        self._tail = self._tail[:0]
        self._tail_times = self._tail_times[:0]

    def push(self, samples: np.ndarray, timestamps: np.ndarray, first_counter: int) -> list[Window]:
        if first_counter != self._tail_end:
            self.reset()
        data = np.concatenate([self._tail, np.asarray(samples, dtype=np.float32)]) if len(self._tail) else samples
        times = np.concatenate([self._tail_times, timestamps]) if len(self._tail_times) else np.asarray(timestamps)
        data_start = first_counter - len(self._tail)
        data_end = first_counter + len(samples)
        first_end = max(data_start + self.window_samples, self._tail_end + 1)
        first_end += (-first_end) % self.hop_samples
        windows = []
        for end in range(first_end, data_end + 1, self.hop_samples):
            stop = end - data_start
            windows.append(
                Window(
                    np.ascontiguousarray(data[stop - self.window_samples : stop].T, dtype=np.float32),
                    float(times[stop - 1]),
                    end,
                )
            )
        keep = min(len(data), self.window_samples - 1)
        self._tail = data[len(data) - keep :].copy()
        self._tail_times = np.asarray(times[len(times) - keep :], dtype=np.float64).copy()
        self._tail_end = data_end
        return windows
