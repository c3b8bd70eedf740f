"""The core's shared-memory state: what a view reads is whole or refused, a late view finds the history, and a view
that dies (even SIGKILLed) neither blocks the writer nor takes the segment with it."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from monitor.core.shared_state import (
    LayoutError,
    RingCursor,
    RingSpec,
    SharedStateReader,
    SharedStateWriter,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def writer():
    state = SharedStateWriter({"trace": RingSpec(capacity=16, width=3)}, {"status": 4096}, meta={"fs": 2048.0})
    yield state
    state.close()


def entries(first: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n entries whose every value and time stamp is the entry's counter, so a mixed entry shows."""
    counters = np.arange(first, first + n, dtype=np.float64)
    return np.repeat(counters[:, None], 3, axis=1), counters


def test_a_reader_attaching_late_reads_the_newest_capacity_in_order_and_counts_the_rest_dropped(writer):
    for first in range(0, 40, 8):
        writer.write_ring("trace", *entries(first, 8))
    reader = SharedStateReader(writer.name)
    try:
        assert reader.meta == {"fs": 2048.0}
        cursor = RingCursor(reader, "trace", start=0)
        block = cursor.read()
        assert block.first_counter == 24 and cursor.dropped == 24  # 40 written, the last 16 held
        np.testing.assert_array_equal(block.values[:, 0], np.arange(24, 40))
        np.testing.assert_array_equal(block.timestamps, np.arange(24, 40))
        writer.write_ring("trace", *entries(40, 5))
        assert cursor.read().first_counter == 40 and cursor.next_counter == 45 and cursor.dropped == 24
    finally:
        reader.close()


def test_entries_the_writer_is_overwriting_are_discarded_not_returned_torn(writer):
    writer.write_ring("trace", *entries(0, 16))
    ring = writer.rings["trace"]
    # the writer has announced 3 new entries (they go where counters 0..2 are) and is mid-way through writing them
    ring.counters[0] = 19
    ring.values[0] = 16.0  # entry 0's slot half rewritten
    reader = SharedStateReader(writer.name)
    try:
        cursor = RingCursor(reader, "trace", start=0)
        block = cursor.read()
        assert block.first_counter == 3 and cursor.dropped == 3
        np.testing.assert_array_equal(block.values, entries(3, 13)[0])
    finally:
        reader.close()
    ring.counters[0] = 16  # the fixture's close sees a consistent ring


def test_a_document_caught_mid_write_is_reported_torn_and_the_last_whole_one_is_kept(writer):
    writer.write_blob("status", {"samples": 10})
    reader = SharedStateReader(writer.name)
    try:
        assert reader.read_blob("status") == {"samples": 10}
        blob = writer.blobs["status"]
        blob.header[0] += 1  # odd: the writer is in the middle of the next document
        assert reader.read_blob("status") is None and reader.torn_blob_reads == 1
        blob.header[0] += 1
        assert reader.read_blob("status") == {"samples": 10}
    finally:
        reader.close()


WRITER = textwrap.dedent("""
    import sys, time, numpy as np
    from monitor.core.shared_state import RingSpec, SharedStateWriter
    writer = SharedStateWriter({"trace": RingSpec(capacity=16, width=64)}, {"status": 4096}, meta={})
    print(writer.name, flush=True)
    sys.stdin.readline()
    first, end = 0, time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        counters = np.arange(first, first + 7, dtype=np.float64)
        writer.write_ring("trace", np.repeat(counters[:, None], 64, axis=1), counters)
        writer.write_blob("status", {"written": first + 7, "copy": first + 7})
        first += 7
    print(first, flush=True)
    sys.stdin.readline()
    writer.close()
""")


def test_a_reader_racing_a_writer_process_only_ever_gets_whole_entries_and_documents():
    """A writer process laps a 16-entry ring of 64 values as fast as it can for 0.6 s while this process reads:
    no entry returned mixes two writes, no document is half old, and what was not returned is counted."""
    process = subprocess.Popen([sys.executable, "-c", WRITER, "0.6"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, cwd=REPO)  # fmt: skip
    try:
        reader = SharedStateReader(process.stdout.readline().strip())
        cursor = RingCursor(reader, "trace", start=0)
        process.stdin.write("go\n")
        process.stdin.flush()
        returned = reads = 0
        # past the writer's 0.6 s of laps (thousands of entries, hundreds of laps: was 1.5 s, 2.3 s per run at load 4)
        deadline = time.monotonic() + 0.8
        while time.monotonic() < deadline:
            block = cursor.read(max_entries=5)
            reads += 1
            returned += len(block.timestamps)
            if len(block.timestamps):
                np.testing.assert_array_equal(block.values, np.repeat(block.timestamps[:, None], 64, axis=1))
                np.testing.assert_array_equal(block.timestamps, block.first_counter + np.arange(len(block.timestamps)))
            document = reader.read_blob("status")
            if document is not None:
                assert document["written"] == document["copy"]
        total = int(process.stdout.readline())
        block = cursor.read()
        returned += len(block.timestamps)
        assert returned + cursor.dropped == total  # every entry either returned whole or counted lost
        assert total > 1000 and returned > 0
        reader.close()
        process.stdin.write("done\n")
        process.stdin.flush()
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_a_killed_reader_neither_blocks_the_writer_nor_unlinks_the_segment(writer):
    code = textwrap.dedent("""
        import sys, time
        from monitor.core.shared_state import SharedStateReader
        reader = SharedStateReader(sys.argv[1])
        print(reader.read_blob("status")["n"], flush=True)
        if sys.argv[2] == "hang":
            time.sleep(60)
    """)
    writer.write_blob("status", {"n": 1})
    for mode in ("exit", "hang"):
        view = subprocess.Popen([sys.executable, "-c", code, writer.name, mode], stdout=subprocess.PIPE, text=True,
                                cwd=REPO)  # fmt: skip
        assert view.stdout.readline().strip() == "1"
        if mode == "hang":
            view.send_signal(signal.SIGKILL)
        view.wait(timeout=30)
        view.stdout.close()
    # the segment is still there after a view exited normally (its resource tracker did not unlink it) and after one
    # was killed; the writer goes on as before
    writer.write_ring("trace", *entries(0, 4))
    reader = SharedStateReader(writer.name)
    try:
        assert reader.committed("trace") == 4 and reader.writer_pid > 0 and not reader.closed
    finally:
        reader.close()


def test_a_reader_refuses_another_layout_and_names_a_missing_core(writer):
    writer.shm.buf[8] = 99  # layout version 99
    with pytest.raises(LayoutError, match="layout version 99"):
        SharedStateReader(writer.name)
    writer.shm.buf[8] = 1
    with pytest.raises(LayoutError, match="no core state"):
        SharedStateReader("nfcore-doesnotexist")
