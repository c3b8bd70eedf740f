import threading
import time

import numpy as np

from dsp import ringbuffer
from dsp.ringbuffer import RingBuffer, RingReader
from dsp.windows import Windower


def _chunk(start: int, n: int, channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    index = np.arange(start, start + n, dtype=np.float32)
    return np.repeat(index[:, None], channels, axis=1), index.astype(np.float64) / 1000.0


def test_reader_sees_every_sample_once_across_wraparound():
    buffer = RingBuffer(capacity=100, n_channels=3)
    reader = RingReader(buffer, start_counter=0)
    seen = []
    written = 0
    for n in [7, 50, 93, 1, 99, 30]:
        buffer.write(*_chunk(written, n))
        written += n
        seen.append(reader.read().data[:, 0])
    values = np.concatenate(seen)
    np.testing.assert_array_equal(values, np.arange(written))
    assert reader.dropped == 0
    assert buffer.total_written == written


def test_overrun_is_counted_not_hidden():
    buffer = RingBuffer(capacity=64, n_channels=2)
    reader = RingReader(buffer, start_counter=0)
    buffer.write(*_chunk(0, 50, 2))
    buffer.write(*_chunk(50, 50, 2))
    block = reader.read()
    assert block.first_counter == 36
    assert reader.dropped == 36
    np.testing.assert_array_equal(block.data[:, 0], np.arange(36, 100))
    buffer.write(*_chunk(100, 200, 2))  # a write larger than the buffer keeps only its newest samples
    block = reader.read()
    assert reader.dropped == 36 + 136
    np.testing.assert_array_equal(block.data[:, 1], np.arange(236, 300))


def test_latest_returns_newest_samples_with_timestamps():
    buffer = RingBuffer(capacity=10, n_channels=1)
    buffer.write(*_chunk(0, 23, 1))
    block = buffer.latest(4)
    np.testing.assert_array_equal(block.data[:, 0], [19, 20, 21, 22])
    np.testing.assert_allclose(block.timestamps, np.array([19, 20, 21, 22]) / 1000.0)
    assert block.first_counter == 19


def test_concurrent_writer_and_reader_lose_and_duplicate_nothing():
    buffer = RingBuffer(capacity=4096, n_channels=4)
    reader = RingReader(buffer, start_counter=0)
    total = 200_000
    received = []

    def write_all():
        for start in range(0, total, 37):
            buffer.write(*_chunk(start, min(37, total - start), 4))

    writer = threading.Thread(target=write_all)
    writer.start()
    count = 0
    while count < total:
        block = reader.read(timeout_s=0.5)
        received.append(block.data[:, 3].copy())
        count = block.end_counter if len(block.timestamps) else count
        if not writer.is_alive() and buffer.total_written == reader.next_counter:
            break
    writer.join()
    values = np.concatenate(received)
    # either the reader kept up (every index once) or it counted exactly what it lost
    assert len(values) + reader.dropped == total
    assert np.all(np.diff(values) >= 1)
    assert len(np.unique(values)) == len(values)


def test_each_waiter_is_woken_only_by_the_write_that_reaches_its_count(monkeypatch):
    notified_at: list[tuple[int, int]] = []  # (the waiter's count, samples written when it was woken)

    class CountingCondition(threading.Condition):
        def notify(self, n: int = 1) -> None:
            if hasattr(self, "wants"):  # one of the buffer's waiters (threading's own Events notify too)
                notified_at.append((self.wants, buffer.total_written))
            super().notify(n)

    buffer = RingBuffer(capacity=1000, n_channels=2)
    monkeypatch.setattr(ringbuffer.threading, "Condition", CountingCondition)
    answers: dict[int, bool] = {}

    def wait(after_counter: int) -> None:
        answers[after_counter] = buffer.wait_for_data(after_counter, timeout_s=5.0)

    waiters = [threading.Thread(target=wait, args=(after,)) for after in (99, 149)]
    for waiter in waiters:
        waiter.start()
    while len(buffer._waiters) < 2:
        time.sleep(0.001)
    for entry in buffer._waiters:
        entry[1].wants = entry[0]
    for start in range(0, 200, 10):  # 20 writes of 10 samples
        buffer.write(*_chunk(start, 10, 2))
    for waiter in waiters:
        waiter.join(5.0)
    assert answers == {99: True, 149: True}
    assert sorted(notified_at) == [(99, 100), (149, 150)]  # two wake-ups in all, not one per write and waiter
    assert not buffer._waiters


def test_wait_returns_at_once_when_the_count_is_reached_and_false_on_timeout():
    buffer = RingBuffer(capacity=100, n_channels=1)
    buffer.write(*_chunk(0, 10, 1))
    assert buffer.wait_for_data(9, timeout_s=5.0)
    started = time.monotonic()
    assert not buffer.wait_for_data(10, timeout_s=0.02)
    assert time.monotonic() - started >= 0.02
    assert not buffer.wait_for_data(10, timeout_s=0.0)
    assert not buffer._waiters  # a waiter that timed out leaves nothing behind for the writer to look at
    buffer.write(*_chunk(10, 1, 1))
    assert buffer._next_wake == ringbuffer._NO_WAITER


def test_windows_align_to_counter_regardless_of_chunking():
    fs, channels = 1000.0, 2
    signal = np.random.default_rng(0).standard_normal((2000, channels)).astype(np.float32)
    times = np.arange(2000) / fs

    def run(chunk_sizes):
        windower = Windower(fs, channels, window_ms=200, hop_ms=50)
        out, position = [], 0
        for size in chunk_sizes:
            out += windower.push(signal[position : position + size], times[position : position + size], position)
            position += size
        return out

    whole = run([2000])
    ragged = run([1, 13, 199, 250, 7, 530, 1000])
    assert [w.end_counter for w in whole] == list(range(200, 2001, 50))
    assert [w.end_counter for w in ragged] == [w.end_counter for w in whole]
    for a, b in zip(whole, ragged, strict=True):
        np.testing.assert_array_equal(a.data, b.data)
        assert a.last_timestamp == b.last_timestamp
    last = whole[-1]
    np.testing.assert_array_equal(last.data, signal[1800:2000].T)
    assert last.last_timestamp == times[1999]


def test_window_never_straddles_a_gap():
    windower = Windower(1000.0, 1, window_ms=100, hop_ms=50)
    data = np.ones((300, 1), np.float32)
    first = windower.push(data, np.arange(300) / 1000.0, 0)
    assert [w.end_counter for w in first] == [100, 150, 200, 250, 300]
    after_gap = windower.push(data[:120], np.arange(500, 620) / 1000.0, 500)
    assert [w.end_counter for w in after_gap] == [600]
    assert after_gap[0].start_counter == 500
