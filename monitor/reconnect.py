"""What the acquisition thread needs to accept a stream that vanished and returned: who the stream is, whether a
lookup shows it back in the same format, and where its samples wait until that is known.

liblsl reconnects an inlet by itself but never compares the sampling rate, and the inlet keeps the rate it read
first; so samples that arrive after a gap are held here, bounded, until a fresh lookup confirms the rate. It never
reconnects to an outlet whose name, type, channel count or sample format changed either, and says nothing: such a
return is looked for here too (by source_id) and reported, or the monitor would show "signal lost" for ever.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

log = logging.getLogger(__name__)

#: (predicate, timeout in s) -> the outlets that answered (pylsl.StreamInfo)
Resolver = Callable[[str, float], Sequence[Any]]

#: liblsl's channel_format codes, by index, spelled as its stream descriptions and queries spell them
CHANNEL_FORMATS = ("undefined", "float32", "double64", "string", "int32", "int16", "int8", "int64")
#: most other streams sharing the source_id that the census at the start keeps apart from ours (several streams of one
#: device, say EMG and accelerometer); bounds the census's lookups, each of which waits a full timeout to end
MAX_SIBLINGS = 16


def channel_format_name(code: int) -> str:
    return CHANNEL_FORMATS[code] if 0 <= code < len(CHANNEL_FORMATS) else f"format {code}"


def describe_outlet(name: str, stream_type: str, channel_format: str, n_channels: int, fs: float) -> str:
    """How a refusal names a stream: ``'amp' (EMG, float32, 9 ch at 2048 Hz)``."""
    return f"'{name}' ({stream_type}, {channel_format}, {n_channels} ch at {fs:g} Hz)"


def xpath_literal(value: str) -> str:
    """``value`` quoted for an LSL (XPath 1.0) predicate, which has no escape character."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    return "concat(" + ", \"'\", ".join(f"'{part}'" for part in value.split("'")) + ")"


@dataclass(frozen=True)
class Verdict:
    """A lookup's answer: the stream not seen, seen in the same format, or seen changed (``message`` says how)."""

    kind: Literal["unseen", "same", "changed"]
    message: str = ""
    uid: str = ""


@dataclass(frozen=True)
class StreamIdentity:
    """The stream a running inlet belongs to, and the format its samples were accepted in."""

    name: str
    stream_type: str
    source_id: str
    hostname: str
    uid: str
    fs: float
    n_channels: int
    channel_format: str = "float32"

    @classmethod
    def of(cls, info: Any) -> StreamIdentity:
        return cls(
            info.name(), info.type(), info.source_id(), info.hostname(), info.uid(), float(info.nominal_srate()),
            info.channel_count(), channel_format_name(info.channel_format()),
        )

    def described(self) -> str:
        return describe_outlet(self.name, self.stream_type, self.channel_format, self.n_channels, self.fs)

    def predicate(self) -> str:
        """What a returned outlet of this stream answers to.

        Name, type and source_id as in liblsl's recovery, so the lookup sees the outlets the inlet may have
        reconnected to; not the uid, which a restarted outlet draws anew. Without a source_id liblsl would take any
        host's outlet of that name and type: the lookup keeps to the hostname instead, to judge our amplifier only.
        Unlike liblsl it leaves out the channel count and sample format, so that a stream back with another count
        or format is reported instead of waited for in silence (liblsl never reconnects to it); a stream back under
        its source_id with another name or type is found by ``source_predicate``.
        """
        terms = [f"name={xpath_literal(self.name)}", f"type={xpath_literal(self.stream_type)}"]
        if self.source_id:
            terms.append(f"source_id={xpath_literal(self.source_id)}")
        elif self.hostname:
            terms.append(f"hostname={xpath_literal(self.hostname)}")
        return " and ".join(terms)

    def source_predicate(self, siblings: frozenset[tuple[str, str]] = frozenset()) -> str:
        """The outlets under this stream's source_id that ``predicate`` does not see: not this name and type, nor
        those of the ``siblings`` (the other streams the device published from the start, which are not ours)."""
        if not self.source_id:
            raise ValueError("a stream without a source_id has no other name to come back under")
        terms = [f"source_id={xpath_literal(self.source_id)}"]
        for name, stream_type in sorted(siblings | {(self.name, self.stream_type)}):
            terms.append(f"not(name={xpath_literal(name)} and type={xpath_literal(stream_type)})")
        return " and ".join(terms)

    def judge(self, found: Sequence[Any]) -> Verdict:
        """Compares the outlets a lookup found (StreamInfo objects) with the accepted format."""
        if not found:
            return Verdict("unseen")
        if self.uid and any(info.uid() == self.uid for info in found):
            # the outlet we accepted is still there: liblsl stays on (or goes back to) a uid it still sees
            return Verdict("same", uid=self.uid)
        for info in found:
            rate, channels = float(info.nominal_srate()), info.channel_count()
            channel_format = channel_format_name(info.channel_format())
            if channel_format != self.channel_format:
                return self.returned_as(info)
            if rate != self.fs or channels != self.n_channels:
                # with several outlets of this identity we cannot tell which one the inlet follows: any changed one
                # refuses, as garbled samples are worse than a restart
                return Verdict(
                    "changed",
                    f"returned with {channels} channels at {rate:g} Hz (was {self.n_channels} at {self.fs:g} Hz)",
                )
        return Verdict("same", uid=found[0].uid() if len(found) == 1 else "")

    def judge_by_source(self, found: Sequence[Any]) -> Verdict:
        """Outlets that ``source_predicate`` found: this stream, back under its source_id as something else."""
        return self.returned_as(found[0]) if found else Verdict("unseen")

    def returned_as(self, info: Any) -> Verdict:
        """A return liblsl never reconnects to (another name, type, channel count or sample format), named in full."""
        returned = describe_outlet(
            info.name(), info.type(), channel_format_name(info.channel_format()), info.channel_count(),
            float(info.nominal_srate()),
        )
        return Verdict("changed", f"returned as {returned}, was {self.described()}")

    def following(self, verdict: Verdict) -> StreamIdentity:
        """This identity after a confirmed return: the next gap is checked against the outlet now serving it."""
        return replace(self, uid=verdict.uid)


@dataclass
class HeldChunk:
    data: np.ndarray
    timestamps: np.ndarray
    arrived: float  # LSL time the chunk reached the monitor


class HeldSamples:
    """Samples of a returned stream waiting for its format to be confirmed: the newest ``capacity`` only.

    The oldest go first when the bound is reached: a live monitor owes the user the present, and the samples lost
    show as a longer gap in the time stamps, counted in ``dropped``.
    """

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        self.held = 0
        self.dropped = 0
        self._chunks: collections.deque[HeldChunk] = collections.deque()

    def add(self, data: np.ndarray, timestamps: np.ndarray, arrived: float) -> int:
        """Keeps a copy of the chunk; returns how many of the oldest samples this pushed out."""
        self._chunks.append(HeldChunk(np.array(data, copy=True), np.array(timestamps, dtype=np.float64), arrived))
        self.held += len(timestamps)
        pushed_out = 0
        while self.held > self.capacity:
            oldest = self._chunks[0]
            excess = self.held - self.capacity
            if len(oldest.timestamps) <= excess:
                self._chunks.popleft()
                count = len(oldest.timestamps)
            else:
                oldest.data, oldest.timestamps = oldest.data[excess:], oldest.timestamps[excess:]
                count = excess
            self.held -= count
            pushed_out += count
        self.dropped += pushed_out
        return pushed_out

    def release(self) -> list[HeldChunk]:
        """All held chunks, oldest first; the hold is empty afterwards."""
        chunks = list(self._chunks)
        self._chunks.clear()
        self.held = 0
        return chunks


class Backoff:
    """When to look the stream up next: at once after a change of state, then ever less often, up to ``cap_s``."""

    def __init__(self, first_s: float = 0.1, cap_s: float = 1.0) -> None:
        self.first_s, self.cap_s = first_s, cap_s
        self._delay = first_s
        self._next = 0.0

    def due(self, now: float) -> bool:
        return now >= self._next

    def reset(self, now: float) -> None:
        self._delay, self._next = self.first_s, now

    def failed(self, now: float) -> None:
        self._next = now + self._delay
        self._delay = min(self._delay * 2.0, self.cap_s)


class StreamLookups:
    """Looks the stream up in a thread of its own, so that the acquisition thread keeps draining the inlet meanwhile.

    ``poll(about, now)`` is called from the acquisition thread with what the answer is to decide (the hold, or None
    while the stream is away): an answer to a question asked about something else is stale and asked again at once,
    except a changed format, which is refused whenever it is seen.

    A lookup that does not see the stream under its identity looks under its source_id alone, for the stream back
    with another name or type. A device may publish several streams under one source_id; ``take_census`` notes the
    names and types of those present at the start, so that they are never taken for ours (a sibling that appears
    later would be, and refused: the monitor already takes a source_id to name one stream, see resolve_stream).
    """

    def __init__(self, identity: StreamIdentity, resolver: Resolver, timeout_s: float) -> None:
        self.identity = identity
        self._resolver = resolver
        self._timeout_s = timeout_s
        self._backoff = Backoff()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-lookup")
        self._in_flight: tuple[Future[Verdict], object] | None = None
        #: (name, type) of the other streams under our source_id; written and read in the lookup thread only
        self._siblings: frozenset[tuple[str, str]] = frozenset()

    def take_census(self) -> None:
        """Notes, in the lookup thread, the other streams under this source_id now (lookups queue behind it)."""
        if self.identity.source_id:
            self._pool.submit(self._count_siblings, self.identity)

    def restart(self, now: float) -> None:
        """The state changed (stream lost, or back): the next lookup is due at once."""
        self._backoff.reset(now)

    def follow(self, verdict: Verdict) -> None:
        self.identity = self.identity.following(verdict)

    def poll(self, about: object, now: float) -> Verdict | None:
        if self._in_flight is None:
            if self._backoff.due(now):
                self._in_flight = (self._pool.submit(self._look_up, self.identity), about)
            return None
        future, asked_about = self._in_flight
        if not future.done():
            return None
        self._in_flight = None
        verdict = future.result()
        if verdict.kind == "changed":
            return verdict
        if asked_about is not about:
            return None
        self._backoff.failed(now)  # for as long as it takes, ever less often
        return verdict

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _count_siblings(self, identity: StreamIdentity) -> None:
        # the resolver returns the first outlet that answers: exclude each one found and ask again until none does
        try:
            for _ in range(MAX_SIBLINGS):
                found = self._resolver(identity.source_predicate(self._siblings), self._timeout_s)
                if not found:
                    return
                self._siblings |= {(info.name(), info.type()) for info in found}
        except Exception as error:  # noqa: BLE001 (a failed census leaves siblings unknown, lookups still work)
            log.warning("looking up other streams of source '%s' failed: %s", identity.source_id, error)

    def _look_up(self, identity: StreamIdentity) -> Verdict:
        try:
            verdict = identity.judge(self._resolver(identity.predicate(), self._timeout_s))
            if verdict.kind == "unseen" and identity.source_id:
                verdict = identity.judge_by_source(
                    self._resolver(identity.source_predicate(self._siblings), self._timeout_s)
                )
            return verdict
        except Exception as error:  # noqa: BLE001 (a failed lookup is one that saw nothing; the next may not fail)
            log.warning("looking up stream '%s' failed: %s", identity.name, error)
            return Verdict("unseen")
