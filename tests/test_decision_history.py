"""The monitor's bounded decision history (monitor.decision_history.DecisionRing)."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.decision_history import (
    LATENCY_FIELDS,
    MUSCLE_CODES,
    MUSCLE_STATES,
    DecisionRecord,
    DecisionRing,
    MuscleState,
)
from monitor.pipeline import LEARNING_LABEL, REST_LABEL, MonitorState

CLASSES = ["healthy", "myopathy", "neuropathy"]
CHANNELS = 4
MUSCLES = (MuscleState.CONTRACTING, MuscleState.RELAXED, MuscleState.LEARNING)


def decision(i: int, classes: list[str] = CLASSES, attention: bool = True) -> DecisionRecord:
    """Decision ``i``: float32-exact values that name it, a label and muscle state that cycle, every fourth one
    without the optional latency parts, every third one without channel attention."""
    muscle = MUSCLES[i % 3]
    probabilities = np.full(len(classes), 1.0 / 8.0) + np.eye(len(classes))[i % len(classes)] * 0.5
    label = classes[i // 3 % len(classes)] if muscle is MuscleState.CONTRACTING else (
        REST_LABEL if muscle is MuscleState.RELAXED else LEARNING_LABEL)  # fmt: skip
    parts = {} if i % 4 == 0 else {"acquisition_s": 0.001 * i, "dsp_s": 0.002, "transport_s": 0.0003,
                                    "publication_s": 1e-4 * i}  # fmt: skip
    return DecisionRecord(
        sequence=10 * i, last_timestamp=1000.0 + 0.05 * i, label=label, probabilities=probabilities.astype(np.float32),
        classes=list(classes),
        channel_attention=np.arange(CHANNELS, dtype=np.float32) + i if attention and i % 3 else None,
        model_id=f"model-{i // 5}", latency_s=0.004 + 1e-6 * i, worker_s=0.001, muscle=muscle, **parts,
    )  # fmt: skip


def assert_same(got: DecisionRecord, want: DecisionRecord) -> None:
    assert got.sequence == want.sequence and got.last_timestamp == want.last_timestamp
    assert got.label == want.label and got.classes == list(want.classes) and got.model_id == want.model_id
    assert got.muscle is want.muscle
    np.testing.assert_array_equal(got.probabilities, want.probabilities)
    if want.channel_attention is None:
        assert got.channel_attention is None
    else:
        np.testing.assert_array_equal(got.channel_attention, want.channel_attention)
    for name in LATENCY_FIELDS:
        assert getattr(got, name) == getattr(want, name), name


def filled(capacity: int, n: int) -> DecisionRing:
    ring = DecisionRing(capacity)
    ring.extend(decision(i) for i in range(n))
    return ring


def test_an_empty_ring_reads_as_empty():
    ring = DecisionRing(5)
    assert len(ring) == 0 and ring.appended == 0 and not ring
    assert ring.latest() is None and ring.recent(3) == [] and ring.since(0.0) == [] and list(ring) == []
    assert ring.oldest_timestamp() is None
    columns = ring.recent_columns(3)
    assert columns["sequence"].shape == (0,) and columns["probabilities"].shape[0] == 0
    with pytest.raises(IndexError):
        ring[0]
    with pytest.raises(ValueError, match="capacity"):
        DecisionRing(0)


@pytest.mark.parametrize("n", [3, 7, 10, 23])
def test_wrap_around_keeps_exactly_the_last_n_in_order_with_the_values_appended(n):
    ring = filled(7, n)
    kept = range(max(0, n - 7), n)
    assert len(ring) == len(kept) and ring.appended == n
    for got, i in zip(list(ring), kept, strict=True):
        assert_same(got, decision(i))
    assert_same(ring.latest(), decision(n - 1))
    assert_same(ring[0], decision(kept[0]))
    assert_same(ring[-2], decision(n - 2))
    assert [r.sequence for r in ring.recent(2)] == [10 * (n - 2), 10 * (n - 1)]
    assert ring.oldest_timestamp() == 1000.0 + 0.05 * kept[0]

    columns = ring.recent_columns(100)
    np.testing.assert_array_equal(columns["sequence"], [10 * i for i in kept])
    np.testing.assert_array_equal(columns["last_timestamp"], [1000.0 + 0.05 * i for i in kept])
    np.testing.assert_array_equal(columns["probabilities"], [decision(i).probabilities for i in kept])
    np.testing.assert_array_equal(columns["muscle"], [MUSCLE_CODES[decision(i).muscle] for i in kept])
    assert [ring.labels[code] for code in columns["label"]] == [decision(i).label for i in kept]
    assert [ring.model_ids[code] for code in columns["model_id"]] == [decision(i).model_id for i in kept]
    assert [MUSCLE_STATES[code] for code in columns["muscle"]] == [decision(i).muscle for i in kept]
    np.testing.assert_array_equal(columns["worker_s"], 0.001)


def test_missing_latency_parts_and_attention_round_trip_as_none_and_read_as_nan():
    ring = filled(16, 13)
    for record, i in zip(ring, range(13), strict=True):
        assert (record.acquisition_s is None) == (i % 4 == 0)
        assert (record.publication_s is None) == (i % 4 == 0)
        assert (record.channel_attention is None) == (i % 3 == 0)
    columns = ring.recent_columns(13, ("acquisition_s", "dsp_s", "channel_attention", "latency_s"))
    assert set(columns) == {"acquisition_s", "dsp_s", "channel_attention", "latency_s"}
    assert np.isnan(columns["acquisition_s"][::4]).all() and np.isfinite(columns["dsp_s"][1:4]).all()
    assert np.isnan(columns["channel_attention"][::3]).all()
    np.testing.assert_array_equal(columns["channel_attention"][1], np.arange(CHANNELS) + 1)
    np.testing.assert_array_equal(columns["latency_s"], [0.004 + 1e-6 * i for i in range(13)])


def test_labels_and_model_ids_are_interned_once_each():
    ring = filled(8, 40)  # 40 decisions over 8 slots: the tables hold distinct values, not one per decision
    assert sorted(ring.labels) == sorted([*CLASSES, REST_LABEL, LEARNING_LABEL])
    assert ring.model_ids == tuple(f"model-{k}" for k in range(8))
    assert ring.class_sets == (tuple(CLASSES),)
    with pytest.raises(ValueError, match="no decision field"):
        ring.recent_columns(1, ("nonsense",))


def test_a_new_class_list_keeps_older_decisions_readable_in_their_own_classes():
    ring = DecisionRing(10)
    ring.extend(decision(i) for i in range(4))
    wider = ["rest", "grip", "pinch", "point", "fist"]
    ring.extend(decision(i, wider) for i in range(4, 7))
    narrower = ["a", "b"]
    ring.extend(decision(i, narrower, attention=False) for i in range(7, 12))  # wraps: decisions 0 and 1 go
    assert ring.class_sets == (tuple(CLASSES), tuple(wider), tuple(narrower))
    records = list(ring)
    for i, record in zip(range(2, 12), records, strict=True):
        assert_same(record, decision(i, CLASSES if i < 4 else wider if i < 7 else narrower, attention=i < 7))

    columns = ring.recent_columns(10, ("probabilities", "classes"))
    assert columns["probabilities"].shape == (10, len(wider))  # as wide as the widest list held
    assert [ring.class_sets[code] for code in columns["classes"]] == [tuple(r.classes) for r in records]
    np.testing.assert_array_equal(columns["probabilities"][0, :3], decision(2).probabilities)
    assert np.isnan(columns["probabilities"][0, 3:]).all() and np.isnan(columns["probabilities"][-1, 2:]).all()


def test_probabilities_that_do_not_match_the_classes_are_refused_before_anything_is_written():
    ring = filled(3, 3)
    bad = decision(3)
    bad.probabilities = np.ones(4, dtype=np.float32)
    with pytest.raises(ValueError, match="4 probabilities for 3 classes"):
        ring.append(bad)
    assert ring.appended == 3 and [r.sequence for r in ring] == [0, 10, 20]


def test_since_returns_the_newest_run_at_or_after_a_time():
    ring = filled(8, 12)  # holds 4..11
    assert [r.sequence for r in ring.since(1000.0 + 0.05 * 9)] == [90, 100, 110]
    assert [r.sequence for r in ring.since(1000.0 + 0.05 * 9, inclusive=False)] == [100, 110]
    assert [r.sequence for r in ring.since(0.0)] == [10 * i for i in range(4, 12)]
    np.testing.assert_array_equal(ring.since_columns(1000.0 + 0.05 * 10, ("sequence",))["sequence"], [100, 110])


def test_the_published_count_is_the_rings_own_count_of_appends():
    state = MonitorState()
    state.decisions = DecisionRing(4)
    state.decisions.extend(decision(i) for i in range(6))
    assert state.decisions_published == 6 and len(state.decisions) == 4
