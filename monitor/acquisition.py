"""LSL inlet -> ring buffer, in its own thread. Finds the amplifier, keeps pulling, notices when it vanishes.

liblsl recovers a stream that returns with the same source_id by itself (``recover=True``); this thread only
reports the state ("streaming" / "signal lost") so the views can say so, and never blocks on anything but the inlet.
"""

from __future__ import annotations

import bisect
import collections
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dsp.ringbuffer import RingBuffer
from monitor.errors import UserError

log = logging.getLogger(__name__)

SIGNAL_LOST_AFTER_S = 0.5


@dataclass(frozen=True)
class StreamDescription:
    name: str
    stream_type: str
    source_id: str
    fs: float
    n_channels: int
    channel_labels: list[str]
    units: list[str]
    layout: dict[str, Any] | None = field(default=None)
    channel_types: list[str] = field(default_factory=list)

    @property
    def emg_channels(self) -> list[int]:
        """Channels typed EMG (all of them when the stream does not type its channels)."""
        typed = [i for i, kind in enumerate(self.channel_types) if kind.upper() == "EMG"]
        return typed or list(range(self.n_channels))


def resolve_stream(
    name: str | None = None, stream_type: str | None = "EMG", source_id: str | None = None, timeout_s: float = 5.0
) -> Any:
    """Finds one LSL stream by source_id, else name, else type; a clear error names what was looked for."""
    import pylsl

    for prop, value in (("source_id", source_id), ("name", name), ("type", stream_type)):
        if value:
            found = pylsl.resolve_byprop(prop, value, minimum=1, timeout=timeout_s)
            if found:
                return found[0]
            raise UserError(
                f"no LSL stream with {prop} '{value}' found within {timeout_s:g} s "
                "(is the amplifier on? on a lab network, pass --lsl-config with your KnownPeers)"
            )
    raise UserError("give a stream name, type or source_id to look for")


def describe(info: Any) -> StreamDescription:
    """Reads rate, channels, labels, units and electrode layout from a full StreamInfo (inlet.info())."""
    n_channels = info.channel_count()
    labels, units, types = [], [], []
    channel = info.desc().child("channels").child("channel")
    while not channel.empty() and len(labels) < n_channels:
        labels.append(channel.child_value("label") or f"ch{len(labels) + 1}")
        units.append(channel.child_value("unit") or "microvolts")
        types.append(channel.child_value("type") or "EMG")
        channel = channel.next_sibling("channel")
    labels += [f"ch{i + 1}" for i in range(len(labels), n_channels)]
    units += ["microvolts"] * (n_channels - len(units))
    types += ["EMG"] * (n_channels - len(types))
    layout_text = info.desc().child_value("layout")
    try:
        layout = json.loads(layout_text) if layout_text else None
    except json.JSONDecodeError:
        log.warning("stream %s carries an unreadable layout; ignoring it", info.name())
        layout = None
    return StreamDescription(
        info.name(), info.type(), info.source_id(), float(info.nominal_srate()), n_channels, labels, units, layout,
        types,
    )


class Acquisition(threading.Thread):
    """Pulls chunks from an LSL inlet into a preallocated ring buffer until stopped."""

    def __init__(self, info: Any, buffer_seconds: float = 30.0, open_timeout_s: float = 5.0) -> None:
        super().__init__(name="acquisition", daemon=True)
        import pylsl

        self._pylsl = pylsl
        self._inlet = pylsl.StreamInlet(
            info,
            max_buflen=int(max(buffer_seconds, 10)),
            recover=True,
            processing_flags=pylsl.proc_clocksync | pylsl.proc_monotonize,
        )
        try:
            self.stream = describe(self._inlet.info(timeout=open_timeout_s))
            self._inlet.open_stream(timeout=open_timeout_s)
        except pylsl.TimeoutError as error:
            raise UserError(f"LSL stream '{info.name()}' did not answer within {open_timeout_s:g} s") from error
        if self.stream.fs <= 0:
            raise UserError(f"stream '{self.stream.name}' has an irregular rate; EMG needs a nominal sampling rate")
        self.buffer = RingBuffer(int(self.stream.fs * buffer_seconds), self.stream.n_channels)
        self._chunk_capacity = max(1024, int(self.stream.fs * 0.25))
        self._chunk = np.zeros((self._chunk_capacity, self.stream.n_channels), dtype=np.float32)
        self._stop_requested = threading.Event()
        self.last_data_clock = time.monotonic()
        # (counter after the chunk, LSL time it arrived) of recent chunks: when each sample reached the monitor
        self._arrival_ends: collections.deque[int] = collections.deque(maxlen=4096)
        self._arrival_times: collections.deque[float] = collections.deque(maxlen=4096)
        self.signal_lost_events = 0
        self._lost = False
        self._next_format_check = 0.0
        #: set when the stream returned with another rate or channel count: the pipeline refuses it, never garbles
        self.incompatible: str | None = None

    @property
    def signal_lost(self) -> bool:
        return time.monotonic() - self.last_data_clock > SIGNAL_LOST_AFTER_S

    def stop(self) -> None:
        self._stop_requested.set()

    def run(self) -> None:
        while not self._stop_requested.is_set():
            # min_samples=1: return as soon as anything arrived (liblsl's plain timed pull waits to fill the whole
            # buffer or for the timeout, which alone added ~25 ms of latency on average)
            _, timestamps = self._inlet.pull_chunk(
                timeout=0.05, max_samples=self._chunk_capacity, dest_obj=self._chunk, min_samples=1
            )
            if timestamps:
                # liblsl's recovery matches the returning outlet on name, type, channel count and sample format but
                # not on the rate, so a stream back at another rate would flow in as if it were the old one: check
                # before its first sample is written (the inlet keeps buffering meanwhile, so nothing is lost)
                if self._lost and self._check_returned_format(force=True):
                    break
                n = len(timestamps)
                arrived = self._pylsl.local_clock()
                self.buffer.write(self._chunk[:n], np.asarray(timestamps))
                self._arrival_times.append(arrived)
                self._arrival_ends.append(self.buffer.total_written)
                self.last_data_clock = time.monotonic()
                self._lost = False
            elif self.signal_lost:
                if not self._lost:
                    self._lost = True
                    self.signal_lost_events += 1
                    log.warning("signal lost on stream %s", self.stream.name)
                self._check_returned_format()
        self._inlet.close_stream()

    def arrival_of(self, counter: int) -> float | None:
        """LSL time at which sample ``counter`` arrived (None if it is older than the arrivals remembered)."""
        index = bisect.bisect_right(self._arrival_ends, counter)
        try:
            return self._arrival_times[index]
        except IndexError:
            return None

    def _check_returned_format(self, force: bool = False) -> bool:
        """True (message set, acquisition stopping) when the stream is back with another rate or channel count."""
        # liblsl does not recover a stream back with another channel count (it silently waits forever) and does recover
        # one back at another rate; either way only a fresh resolve by source_id tells, as the inlet's info is cached
        now = time.monotonic()
        if self.incompatible:
            return True
        if now < self._next_format_check and not force:
            return False
        self._next_format_check = now + 1.0
        for info in self._pylsl.resolve_byprop("source_id", self.stream.source_id, timeout=0.5):
            rate, channels = float(info.nominal_srate()), info.channel_count()
            if rate != self.stream.fs or channels != self.stream.n_channels:
                self.incompatible = (
                    f"stream '{self.stream.name}' returned with {channels} channels at {rate:g} Hz "
                    f"(was {self.stream.n_channels} at {self.stream.fs:g} Hz); restart the monitor to accept it"
                )
                log.error(self.incompatible)
                self._stop_requested.set()
                return True
        return False
