"""The parts of accepting a returned stream that need no network: the hold's bound, the identity's lookup and the
verdict on what it found, the lookup's back-off."""

from __future__ import annotations

import threading
import time

import numpy as np

from monitor.reconnect import Backoff, HeldSamples, StreamIdentity, StreamLookups, xpath_literal


class FoundInfo:
    """What a lookup returns, as far as the verdict reads it (pylsl.StreamInfo's accessors)."""

    def __init__(
        self, uid: str, fs: float, n_channels: int, name: str = "amp", stream_type: str = "EMG", channel_format: int = 1
    ) -> None:
        self._uid, self._fs, self._n = uid, fs, n_channels
        self._name, self._type, self._format = name, stream_type, channel_format

    def uid(self) -> str:
        return self._uid

    def name(self) -> str:
        return self._name

    def type(self) -> str:
        return self._type

    def channel_format(self) -> int:
        return self._format  # liblsl's code: 1 float32, 2 double64

    def nominal_srate(self) -> float:
        return self._fs

    def channel_count(self) -> int:
        return self._n


IDENTITY = StreamIdentity("amp", "EMG", "amp-1", "host", "uid-old", 2048.0, 9)


def chunk(first: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    index = np.arange(first, first + n)
    return np.repeat(index[:, None], 2, axis=1).astype(np.float32), index / 100.0


def test_hold_keeps_the_newest_samples_in_order_and_counts_the_oldest_it_pushes_out():
    held = HeldSamples(capacity=10)
    assert held.add(*chunk(0, 4), arrived=1.0) == 0
    assert held.add(*chunk(4, 4), arrived=2.0) == 0
    assert held.add(*chunk(8, 5), arrived=3.0) == 3  # part of the oldest chunk goes, not the whole of it
    assert held.add(*chunk(13, 30), arrived=4.0) == 30  # a chunk larger than the bound keeps its newest part only
    assert held.held == 10 and held.dropped == 33
    released = held.release()
    index = np.concatenate([c.data[:, 0] for c in released]).astype(int)
    np.testing.assert_array_equal(index, np.arange(33, 43))
    np.testing.assert_array_equal(np.concatenate([c.timestamps for c in released]), np.arange(33, 43) / 100.0)
    assert held.held == 0 and held.release() == []


def test_hold_copies_what_it_keeps():
    data, stamps = chunk(0, 3)
    held = HeldSamples(capacity=10)
    held.add(data, stamps, arrived=0.0)
    data[:] = -1  # the acquisition thread reuses its pull buffer
    assert held.release()[0].data[0, 0] == 0


def test_verdict_unseen_same_or_changed():
    assert IDENTITY.judge([]).kind == "unseen"
    restarted = IDENTITY.judge([FoundInfo("uid-new", 2048.0, 9)])
    assert restarted.kind == "same" and IDENTITY.following(restarted).uid == "uid-new"
    changed = IDENTITY.judge([FoundInfo("uid-new", 1000.0, 9)])
    assert changed.kind == "changed" and changed.message == "returned with 9 channels at 1000 Hz (was 9 at 2048 Hz)"
    assert IDENTITY.judge([FoundInfo("uid-new", 2048.0, 17)]).kind == "changed"


def test_verdict_trusts_the_outlet_still_there_and_refuses_when_it_cannot_tell_which_one_is_followed():
    # liblsl stays on the outlet it had while that one still answers, whatever else shares its source id
    assert IDENTITY.judge([FoundInfo("other", 1000.0, 9), FoundInfo("uid-old", 2048.0, 9)]).kind == "same"
    assert IDENTITY.judge([FoundInfo("a", 2048.0, 9), FoundInfo("b", 1000.0, 9)]).kind == "changed"
    both_same = IDENTITY.judge([FoundInfo("a", 2048.0, 9), FoundInfo("b", 2048.0, 9)])
    assert both_same.kind == "same" and both_same.uid == ""


def test_a_return_liblsl_never_reconnects_to_is_named_in_full():
    doubles = IDENTITY.judge([FoundInfo("uid-new", 2048.0, 9, channel_format=2)])
    assert doubles.kind == "changed"
    assert doubles.message == (
        "returned as 'amp' (EMG, double64, 9 ch at 2048 Hz), was 'amp' (EMG, float32, 9 ch at 2048 Hz)"
    )
    renamed = IDENTITY.judge_by_source([FoundInfo("uid-new", 2048.0, 9, name="amp-v2", stream_type="EXG")])
    assert renamed.kind == "changed" and renamed.message.startswith("returned as 'amp-v2' (EXG, float32, 9 ch")
    assert IDENTITY.judge_by_source([]).kind == "unseen"


def test_source_lookup_skips_our_identity_and_the_devices_other_streams():
    assert IDENTITY.source_predicate() == "source_id='amp-1' and not(name='amp' and type='EMG')"
    with_accelerometer = IDENTITY.source_predicate(frozenset({("amp", "ACC")}))
    assert with_accelerometer == (
        "source_id='amp-1' and not(name='amp' and type='ACC') and not(name='amp' and type='EMG')"
    )


def test_lookups_look_under_the_source_id_only_past_the_streams_there_at_the_start():
    asked: list[str] = []
    present = {"source_id='amp-1' and not(name='amp' and type='EMG')": [FoundInfo("acc", 100.0, 3, stream_type="ACC")]}

    def resolver(predicate: str, timeout_s: float) -> list:
        asked.append(predicate)
        return present.get(predicate, [])

    lookups = StreamLookups(IDENTITY, resolver, timeout_s=1.0)
    try:
        lookups.take_census()  # the accelerometer stream of the same device is there from the start: not ours
        lookups.poll(None, 0.0)
        assert answer(lookups, None).kind == "unseen"
        past_siblings = "source_id='amp-1' and not(name='amp' and type='ACC') and not(name='amp' and type='EMG')"
        assert asked == [next(iter(present)), past_siblings, IDENTITY.predicate(), past_siblings]
        present[past_siblings] = [FoundInfo("uid-new", 2048.0, 9, name="amp-v2")]  # ours, back renamed
        lookups.restart(0.0)
        lookups.poll(None, 0.0)
        verdict = answer(lookups, None)
        assert verdict.kind == "changed" and "returned as 'amp-v2' (EMG, float32, 9 ch at 2048 Hz)" in verdict.message
    finally:
        lookups.close()


def test_lookup_predicate_is_the_identity_liblsl_recovers_by():
    assert IDENTITY.predicate() == "name='amp' and type='EMG' and source_id='amp-1'"
    no_source = StreamIdentity("amp", "EMG", "", "host", "u", 2048.0, 9)
    assert no_source.predicate() == "name='amp' and type='EMG' and hostname='host'"
    assert xpath_literal("Bob's amp") == '"Bob\'s amp"'
    assert xpath_literal("a'b\"c") == "concat('a', \"'\", 'b\"c')"


def test_backoff_grows_to_its_cap_and_starts_over_on_reset():
    backoff = Backoff(first_s=0.1, cap_s=0.5)
    now = 0.0
    for wait in (0.1, 0.2, 0.4, 0.5, 0.5):
        assert backoff.due(now)
        backoff.failed(now)
        assert not backoff.due(now + wait - 0.01)
        now += wait
    assert backoff.due(now)
    backoff.failed(now)
    backoff.reset(now)
    assert backoff.due(now)
    backoff.failed(now)
    assert backoff.due(now + 0.1)  # back to the first, short wait


def answer(lookups: StreamLookups, about: object):  # noqa: ANN201 (a Verdict or None)
    """Polls until the lookup in flight has answered; its verdict (None when stale)."""
    deadline = time.monotonic() + 5.0
    while lookups._in_flight is not None and time.monotonic() < deadline:
        if lookups._in_flight[0].done():
            return lookups.poll(about, time.monotonic())
        time.sleep(0.005)
    raise AssertionError("no lookup answered")


def test_lookups_run_beside_the_caller_and_an_answer_about_an_older_state_is_asked_again():
    release = threading.Event()
    found = [FoundInfo("uid-new", 2048.0, 9)]

    def slow_resolver(predicate: str, timeout_s: float) -> list:
        assert predicate == IDENTITY.predicate() and timeout_s == 1.0
        release.wait(5.0)
        return found

    lookups = StreamLookups(IDENTITY, slow_resolver, timeout_s=1.0)
    try:
        assert lookups.poll(None, 0.0) is None  # asked while the stream is away; the caller is not kept waiting
        assert lookups.poll(None, 0.0) is None and lookups._in_flight is not None
        hold = HeldSamples(10)  # the stream resumed meanwhile
        lookups.restart(0.0)
        release.set()
        assert answer(lookups, hold) is None  # seen before the samples came: says nothing about them
        lookups.poll(hold, 0.0)  # so it is asked again, at once
        verdict = answer(lookups, hold)
        assert verdict is not None and verdict.kind == "same"
        lookups.follow(verdict)
        assert lookups.identity.uid == "uid-new"
        found[:] = [FoundInfo("uid-other", 1000.0, 9)]
        lookups.restart(0.0)
        lookups.poll(None, 0.0)
        assert answer(lookups, hold).kind == "changed"  # a changed format is refused whatever was asked
    finally:
        lookups.close()


def test_a_lookup_that_raises_counts_as_unseen():
    def broken(predicate: str, timeout_s: float) -> list:
        raise RuntimeError("no network")

    lookups = StreamLookups(IDENTITY, broken, timeout_s=1.0)
    try:
        lookups.poll(None, 0.0)
        assert answer(lookups, None).kind == "unseen"
    finally:
        lookups.close()
