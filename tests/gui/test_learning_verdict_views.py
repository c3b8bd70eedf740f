"""The Condition view gives no condition while the rest level is being learned: the call names the learning, the
trend leaves a gap instead of a condition's band, and the learning decisions win no vote."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from monitor.gui.classification import ClassificationView, smoothed_call
from monitor.pipeline import (
    LEARNING_LABEL,
    REST_LABEL,
    SPONTANEOUS_LABEL,
    DecisionRecord,
    MonitorState,
    MuscleState,
    verdict,
)

CLASSES = ["healthy", "myopathy", "neuropathy"]
MYOPATHY = np.array([0.02, 0.95, 0.03])  # what an untrained model may say of a relaxed muscle


def test_withheld_decisions_vote_for_their_verdict_not_for_the_models_class():
    rows = np.array([MYOPATHY] * 9)
    label, confidence = smoothed_call(rows, CLASSES, votes=9, threshold=0.5, withheld=[LEARNING_LABEL] * 9)
    assert label == LEARNING_LABEL and np.isnan(confidence)
    # five contracting decisions outvote four learning ones; the confidence is theirs alone
    rows[4:] = [0.1, 0.7, 0.2]
    withheld = [LEARNING_LABEL] * 4 + [None] * 5
    label, confidence = smoothed_call(rows, CLASSES, votes=9, threshold=0.5, withheld=withheld)
    assert label == "myopathy" and confidence == pytest.approx(0.7)
    withheld = [REST_LABEL] * 5 + [None] * 4
    assert smoothed_call(rows, CLASSES, votes=9, threshold=0.5, withheld=withheld)[0] == REST_LABEL


def test_condition_view_shows_learning_then_the_condition_with_no_band_for_the_learning(qtbot):
    state = MonitorState()
    view = ClassificationView(SimpleNamespace(state=state), lambda: 10.0)
    qtbot.addWidget(view)
    view.votes_box.setValue(5)

    def publish(first: int, count: int, muscle: MuscleState) -> None:
        with state.lock:
            for sequence in range(first, first + count):
                state.decisions.append(DecisionRecord(
                    sequence, 10.0 + 0.05 * sequence, verdict("myopathy", muscle), MYOPATHY, CLASSES, None, "m",
                    0.01, 0.002, muscle=muscle))

    publish(0, 60, MuscleState.LEARNING)
    view.refresh()
    assert view.label == LEARNING_LABEL and view.call_label.text().startswith(LEARNING_LABEL)
    assert "myopathy" not in view.call_label.text()
    assert all(np.isnan(curve.yData).all() for curve in view._curves())  # no band while learning

    publish(60, 5, MuscleState.CONTRACTING)
    view.refresh()
    assert view.label == "myopathy" and view.call_label.text().startswith("myopathy")
    top = view._curves()[-1].yData
    assert np.isnan(top[:60]).all() and np.allclose(top[60:], 1.0)  # stacked bands only where contracting


def test_spontaneous_potentials_at_rest_are_named_not_called_learning(qtbot):
    """A needle's relaxed window with potentials in it (monitor.needle_live) reads as such, with no condition."""
    state = MonitorState()
    view = ClassificationView(SimpleNamespace(state=state), lambda: 10.0)
    qtbot.addWidget(view)
    view.votes_box.setValue(5)
    with state.lock:
        for sequence in range(20):
            state.decisions.append(DecisionRecord(
                sequence, 10.0 + 0.25 * sequence, SPONTANEOUS_LABEL, MYOPATHY, CLASSES, None, "m", 0.01, 0.002,
                muscle=MuscleState.RELAXED))  # fmt: skip
    view.refresh()
    text = view.call_label.text()
    assert view.label == SPONTANEOUS_LABEL and text.startswith(SPONTANEOUS_LABEL)
    assert "spontaneous potentials at rest" in text and "rest level" not in text and "myopathy" not in text
