"""The headless dashboard's JSON lines carry every latency part a lab needs to rebuild the total."""

from __future__ import annotations

import json

import numpy as np
import pytest

from monitor.headless import decision_line
from monitor.pipeline import DecisionRecord


def test_decision_line_carries_each_latency_part_and_they_sum_to_the_total():
    parts = {"acquisition_s": 0.0021, "dsp_s": 0.0013, "transport_s": 0.0004, "publication_s": 0.0002}
    worker_s = 0.0015
    record = DecisionRecord(
        sequence=7, last_timestamp=12.5, label="healthy", probabilities=np.array([0.9, 0.06, 0.04]),
        classes=["healthy", "myopathy", "neuropathy"], channel_attention=None, model_id="m",
        latency_s=sum(parts.values()) + worker_s, worker_s=worker_s, **parts,
    )
    line = json.loads(decision_line(record, None, np.array([True, False, True]), None))
    total = line["worker_ms"] + sum(line[name.replace("_s", "_ms")] for name in parts)
    assert total == pytest.approx(line["latency_ms"], abs=1e-6)
    assert line["publication_ms"] == 0.2 and line["masked_channels"] == [1] and line["sequence"] == 7


def test_decision_line_keeps_fatigue_figures_of_any_magnitude():
    # FInsm5 is ~1e-13 (spectral moments in s^-4): rounded to 3 decimals it was written as 0.0
    record = DecisionRecord(
        sequence=1, last_timestamp=1.0, label="healthy", probabilities=np.array([1.0, 0.0, 0.0]),
        classes=["healthy", "myopathy", "neuropathy"], channel_attention=None, model_id="m", latency_s=0.01,
        worker_s=0.001,
    )
    features = {"FInsm5": np.array([3.7312e-13, 4.1e-13]), "MDF": np.array([91.34567, 91.34567]),
                "RMS": np.array([3656.04, 3656.04])}
    fatigue = json.loads(decision_line(record, features, np.array([True, False]), None))["fatigue"]
    assert fatigue == {"FInsm5": 3.7312e-13, "MDF": 91.3457, "RMS": 3656.04}


def test_out_of_order_decisions_from_two_workers_are_each_written_once():
    import io
    from types import SimpleNamespace

    from monitor.headless import HeadlessDashboard
    from monitor.pipeline import MonitorState

    state = MonitorState()
    out = io.StringIO()
    dashboard = HeadlessDashboard(SimpleNamespace(state=state), jsonl=out)

    def publish(sequences: list[int]) -> None:
        with state.lock:
            for sequence in sequences:
                state.decisions.append(DecisionRecord(
                    sequence, float(sequence), "healthy", np.array([1.0, 0.0, 0.0]),
                    ["healthy", "myopathy", "neuropathy"], None, "m", 0.01, 0.001))

    publish([0, 2, 1])  # the second worker answered window 2 before the first answered window 1
    dashboard._write_new_decisions()
    publish([3, 5])
    dashboard._write_new_decisions()
    publish([4])
    dashboard._write_new_decisions()
    dashboard._write_new_decisions()  # nothing new: nothing written
    written = [json.loads(line)["sequence"] for line in out.getvalue().splitlines()]
    assert sorted(written) == [0, 1, 2, 3, 4, 5] and written == [0, 2, 1, 3, 5, 4]


def test_decision_line_says_not_assessed_with_its_reason_never_fresh():
    from types import SimpleNamespace

    from dsp.fatigue import NOT_ASSESSED, REASON_NO_BASELINE

    record = DecisionRecord(
        sequence=1, last_timestamp=1.0, label="healthy", probabilities=np.array([1.0, 0.0, 0.0]),
        classes=["healthy", "myopathy", "neuropathy"], channel_attention=None, model_id="m", latency_s=0.01,
        worker_s=0.001,
    )
    unjudged = SimpleNamespace(state=NOT_ASSESSED, reason=REASON_NO_BASELINE)
    line = json.loads(decision_line(record, None, None, None, unjudged))
    assert line["fatigue_state"] == "not assessed" and line["fatigue_reason"] == REASON_NO_BASELINE
    judged = json.loads(decision_line(record, None, None, None, SimpleNamespace(state="fatiguing", reason="")))
    assert judged["fatigue_state"] == "fatiguing" and "fatigue_reason" not in judged
    assert "fatigue_state" not in json.loads(decision_line(record, None, None, None))  # no tracker: no key
