"""Paces any sample source onto an LSL outlet, like a real amplifier: the simulator and replay both use it.

Every sample gets the timestamp it would have had on a real amplifier (start + index / rate on the LSL clock),
so a stream paced here never drifts, and chunk boundaries never change timestamps.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class SampleSource(Protocol):
    """What the amplifier needs from a source. Optional extras: ``ground_truth() -> dict`` (published as JSON markers
    at ``marker_rate_hz``) and ``markers_until(sample_index) -> list[tuple[int, str]]`` (markers at given samples)."""

    fs: float
    n_channels: int
    channel_labels: list[str]

    def read(self, n_samples: int) -> np.ndarray: ...


def describe_stream(info: Any, source: SampleSource, unit: str = "microvolts") -> None:
    """Writes channel labels, units and the electrode layout into an LSL StreamInfo description (XDF-style).

    Every channel is in ``unit`` unless the source lists ``channel_units`` (one per channel)."""
    desc = info.desc()
    channels = desc.append_child("channels")
    # auxiliary channels (force, triggers, a test's sample index) are typed so the monitor keeps them off the model
    types = getattr(source, "channel_types", None) or ["EMG"] * source.n_channels
    # a source with auxiliary channels (a force in %MVC) names each channel's unit; the EMG is in ``unit``
    units = getattr(source, "channel_units", None) or [unit] * source.n_channels
    for label, channel_type, channel_unit in zip(source.channel_labels, types, units, strict=True):
        channel = channels.append_child("channel")
        channel.append_child_value("label", str(label))
        channel.append_child_value("unit", channel_unit)
        channel.append_child_value("type", channel_type)
    layout = getattr(source, "layout", None)
    if layout is not None:
        desc.append_child_value("layout", json.dumps(layout.to_dict() if hasattr(layout, "to_dict") else layout))
    acquisition = desc.append_child("acquisition")
    acquisition.append_child_value("manufacturer", "NeuroFusion")
    acquisition.append_child_value("model", type(source).__name__)


class Amplifier:
    """Publishes ``source`` on an LSL outlet in real time (or ``speed`` times faster) in chunks of ``chunk_samples``."""

    def __init__(
        self,
        source: SampleSource,
        name: str = "NeuroFusion-Sim",
        source_id: str = "neurofusion-sim",
        chunk_samples: int = 32,
        marker_rate_hz: float = 4.0,
        speed: float = 1.0,
        stream_type: str = "EMG",
    ) -> None:
        if source.fs <= 0 or source.n_channels <= 0:
            raise ValueError(f"source needs a positive rate and channel count: {source.fs} Hz x {source.n_channels}")
        if chunk_samples <= 0 or speed <= 0:
            raise ValueError("chunk_samples and speed must be positive")
        import pylsl

        self.source = source
        self.chunk_samples = int(chunk_samples)
        self.speed = float(speed)
        self.marker_interval_s = 1.0 / marker_rate_hz if marker_rate_hz > 0 else None
        self.samples_sent = 0
        info = pylsl.StreamInfo(name, stream_type, source.n_channels, source.fs, "float32", source_id)
        describe_stream(info, source)
        self._outlet = pylsl.StreamOutlet(info, chunk_size=self.chunk_samples, max_buffered=60)
        self._marker_outlet = None
        if hasattr(source, "ground_truth") or hasattr(source, "markers_until"):
            marker_info = pylsl.StreamInfo(f"{name}-markers", "Markers", 1, 0.0, "string", f"{source_id}-markers")
            self._marker_outlet = pylsl.StreamOutlet(marker_info)
        self._clock: Callable[[], float] = pylsl.local_clock

    def has_consumers(self) -> bool:
        return bool(self._outlet.have_consumers())

    def wait_for_consumers(self, timeout_s: float) -> bool:
        return bool(self._outlet.wait_for_consumers(timeout_s))

    def linger(self, seconds: float = 0.5) -> None:
        """Call before the outlet goes away: liblsl drops what is still queued when an outlet is destroyed, so a
        consumer would miss the last chunk."""
        if self.has_consumers():
            time.sleep(seconds)

    def run(self, duration_s: float | None = None, stop_event: threading.Event | None = None) -> int:
        """Streams until ``duration_s`` of signal has been sent, the source is exhausted or ``stop_event`` is set.

        Returns the number of samples sent."""
        fs = float(self.source.fs)
        total = None if duration_s is None else int(round(duration_s * fs))
        start = self._clock()
        sample_period = 1.0 / (fs * self.speed)
        next_marker_at = 0.0
        while stop_event is None or not stop_event.is_set():
            n = self.chunk_samples if total is None else min(self.chunk_samples, total - self.samples_sent)
            if n <= 0:
                break
            # make the chunk first, then wait until its last sample would have been digitised: the source's
            # own work (a simulation, a file read) must not delay the push
            chunk = np.ascontiguousarray(self.source.read(n), dtype=np.float32)
            if chunk.shape[0] == 0:
                break
            n = chunk.shape[0]
            delay = start + (self.samples_sent + n) * sample_period - self._clock()
            if delay > 0:
                time.sleep(delay)
            indices = np.arange(self.samples_sent + 1, self.samples_sent + n + 1)
            timestamps = start + indices * sample_period
            self._outlet.push_chunk(chunk, timestamps.tolist())
            self.samples_sent += n
            self._publish_markers(timestamps[-1], start, sample_period)
            if self.marker_interval_s is not None and hasattr(self.source, "ground_truth"):
                elapsed = self.samples_sent / fs  # of signal, so --speed does not thin the ground truth
                if elapsed >= next_marker_at:
                    self._push_marker(json.dumps(self.source.ground_truth()), float(timestamps[-1]))
                    next_marker_at = elapsed + self.marker_interval_s
        return self.samples_sent

    def _publish_markers(self, last_timestamp: float, start: float, sample_period: float) -> None:
        if not hasattr(self.source, "markers_until"):
            return
        for sample_index, text in self.source.markers_until(self.samples_sent):
            self._push_marker(text, start + (sample_index + 1) * sample_period)

    def _push_marker(self, text: str, timestamp: float) -> None:
        if self._marker_outlet is not None:
            self._marker_outlet.push_sample([text], timestamp)
