"""Marks over real LSL (outlet -> listener on loopback), from marker text, and from JSON files."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from monitor.adaptation.marks import Mark, MarkListener, MarkLog, MarkOutlet, load_marks, parse_marker
from monitor.errors import UserError


def test_marks_pushed_on_the_outlet_arrive_at_a_listener_with_their_times() -> None:
    import pylsl

    name = f"marks-{uuid.uuid4().hex[:8]}"
    outlet = MarkOutlet(name, name)
    received, adapt_at = MarkLog(), []
    listener = MarkListener(f"{name}-marks", received, timeout_s=10.0, commands={"adapt": adapt_at.append})
    listener.start()
    try:
        deadline = time.monotonic() + 10
        while not outlet._outlet.have_consumers() and time.monotonic() < deadline:
            time.sleep(0.05)
        now = pylsl.local_clock()
        sent = [Mark("healthy", now - 3.0, now - 1.0), Mark("myopathy", now - 1.0, now - 0.25, "selection")]
        for mark in sent:
            outlet.push(mark)
        outlet._outlet.push_sample(["begin neuropathy"], now)
        outlet._outlet.push_sample(["end"], now + 2.0)
        outlet._outlet.push_sample(["adapt"], now + 2.5)
        while (len(received.marks()) < 3 or not adapt_at) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        listener.stop()
        listener.join(2)
    marks = received.marks()
    assert [(m.label, m.source) for m in marks] == [("healthy", "lsl"), ("myopathy", "lsl"), ("neuropathy", "lsl")]
    for got, want in zip(marks[:2], sent, strict=True):
        assert (got.start, got.end) == pytest.approx((want.start, want.end), abs=1e-6)
    assert (marks[2].start, marks[2].end) == pytest.approx((now, now + 2.0), abs=0.01)  # the samples' own times
    assert adapt_at == [pytest.approx(now + 2.5, abs=0.01)]


def test_marker_text_and_files() -> None:
    log = MarkLog()
    assert parse_marker("begin rest", 10.0, log) is None and log.open_label == "rest"
    assert parse_marker("end", 12.5, log) == Mark("rest", 10.0, 12.5, "lsl")
    assert parse_marker('{"label": "x", "start": 3, "end": 1}', 0.0, log) is None  # refused, logged
    assert parse_marker("hello", 0.0, log) is None and len(log.marks()) == 1
    assert log.seconds_per_label() == {"rest": 2.5}


def test_mark_files_round_trip_and_bad_ones_are_one_line(tmp_path) -> None:
    log = MarkLog()
    log.add(Mark("healthy", 1.0, 4.0, "button"))
    saved = log.save(tmp_path / "marks.json")
    assert load_marks(saved) == [Mark("healthy", 1.0, 4.0, "file")]
    for content, words in ((b"{", "cannot read marks"), (json.dumps({"marks": []}).encode(), "holds no marks"),
                           (json.dumps([{"label": "a", "start": True, "end": 2}]).encode(), "are numbers"),
                           (json.dumps([{"label": "a", "end": 2}]).encode(), "needs 'start'")):
        path = tmp_path / "bad.json"
        path.write_bytes(content)
        with pytest.raises(UserError, match=words):
            load_marks(path)
