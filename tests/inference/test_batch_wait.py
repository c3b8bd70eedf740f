"""The worker waits ``batch_wait_s`` for companions only when several clients (beds) are sending: one bed's two
windows that arrive together are both queued already, and waiting would only delay its decisions."""

from __future__ import annotations

from monitor.inference.worker import CLIENTS_SEEN_S, traffic_is_dense

WAIT = 0.002


def test_one_bed_never_waits_for_companions() -> None:
    one = {b"bed-1": 100.0}
    assert not traffic_is_dense(one, 100.001, previous_arrival=100.0, previous_size=2, batch_wait_s=WAIT)
    assert not traffic_is_dense(one, 100.005, previous_arrival=100.0, previous_size=1, batch_wait_s=WAIT)


def test_several_beds_wait_as_before_when_traffic_is_busy_or_recent() -> None:
    beds = {b"bed-1": 100.0, b"bed-2": 99.99}
    assert traffic_is_dense(beds, 100.005, previous_arrival=100.0, previous_size=1, batch_wait_s=WAIT)
    assert traffic_is_dense(beds, 100.5, previous_arrival=100.0, previous_size=3, batch_wait_s=WAIT)
    # quiet traffic: a lone request is answered at once
    assert not traffic_is_dense(beds, 100.5, previous_arrival=100.0, previous_size=1, batch_wait_s=WAIT)
    # a bed silent for longer than CLIENTS_SEEN_S no longer counts
    gone = {b"bed-1": 100.0, b"bed-2": 100.0 - 2 * CLIENTS_SEEN_S}
    assert not traffic_is_dense(gone, 100.005, previous_arrival=100.0, previous_size=2, batch_wait_s=WAIT)
