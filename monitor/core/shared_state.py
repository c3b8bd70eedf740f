"""The core's state in one shared-memory segment that views map read-only: a small versioned layout, no pickles.

Layout (all little-endian, every section 64-byte aligned):

    0   magic  b"NFCORE\\0\\0"          8 bytes
    8   layout version                  u32  (a reader refuses any other)
    12  table-of-contents length        u32
    16  writer pid                      u32
    20  writer state                    u32  (1 running, 2 closed)
    24  writer heartbeat                f64  (time.monotonic(): one clock for every process on the machine)
    64  table of contents               JSON: {"meta": {...}, "sections": {name: {kind, offset, ...}}}

Two kinds of section, each with one writer (the core) that never waits for a reader:

- ``ring``: ``capacity`` entries of ``width`` values and a float64 time stamp each, as ``dsp.RingBuffer`` but across
  processes. Two u64 counters precede the arrays: *intent* (entries the writer has started to write) and *committed*
  (entries completely written). The writer raises intent, writes, then raises committed. A reader copies entries
  below committed, then reads intent again: any copied entry older than ``intent - capacity`` may have been
  overwritten while it was copied (a torn read) and is discarded, counted as dropped, never returned.
- ``blob``: a JSON document (Python's json: NaN allowed) behind a sequence lock. The writer makes the sequence odd,
  writes, makes it even; a reader that sees an odd or changed sequence copies again (a few tries, then keeps what it
  had): it never blocks the writer.

Counters are aligned 8-byte numpy stores: single instructions on x86-64 and AArch64, and CPython issues them in
program order, so a reader that sees a counter also sees what was written before it.
"""

from __future__ import annotations

import _posixshmem  # what multiprocessing.shared_memory opens segments with
import contextlib
import json
import mmap
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

MAGIC = b"NFCORE\0\0"
LAYOUT_VERSION = 1
HEADER_BYTES = 64
TOC_BYTES = 64 * 1024
ALIGN = 64
RUNNING, CLOSED = 1, 2
BLOB_HEADER_BYTES = 16  # u64 sequence, u64 length
BLOB_READ_TRIES = 8


def _aligned(offset: int) -> int:
    return -(-offset // ALIGN) * ALIGN


@dataclass(frozen=True)
class RingSpec:
    capacity: int
    width: int
    dtype: str = "<f4"


@dataclass
class RingRead:
    """Entries read from a shared ring: ``values`` (n, width), ``timestamps`` (n,), counter of the first entry."""

    values: np.ndarray
    timestamps: np.ndarray
    first_counter: int

    @property
    def end_counter(self) -> int:
        return self.first_counter + len(self.timestamps)


class _Ring:
    """A ring section's arrays inside the segment (both sides use this view; only the writer calls ``write``)."""

    def __init__(self, buffer: memoryview, offset: int, capacity: int, width: int, dtype: str) -> None:
        self.capacity, self.width = capacity, width
        self.counters = np.ndarray((2,), dtype="<u8", buffer=buffer, offset=offset)  # intent, committed
        self.timestamps = np.ndarray((capacity,), dtype="<f8", buffer=buffer, offset=offset + ALIGN)
        values_offset = _aligned(offset + ALIGN + 8 * capacity)
        self.values = np.ndarray((capacity, width), dtype=dtype, buffer=buffer, offset=values_offset)

    @staticmethod
    def nbytes(capacity: int, width: int, dtype: str) -> int:
        return _aligned(_aligned(ALIGN + 8 * capacity) + capacity * width * np.dtype(dtype).itemsize)

    @property
    def committed(self) -> int:
        return int(self.counters[1])

    def write(self, values: np.ndarray, timestamps: np.ndarray) -> None:
        n = len(timestamps)
        if n == 0:
            return
        if n > self.capacity:
            values, timestamps, skipped = values[-self.capacity:], timestamps[-self.capacity:], n - self.capacity
        else:
            skipped = 0
        start = int(self.counters[1]) + skipped
        n = len(timestamps)
        self.counters[0] = start + n  # intent first: a reader copying these slots now will discard them
        position = start % self.capacity
        first = min(n, self.capacity - position)
        self.values[position:position + first] = values[:first]
        self.timestamps[position:position + first] = timestamps[:first]
        if first < n:
            self.values[:n - first] = values[first:]
            self.timestamps[:n - first] = timestamps[first:]
        self.counters[1] = start + n

    def read_from(self, counter: int, max_entries: int | None = None) -> RingRead:
        committed = int(self.counters[1])
        start = max(counter, committed - self.capacity, 0)
        stop = committed if max_entries is None else min(committed, start + max_entries)
        n = max(0, stop - start)
        position = start % self.capacity
        if position + n > self.capacity:
            index: np.ndarray | slice = (position + np.arange(n)) % self.capacity
        else:
            index = slice(position, position + n)
        values, timestamps = self.values[index].copy(), self.timestamps[index].copy()
        # entries the writer may have started to overwrite while they were copied are torn: drop them
        valid_from = int(self.counters[0]) - self.capacity
        if start < valid_from:
            cut = min(n, valid_from - start)
            values, timestamps, start = values[cut:], timestamps[cut:], start + cut
        return RingRead(values, timestamps, start)


class _Blob:
    def __init__(self, buffer: memoryview, offset: int, size: int) -> None:
        self.size = size
        self.header = np.ndarray((2,), dtype="<u8", buffer=buffer, offset=offset)  # sequence, length
        self.payload = np.ndarray((size,), dtype=np.uint8, buffer=buffer, offset=offset + BLOB_HEADER_BYTES)
        self._seen: tuple[int, Any] = (0, None)  # a reader's last document and its sequence: parsed once

    @staticmethod
    def nbytes(size: int) -> int:
        return _aligned(BLOB_HEADER_BYTES + size)

    def write(self, document: Any) -> None:
        data = json.dumps(document, separators=(",", ":")).encode()  # NaN allowed: both ends are Python
        if len(data) > self.size:
            raise ValueError(f"a {len(data)}-byte document does not fit the {self.size}-byte section")
        sequence = int(self.header[0])
        self.header[0] = sequence + 1  # odd: being written
        self.payload[:len(data)] = np.frombuffer(data, dtype=np.uint8)
        self.header[1] = len(data)
        self.header[0] = sequence + 2

    def read(self) -> tuple[Any, bool]:
        """(document or None, torn): ``torn`` when every try met the writer mid-write. The same document (the same
        object) while the writer has written nothing new."""
        for _ in range(BLOB_READ_TRIES):
            sequence = int(self.header[0])
            if sequence % 2:
                time.sleep(0)
                continue
            if sequence == self._seen[0] and sequence:
                return self._seen[1], False
            length = int(self.header[1])
            data = self.payload[:min(length, self.size)].tobytes()
            if int(self.header[0]) != sequence:
                continue
            if sequence == 0:
                return None, False  # nothing written yet
            self._seen = (sequence, json.loads(data))
            return self._seen[1], False
        return None, True


class Segment:
    """A POSIX shared-memory segment mapped here, without multiprocessing's resource tracker: Python < 3.13 starts a
    tracker process in every process that opens a segment, which unlinks the core's segment when a view exits and
    lingers after its parent. A view maps the segment read-only; a dead core's segment is removed by the next
    ``monitor.core.control.running_cores`` (its folder names it)."""

    def __init__(self, name: str, create: bool = False, size: int = 0) -> None:
        self.name = name
        flags = os.O_CREAT | os.O_EXCL | os.O_RDWR if create else os.O_RDONLY
        descriptor = _posixshmem.shm_open("/" + name, flags, mode=0o600)
        try:
            if create:
                os.ftruncate(descriptor, size)
            self.size = os.fstat(descriptor).st_size
            self._map = mmap.mmap(descriptor, self.size, prot=mmap.PROT_READ | (mmap.PROT_WRITE if create else 0))
        finally:
            os.close(descriptor)
        self.buf = memoryview(self._map)

    def close(self) -> None:
        try:
            self.buf.release()
            self._map.close()
        except BufferError:
            pass  # arrays on it are still referenced somewhere: the mapping goes with them

    def unlink(self) -> None:
        remove_segment(self.name)


def remove_segment(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        _posixshmem.shm_unlink("/" + name)


class _Header:
    def __init__(self, buffer: memoryview) -> None:
        self.raw = np.ndarray((HEADER_BYTES,), dtype=np.uint8, buffer=buffer)
        self.words = np.ndarray((4,), dtype="<u4", buffer=buffer, offset=8)  # version, toc length, pid, state
        self.heartbeat = np.ndarray((1,), dtype="<f8", buffer=buffer, offset=24)


def _layout(rings: dict[str, RingSpec], blobs: dict[str, int]) -> tuple[dict[str, dict[str, Any]], int]:
    sections: dict[str, dict[str, Any]] = {}
    offset = HEADER_BYTES + TOC_BYTES
    for name, spec in rings.items():
        sections[name] = {"kind": "ring", "offset": offset, "capacity": spec.capacity, "width": spec.width,
                          "dtype": spec.dtype}  # fmt: skip
        offset += _Ring.nbytes(spec.capacity, spec.width, spec.dtype)
    for name, size in blobs.items():
        sections[name] = {"kind": "blob", "offset": offset, "size": size}
        offset += _Blob.nbytes(size)
    return sections, offset


def _open_sections(buffer: memoryview, sections: dict[str, dict[str, Any]]) -> tuple[dict[str, _Ring],
                                                                                      dict[str, _Blob]]:
    rings = {name: _Ring(buffer, s["offset"], s["capacity"], s["width"], s["dtype"])
             for name, s in sections.items() if s["kind"] == "ring"}  # fmt: skip
    blobs = {name: _Blob(buffer, s["offset"], s["size"]) for name, s in sections.items() if s["kind"] == "blob"}
    return rings, blobs


class SharedStateWriter:
    """Creates the segment (``nfcore-<random>``, mode 0600 in /dev/shm: this user's views only) and writes it;
    ``close`` unlinks it.

    ``meta`` is fixed at creation (stream, channels, feature names, ...) and travels in the table of contents."""

    def __init__(self, rings: dict[str, RingSpec], blobs: dict[str, int], meta: dict[str, Any],
                 name: str | None = None) -> None:
        sections, size = _layout(rings, blobs)
        toc = json.dumps({"meta": meta, "sections": sections}, allow_nan=False).encode()
        if len(toc) > TOC_BYTES:
            raise ValueError(f"the table of contents ({len(toc)} bytes) exceeds {TOC_BYTES}")
        self.shm = Segment(name or f"nfcore-{secrets.token_hex(6)}", create=True, size=size)
        self.name = self.shm.name
        buffer = self.shm.buf
        self._header = _Header(buffer)
        self._header.raw[:8] = np.frombuffer(MAGIC, dtype=np.uint8)
        np.ndarray((len(toc),), dtype=np.uint8, buffer=buffer, offset=HEADER_BYTES)[:] = np.frombuffer(toc, np.uint8)
        self._header.words[:] = (LAYOUT_VERSION, len(toc), os.getpid(), RUNNING)
        self.rings, self.blobs = _open_sections(buffer, sections)
        self.beat()

    def beat(self) -> None:
        self._header.heartbeat[0] = time.monotonic()

    def write_ring(self, name: str, values: np.ndarray, timestamps: np.ndarray) -> None:
        ring = self.rings[name]
        self.rings[name].write(np.asarray(values, dtype=ring.values.dtype).reshape(-1, ring.width),
                               np.asarray(timestamps, dtype=np.float64))  # fmt: skip

    def write_blob(self, name: str, document: Any) -> None:
        self.blobs[name].write(document)

    def close(self) -> None:
        """Marks the state closed (readers see the core ended on purpose) and unlinks the segment."""
        if self.shm is None:
            return
        self._header.words[3] = CLOSED
        self.rings, self.blobs, self._header = {}, {}, None  # type: ignore[assignment]
        shm, self.shm = self.shm, None
        shm.close()
        shm.unlink()


class LayoutError(Exception):
    """The segment is not a NeuroFusion core state of this layout version."""


class SharedStateReader:
    """Maps a core's segment by name, read-only; never blocks the writer."""

    def __init__(self, name: str) -> None:
        try:
            self.shm = Segment(name)
        except FileNotFoundError:
            raise LayoutError(f"no core state {name!r} (has the core ended?)") from None
        buffer = self.shm.buf
        self._header = _Header(buffer)
        if self._header.raw[:8].tobytes() != MAGIC:
            self._release()
            raise LayoutError(f"{name!r} is not a NeuroFusion core state")
        version, toc_length = int(self._header.words[0]), int(self._header.words[1])
        if version != LAYOUT_VERSION:
            self._release()
            raise LayoutError(f"core state {name!r} has layout version {version}; this view reads {LAYOUT_VERSION}")
        toc = json.loads(bytes(buffer[HEADER_BYTES:HEADER_BYTES + toc_length]))
        self.meta: dict[str, Any] = toc["meta"]
        self.rings, self.blobs = _open_sections(buffer, toc["sections"])
        self.torn_blob_reads = 0

    @property
    def writer_pid(self) -> int:
        return int(self._header.words[2])

    @property
    def closed(self) -> bool:
        return int(self._header.words[3]) == CLOSED

    def heartbeat_age_s(self) -> float:
        return time.monotonic() - float(self._header.heartbeat[0])

    def committed(self, name: str) -> int:
        return self.rings[name].committed

    def read_ring(self, name: str, counter: int, max_entries: int | None = None) -> RingRead:
        return self.rings[name].read_from(counter, max_entries)

    def latest(self, name: str, n: int) -> RingRead:
        return self.rings[name].read_from(max(0, self.rings[name].committed - n))

    def read_blob(self, name: str) -> Any:
        document, torn = self.blobs[name].read()
        self.torn_blob_reads += torn
        return document

    def _release(self) -> None:
        self.rings, self.blobs, self._header = {}, {}, None  # type: ignore[assignment]
        self.shm.close()

    def close(self) -> None:
        if self.shm is not None:
            self._release()
            self.shm = None  # type: ignore[assignment]


class RingCursor:
    """A reader's position in one shared ring: every entry once, and the entries it lost (overrun or torn)."""

    def __init__(self, reader: SharedStateReader, name: str, start: int | None = None) -> None:
        self.reader, self.name = reader, name
        self.next_counter = reader.committed(name) if start is None else start
        self.dropped = 0

    def read(self, max_entries: int | None = None) -> RingRead:
        block = self.reader.read_ring(self.name, self.next_counter, max_entries)
        self.dropped += max(0, block.first_counter - self.next_counter)
        self.next_counter = max(self.next_counter, block.end_counter)
        return block
