"""LSL inlet -> ring buffer, in its own thread. Finds the amplifier, keeps pulling, notices when it vanishes.

liblsl recovers a stream that returns with the same source_id by itself (``recover=True``); this thread reports the
state ("streaming" / "signal lost") so the views can say so, lets no sample that follows a gap into the buffer until
a fresh lookup confirms the stream is back at the same rate and channel count (monitor/reconnect.py), refuses a
stream back in another format or under its source_id as another stream, and never blocks on anything but the inlet
(lookups run in a thread of their own). ``signal_status`` is what the views show of all this.
"""

from __future__ import annotations

import bisect
import collections
import ctypes
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from dsp.ringbuffer import RingBuffer
from dsp.windows import is_gap
from monitor.errors import UserError
from monitor.reconnect import HeldSamples, Resolver, StreamIdentity, StreamLookups, Verdict

log = logging.getLogger(__name__)

SIGNAL_LOST_AFTER_S = 0.5
#: samples of a returned stream kept while its rate is unconfirmed, in seconds at the accepted rate (a bound in
#: samples, so memory stays bounded whatever rate the stream came back at)
HOLD_SECONDS = 5.0
#: one lookup's wait: liblsl sends its unicast wave to the KnownPeers only at MulticastMinRTT (0.5 s by default),
#: so a shorter wait never reaches a lab network's amplifier, and exactly 0.5 s races that wave into a 5.5 s block
LOOKUP_TIMEOUT_S = 1.0


class ChunkPuller:
    """liblsl's chunk pull for a live thread, with the fewest Python steps per wake-up: straight into preallocated
    float32 samples and float64 time stamps (any numeric stream is converted by liblsl), without pylsl's wrapper
    (which allocates arrays and ctypes views on every call and pulls twice through them).

    ``pull(timeout_s)`` waits up to ``timeout_s`` for the first sample, then takes whatever else is already there
    without waiting (pylsl's ``min_samples=1``): the latency needs each chunk as soon as it starts arriving, and
    liblsl's plain timed pull waits to fill the whole buffer or for the timeout (~25 ms more on average)."""

    def __init__(self, inlet: Any, capacity: int, n_channels: int) -> None:
        from pylsl.lib import lib

        if capacity < 2:
            raise ValueError(f"capacity must be at least 2 samples, got {capacity}")
        self.data = np.zeros((capacity, n_channels), dtype=np.float32)
        self.timestamps = np.zeros(capacity, dtype=np.float64)
        self._pull = lib.lsl_pull_chunk_f
        self._local_clock = lib.lsl_local_clock
        self._n_channels = n_channels
        self._error = ctypes.c_int()
        data, stamps, value_bytes = self.data.ctypes.data, self.timestamps.ctypes.data, self.data.itemsize
        # the arguments that never change, built once: the inlet, where the first sample and the rest go, how many
        self._first = (inlet.obj, ctypes.c_void_p(data), ctypes.c_void_p(stamps), ctypes.c_size_t(n_channels),
                       ctypes.c_size_t(1))  # fmt: skip
        self._rest = (inlet.obj, ctypes.c_void_p(data + n_channels * value_bytes), ctypes.c_void_p(stamps + 8),
                      ctypes.c_size_t((capacity - 1) * n_channels), ctypes.c_size_t(capacity - 1),
                      ctypes.c_double(0.0), ctypes.byref(self._error))  # fmt: skip
        self._error_ref = ctypes.byref(self._error)

    def pull(self, timeout_s: float) -> int:
        """Samples now in ``data[:n]`` and ``timestamps[:n]`` (0 when nothing came within ``timeout_s``)."""
        values = self._pull(*self._first, ctypes.c_double(timeout_s), self._error_ref)
        if self._error.value:
            self._raise()
        if not values:
            return 0
        values += self._pull(*self._rest)
        if self._error.value:
            self._raise()
        return values // self._n_channels

    def _raise(self) -> None:
        from pylsl.util import handle_error

        error, self._error.value = self._error.value, 0
        handle_error(error)


def resolve_by_predicate(predicate: str, timeout_s: float) -> Sequence[Any]:
    """The outlets answering an LSL predicate within ``timeout_s`` (returns at the first answer)."""
    import pylsl

    return pylsl.resolve_bypred(predicate, 1, timeout_s)


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


#: how long resolve_stream listens for a second stream matching a name or type (the first answers at once)
AMBIGUITY_LOOKUP_S = 1.0  # other processes' outlets answered after 0.5 s here; a lone stream costs this once


def resolve_stream(
    name: str | None = None, stream_type: str | None = "EMG", source_id: str | None = None, timeout_s: float = 5.0
) -> Any:
    """Finds one LSL stream by source_id, else name, else type; a clear error names what was looked for."""
    import pylsl

    for prop, value in (("source_id", source_id), ("name", name), ("type", stream_type)):
        if value:
            found = pylsl.resolve_byprop(prop, value, minimum=1, timeout=timeout_s)
            if found and prop != "source_id":
                # liblsl answers with the first outlet it hears: with two amplifiers (two beds, a simulator left
                # running) that could be the other patient's. A short second look says whether another matches.
                found = pylsl.resolve_byprop(prop, value, minimum=2, timeout=AMBIGUITY_LOOKUP_S) or found
                distinct = list({info.uid(): info for info in found}.values())
                if len(distinct) > 1:
                    streams = ", ".join(f"'{info.name()}' (source id '{info.source_id()}' on {info.hostname()})"
                                        for info in distinct)  # fmt: skip
                    raise UserError(f"several LSL streams have {prop} '{value}': {streams}; pick one with "
                                    "--source-id (or a --name only it has), or stop the other")
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


def channel_count_text(n_channels: int, emg_channels: Any) -> str:
    """The stream's channels for a status line: "64 EMG + 1 other ch" where some are not EMG (a force channel)."""
    n_emg = n_channels if emg_channels is None else len(emg_channels)
    return f"{n_channels} ch" if n_emg == n_channels else f"{n_emg} EMG + {n_channels - n_emg} other ch"


def full_description(info: Any, timeout_s: float = 5.0) -> StreamDescription:
    """The stream's full description (channel types, layout), which a resolved StreamInfo lacks: asked of the
    outlet through a short-lived inlet. A stream that does not answer is described from what was resolved."""
    import pylsl
    from pylsl.util import LostError
    from pylsl.util import TimeoutError as LSLTimeoutError

    try:
        # recover=False: an inlet left to recover a vanished outlet waits out the timeout, and can reach another
        # stream altogether; the resolved description is the honest answer then
        full = pylsl.StreamInlet(info, recover=False).info(timeout=timeout_s)
    except (LSLTimeoutError, LostError):  # pylsl's own classes: pylsl 1.18 does not export them at the top level
        return describe(info)
    return describe(full) if same_outlet(full, info) else describe(info)


def same_outlet(answered: Any, resolved: Any) -> bool:
    """Whether the outlet that answered at a resolved stream's address is that stream: a vanished outlet's port can
    be taken by another process's new outlet (another stream), which then answers for it. An outlet restarted with
    the same name and source id (an amplifier switched off and on) is the same stream."""
    if answered.uid() == resolved.uid():
        return True
    return bool(resolved.source_id()) and (answered.source_id(), answered.name()) == (resolved.source_id(),
                                                                                      resolved.name())


class Acquisition(threading.Thread):
    """Pulls chunks from an LSL inlet into a preallocated ring buffer until stopped."""

    def __init__(
        self,
        info: Any,
        buffer_seconds: float = 30.0,
        open_timeout_s: float = 5.0,
        hold_seconds: float = HOLD_SECONDS,
        resolver: Resolver = resolve_by_predicate,
    ) -> None:
        super().__init__(name="acquisition", daemon=True)
        import pylsl
        from pylsl.util import LostError
        from pylsl.util import TimeoutError as LSLTimeoutError

        self._pylsl = pylsl
        self._inlet = pylsl.StreamInlet(
            info,
            max_buflen=int(max(buffer_seconds, 10)),
            recover=True,
            processing_flags=pylsl.proc_clocksync | pylsl.proc_monotonize,
        )
        try:
            full_info = self._inlet.info(timeout=open_timeout_s)
            if not same_outlet(full_info, info):  # the outlet is gone and another one took its port
                raise LostError(f"stream '{info.name()}' is gone")
            self.stream = describe(full_info)
            identity = StreamIdentity.of(full_info)
            self._inlet.open_stream(timeout=open_timeout_s)
        except (LSLTimeoutError, LostError) as error:  # pylsl's own: `pylsl.TimeoutError` does not exist in 1.18
            raise UserError(
                f"LSL stream '{info.name()}' did not answer within {open_timeout_s:g} s (is the amplifier or "
                "player still running?)"
            ) from error
        if self.stream.fs <= 0:
            raise UserError(f"stream '{self.stream.name}' has an irregular rate; EMG needs a nominal sampling rate")
        self.buffer = RingBuffer(int(self.stream.fs * buffer_seconds), self.stream.n_channels)
        self._puller = ChunkPuller(self._inlet, max(1024, int(self.stream.fs * 0.25)), self.stream.n_channels)
        self._stop_requested = threading.Event()
        #: LSL time (pylsl.local_clock, a monotonic clock) the last sample was stored: one clock read per chunk
        #: serves both this and the chunk's arrival time
        self.last_data_clock = pylsl.local_clock()
        # (counter after the chunk, LSL time it arrived) of recent chunks: when each sample reached the monitor
        self._arrival_ends: collections.deque[int] = collections.deque(maxlen=4096)
        self._arrival_times: collections.deque[float] = collections.deque(maxlen=4096)
        self.signal_lost_events = 0
        self._lost = False
        self._last_timestamp: float | None = None
        self._lookups = StreamLookups(identity, resolver, LOOKUP_TIMEOUT_S)
        self._lookups.take_census()
        self._hold_capacity = max(1, int(self.stream.fs * hold_seconds))
        self._held: HeldSamples | None = None
        #: samples of a returned stream pushed out of the hold before its rate was confirmed (the oldest ones)
        self.unconfirmed_dropped = 0
        #: set when the stream returned with another rate or channel count: the pipeline refuses it, never garbles
        self.incompatible: str | None = None

    @property
    def signal_lost(self) -> bool:
        """No sample stored for a while (samples held for confirmation do not count: they are not usable yet)."""
        return self._pylsl.local_clock() - self.last_data_clock > SIGNAL_LOST_AFTER_S

    @property
    def held_samples(self) -> int:
        """Samples of a returned stream waiting for its rate to be confirmed."""
        held = self._held
        return held.held if held is not None else 0

    def stop(self) -> None:
        self._stop_requested.set()

    def run(self) -> None:
        puller = self._puller
        while not self._stop_requested.is_set():
            n = puller.pull(0.05)
            if n:
                self._receive(puller.data[:n], puller.timestamps[:n])
            elif self.signal_lost and not self._lost and self._held is None:
                self._lost = True
                self.signal_lost_events += 1
                self._lookups.restart(time.monotonic())
                log.warning("signal lost on stream %s", self.stream.name)
            if self._lost or self._held is not None:
                self._act_on(self._lookups.poll(self._held, time.monotonic()))
        self._lookups.close()
        self._inlet.close_stream()

    def _receive(self, samples: np.ndarray, timestamps: np.ndarray) -> None:
        arrived = self._pylsl.local_clock()
        if self._held is None and self._resumes_after_gap(float(timestamps[0])):
            # liblsl may have reconnected to a restarted outlet at another rate: nothing goes in until a lookup says
            self._held = HeldSamples(self._hold_capacity)
            self._lookups.restart(time.monotonic())
        if self._held is None:
            self._store(samples, timestamps, arrived)
            return
        pushed_out = self._held.add(samples, timestamps, arrived)
        if pushed_out and self._held.dropped == pushed_out:
            log.warning(
                "stream '%s' is back but its rate is not confirmed yet: keeping its newest %.1f s, dropping older "
                "samples (counted as unconfirmed drops)", self.stream.name, self._hold_capacity / self.stream.fs,
            )
        self.unconfirmed_dropped += pushed_out

    def _resumes_after_gap(self, first_timestamp: float) -> bool:
        # a gap is what the DSP engine calls one (a jump in the time stamps), or time without samples: an outlet
        # that restarts fast leaves only the jump, which the wall clock alone would miss; the outlet that never left
        # is confirmed by its uid within one lookup
        if self._lost:
            return True
        if self._last_timestamp is None:
            return False
        return is_gap(self._last_timestamp, first_timestamp, self.stream.fs)

    def _store(self, samples: np.ndarray, timestamps: np.ndarray, arrived: float) -> None:
        self.buffer.write(samples, timestamps)
        self._arrival_times.append(arrived)
        self._arrival_ends.append(self.buffer.total_written)
        self._last_timestamp = float(timestamps[-1])
        self.last_data_clock = arrived
        self._lost = False

    def _act_on(self, verdict: Verdict | None) -> None:
        if verdict is None:
            return
        if verdict.kind == "changed":
            self._refuse(verdict)
        elif verdict.kind == "same" and self._held is not None:
            self._lookups.follow(verdict)
            self._release_held()

    def _refuse(self, verdict: Verdict) -> None:
        # liblsl does not recover a stream back with another channel count (it silently waits forever) and does
        # recover one back at another rate; either way the held samples are of a format this monitor did not set up
        self.incompatible = f"stream '{self.stream.name}' {verdict.message}; restart the monitor to accept it"
        log.error(self.incompatible)
        self._held = None
        self._stop_requested.set()

    def _release_held(self) -> None:
        held = self._held
        assert held is not None
        first = self.buffer.total_written
        for chunk in held.release():
            self._store(chunk.data, chunk.timestamps, chunk.arrived)
        self.last_data_clock = self._pylsl.local_clock()  # stored now, though they arrived while held
        self._held = None
        log.info(
            "stream '%s' confirmed back at %g Hz: %d held samples stored from sample %d, %d dropped while unconfirmed",
            self.stream.name, self.stream.fs, self.buffer.total_written - first, first, held.dropped,
        )

    def arrival_of(self, counter: int) -> float | None:
        """LSL time at which sample ``counter`` arrived (None if it is older than the arrivals remembered)."""
        index = bisect.bisect_right(self._arrival_ends, counter)
        try:
            return self._arrival_times[index]
        except IndexError:
            return None


@dataclass(frozen=True)
class SignalStatus:
    """What the views say about the stream: one state word and one short phrase, the same in the GUI and terminal."""

    state: Literal["waiting", "streaming", "lost", "confirming", "refused"]
    phrase: str
    held_samples: int = 0
    unconfirmed_dropped: int = 0


def signal_status(acquisition: Any) -> SignalStatus:
    """The stream's state as the views show it, from an Acquisition (or anything with its attributes).

    Held samples keep ``signal_lost`` true, as they are not usable yet; the views say so rather than "signal lost",
    as the stream is back and the wait is the monitor's own."""
    held = getattr(acquisition, "held_samples", 0)
    dropped = getattr(acquisition, "unconfirmed_dropped", 0)
    if getattr(acquisition, "incompatible", None):
        return SignalStatus("refused", acquisition.incompatible, held, dropped)
    if held:
        seconds = held / acquisition.stream.fs
        return SignalStatus("confirming", f"stream back, confirming its rate ({seconds:.1f} s held)", held, dropped)
    if not acquisition.signal_lost:
        return SignalStatus("streaming", "streaming", held, dropped)
    if acquisition.buffer.total_written == 0:
        # nothing has arrived yet: a stream that is starting up is not a stream that was lost
        return SignalStatus("waiting", "waiting for the first samples", held, dropped)
    return SignalStatus("lost", "signal lost", held, dropped)


def dropped_figure(reader_dropped: int, status: SignalStatus) -> str:
    """``dropped N`` counting every sample lost on the way: those the DSP reader fell behind on and those pushed out
    of the hold before the stream's rate was confirmed (named beside the total, as their cause differs)."""
    total = reader_dropped + status.unconfirmed_dropped
    if not status.unconfirmed_dropped:
        return f"dropped {total}"
    return f"dropped {total} ({status.unconfirmed_dropped} while confirming the rate)"
