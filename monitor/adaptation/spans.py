"""Copies each mark's filtered samples out of the DSP ring buffer while they are still in it, and cuts windows.

The engine's filtered buffer holds the last ~30 s only; marks of 10 s per class span longer than that, so every
finished mark is captured as soon as the DSP has filtered its last sample, not when "adapt" is pressed.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dsp.ringbuffer import RingBuffer
from monitor.adaptation.marks import IGNORE_LABEL, Mark

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CapturedSpan:
    mark: Mark
    data: np.ndarray  # (n, C) float32 filtered µV, model channels only
    timestamps: np.ndarray  # (n,) LSL time

    @property
    def complete(self) -> bool:
        """False when the buffer had already overwritten the mark's beginning."""
        return len(self.timestamps) > 0 and self.timestamps[0] - self.mark.start <= 2.0 / self._rate()

    def _rate(self) -> float:
        return (len(self.timestamps) - 1) / max(1e-9, float(self.timestamps[-1] - self.timestamps[0]))


@dataclass(frozen=True)
class MarkedWindows:
    windows: np.ndarray  # (N, C, S) float32
    labels: np.ndarray  # (N,) int64 index into classes
    ends: np.ndarray  # (N,) LSL time of each window's last sample
    held_out: np.ndarray  # (N,) bool: kept out of fine-tuning, for the before/after figure
    classes: list[str]

    def counts(self) -> dict[str, dict[str, int]]:
        return {name: {"train": int(((self.labels == index) & ~self.held_out).sum()),
                       "held_out": int(((self.labels == index) & self.held_out).sum())}
                for index, name in enumerate(self.classes)}


class SpanStore:
    """Subscribe ``on_mark`` to a MarkLog and call ``capture()`` regularly (a view timer, the CLI loop)."""

    def __init__(self, filtered: RingBuffer, channels: np.ndarray | None = None, max_seconds: float = 600.0,
                 fs: float | None = None) -> None:
        self.filtered = filtered
        self.channels = None if channels is None else np.asarray(channels)
        self.max_seconds = max_seconds
        self.fs = fs
        self._pending: list[Mark] = []
        self._spans: list[CapturedSpan] = []
        self._lock = threading.Lock()

    def on_mark(self, mark: Mark) -> None:
        if mark.label != IGNORE_LABEL:
            with self._lock:
                self._pending.append(mark)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def spans(self) -> list[CapturedSpan]:
        with self._lock:
            return list(self._spans)

    def capture(self) -> int:
        """Copy the marks whose last sample has been filtered; -> how many were captured now."""
        with self._lock:
            if not self._pending:
                return 0
            pending = list(self._pending)
        block = self.filtered.latest(self.filtered.capacity)
        if not len(block.timestamps):
            return 0
        newest = float(block.timestamps[-1])
        captured = []
        for mark in pending:
            if mark.end > newest:
                continue  # the DSP has not reached its end yet
            inside = (block.timestamps >= mark.start) & (block.timestamps <= mark.end)
            data = block.data[inside] if self.channels is None else block.data[inside][:, self.channels]
            span = CapturedSpan(mark, np.ascontiguousarray(data, np.float32), block.timestamps[inside].copy())
            if len(span.timestamps) and not span.complete:
                log.warning("mark %r started %.1f s before the oldest buffered sample: only its end is used",
                            mark.label, span.timestamps[0] - mark.start)
            captured.append((mark, span))
        with self._lock:
            for mark, span in captured:
                self._pending.remove(mark)
                if len(span.timestamps):
                    self._spans.append(span)
            self._trim()
        return len(captured)

    def _trim(self) -> None:
        """Oldest spans go first once more than ``max_seconds`` are held (memory stays bounded)."""
        total = sum(span.mark.duration for span in self._spans)
        while self._spans and total > self.max_seconds:
            total -= self._spans.pop(0).mark.duration


def cut_marked_windows(spans: list[CapturedSpan], classes: list[str], window_samples: int, hop_samples: int,
                       held_out_fraction: float = 0.3) -> MarkedWindows:
    """Windows entirely inside the spans; per class, the latest ``held_out_fraction`` of its marked time is held
    out, and windows straddling the cut are dropped, so no held-out window shares a sample with a training one."""
    unknown = sorted({span.mark.label for span in spans} - set(classes))
    if unknown:
        raise ValueError(f"label(s) {', '.join(map(repr, unknown))} are not classes of the model "
                         f"({', '.join(classes)}); use one of those or {IGNORE_LABEL!r}")
    parts, labels, ends = [], [], []
    for span in spans:
        if len(span.data) < window_samples:
            continue
        starts = np.arange(0, len(span.data) - window_samples + 1, hop_samples)
        windows = sliding_window_view(span.data, window_samples, axis=0)[starts]  # (N, C, S)
        parts.append(windows)
        labels.append(np.full(len(starts), classes.index(span.mark.label), np.int64))
        ends.append(span.timestamps[starts + window_samples - 1])
    if not parts:
        raise ValueError("the marks hold no complete window yet: mark a few seconds per class")
    windows = np.ascontiguousarray(np.concatenate(parts), np.float32)
    labels_all, ends_all = np.concatenate(labels), np.concatenate(ends)
    window_s = np.median([float(np.median(np.diff(span.timestamps))) for span in spans if len(span.timestamps) > 1])
    starts_all = ends_all - window_s * (window_samples - 1)
    held_out = np.zeros(len(labels_all), bool)
    keep = np.ones(len(labels_all), bool)
    for label in np.unique(labels_all):
        mine = labels_all == label
        order = np.sort(ends_all[mine])
        cut = order[min(len(order) - 1, int(np.floor(len(order) * (1 - held_out_fraction))))]
        held_out |= mine & (starts_all > cut)
        keep &= ~(mine & (ends_all > cut) & (starts_all <= cut))
    return MarkedWindows(windows[keep], labels_all[keep], ends_all[keep], held_out[keep], list(classes))
