"""A stream that returns while no lookup can see it yet: its samples wait, bounded, until its rate is confirmed, and
then arrive once, in order; a stream back at another rate is refused without one of its samples getting in.

The lookup is blinded through Acquisition's resolver seam (the real lookup behind a switch), the streams are real
LSL outlets on loopback (tests/players.py) whose last channel carries each sample's index.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from tests.players import start_player, wait_until

FS = 2048.0
FIRST_S = 0.5
UNSEEN_S = 2.0  # four times the 0.5 s the lookup was once given before a returned stream went in unchecked


class BlindResolver:
    """The real lookup, which finds nothing until ``see()``: a returned outlet that does not answer lookups yet."""

    def __init__(self) -> None:
        self._visible = threading.Event()

    def see(self) -> None:
        self._visible.set()

    def __call__(self, predicate: str, timeout_s: float) -> Sequence[Any]:
        from monitor.acquisition import resolve_by_predicate

        if not self._visible.is_set():
            time.sleep(timeout_s)  # as long as a lookup that nobody answers
            return []
        return resolve_by_predicate(predicate, timeout_s)


def start_acquisition(source_id: str, **options: Any):  # noqa: ANN201 (an Acquisition, imported lazily)
    from monitor.acquisition import Acquisition, resolve_stream

    acquisition = Acquisition(resolve_stream(source_id=source_id, timeout_s=20), buffer_seconds=15.0, **options)
    acquisition.start()
    return acquisition


def first_stream_under_blind_lookup(**options: Any):  # noqa: ANN201 (source id, resolver, Acquisition, count)
    """Streams FIRST_S of a first outlet into an acquisition whose lookups are blinded; -> (source_id, resolver,
    acquisition, samples sent), once the buffer holds every one of them."""
    source_id = f"unseen-{uuid.uuid4().hex[:8]}"
    first = start_player(source_id, FIRST_S, fs=FS)
    resolver = BlindResolver()
    acquisition = start_acquisition(source_id, resolver=resolver, **options)
    sent_first = int(first.communicate(timeout=30)[0].split()[-1])
    assert wait_until(lambda: acquisition.buffer.total_written == sent_first, 5.0) is not None
    return source_id, resolver, acquisition, sent_first


def hold_while_unseen(acquisition, resolver: BlindResolver, stored_before: int) -> int:  # noqa: ANN001
    """Waits for the returned stream's samples to be held, keeps the lookup blind for UNSEEN_S meanwhile checking
    that none reached the buffer, then lets it see; returns the most samples held at any moment."""
    assert wait_until(lambda: acquisition.held_samples > 0, 20.0) is not None, "the returned stream never resumed"
    peak = 0
    unseen_until = time.monotonic() + UNSEEN_S
    while time.monotonic() < unseen_until:
        peak = max(peak, acquisition.held_samples)
        assert acquisition.buffer.total_written == stored_before  # nothing of unknown rate got in
        assert acquisition.signal_lost  # held samples are not usable ones
        time.sleep(0.02)
    resolver.see()
    return peak


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_stream_back_at_the_same_rate_while_unseen_loses_and_duplicates_nothing():
    source_id, resolver, acquisition, sent_first = first_stream_under_blind_lookup()
    try:
        # the returned amplifier counts on where the first one stopped: the whole record must be one unbroken count
        second = start_player(source_id, 6.0, fs=FS, start_index=sent_first)
        peak = hold_while_unseen(acquisition, resolver, sent_first)
        sent_second = int(second.communicate(timeout=30)[0].split()[-1])
        assert wait_until(lambda: acquisition.buffer.total_written >= sent_first + sent_second, 10.0) is not None
        time.sleep(0.2)
    finally:
        acquisition.stop()
        acquisition.join(timeout=5.0)
    assert acquisition.incompatible is None
    assert peak > int(1.5 * FS)  # it was held for its unseen time, not let through
    assert acquisition.unconfirmed_dropped == 0
    raw = acquisition.buffer.read_from(0)
    np.testing.assert_array_equal(raw.data[:, -1].astype(np.int64), np.arange(sent_first + sent_second))
    assert np.all(np.diff(raw.timestamps) > 0)  # released with their own time stamps, in order
    assert raw.timestamps[sent_first] - raw.timestamps[sent_first - 1] > 0.5  # the gap stays a gap


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_stream_back_at_another_rate_while_unseen_is_refused_without_its_samples():
    source_id, resolver, acquisition, sent_first = first_stream_under_blind_lookup()
    try:
        # same channel count, so liblsl reconnects to it and its samples flow as if they were at 2048 Hz
        second = start_player(source_id, 30.0, fs=1000.0, start_index=sent_first)
        hold_while_unseen(acquisition, resolver, sent_first)
        assert wait_until(lambda: acquisition.incompatible is not None, 10.0) is not None
        acquisition.join(timeout=5.0)
        assert not acquisition.is_alive()  # refused, not rebuilt: acquisition ended by itself
        second.kill()
        second.wait()
    finally:
        acquisition.stop()
    message = acquisition.incompatible
    assert "returned with 9 channels at 1000 Hz (was 9 at 2048 Hz); restart the monitor" in message
    assert "\n" not in message
    index = acquisition.buffer.read_from(0).data[:, -1].astype(np.int64)
    np.testing.assert_array_equal(index, np.arange(sent_first))  # the first stream's samples, only and all


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_hold_keeps_the_newest_samples_within_its_bound_and_counts_the_rest(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="monitor.acquisition")
    hold_seconds = 0.5
    capacity = int(FS * hold_seconds)
    source_id, resolver, acquisition, sent_first = first_stream_under_blind_lookup(hold_seconds=hold_seconds)
    try:
        second = start_player(source_id, 6.0, fs=FS, start_index=sent_first)
        peak = hold_while_unseen(acquisition, resolver, sent_first)
        sent_second = int(second.communicate(timeout=30)[0].split()[-1])
        dropped = acquisition.unconfirmed_dropped
        expected = sent_first + sent_second - dropped
        assert wait_until(lambda: acquisition.buffer.total_written >= expected, 10.0) is not None
        time.sleep(0.2)
    finally:
        acquisition.stop()
        acquisition.join(timeout=5.0)
    assert peak == capacity  # filled to its bound and never past it
    assert dropped > int(0.5 * FS)  # about the unseen time less the bound
    index = acquisition.buffer.read_from(0).data[:, -1].astype(np.int64)
    # the oldest held samples went, the newest were kept: one counted hole right where the stream returned
    np.testing.assert_array_equal(index[:sent_first], np.arange(sent_first))
    np.testing.assert_array_equal(index[sent_first:], np.arange(sent_first + dropped, sent_first + sent_second))
    lines = [(record.levelno, record.getMessage()) for record in caplog.records]
    warnings = [text for level, text in lines if level == logging.WARNING and "not confirmed" in text]
    assert len(warnings) == 1 and "\n" not in warnings[0]  # said once, in one line
    released = [text for _, text in lines if "confirmed back" in text]
    assert len(released) == 1 and f"{dropped} dropped while unconfirmed" in released[0]
