"""The views read the decision history by its published count and as arrays: decisions that two workers answer out
of sequence order are all drawn, once each, and a model with other classes starts the trend afresh."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from monitor.gui.classification import ClassificationView
from monitor.pipeline import DecisionRecord, MonitorState

CLASSES = ["healthy", "myopathy", "neuropathy"]


def publish(state: MonitorState, sequences: list[int], classes: list[str] = CLASSES) -> None:
    with state.lock:
        for sequence in sequences:
            probabilities = np.full(len(classes), 0.1, dtype=np.float32)
            probabilities[sequence % len(classes)] = 1.0 - 0.1 * (len(classes) - 1)
            state.decisions.append(DecisionRecord(sequence, 10.0 + 0.05 * sequence, classes[sequence % len(classes)],
                                                  probabilities, classes, None, "m", 0.01, 0.002))  # fmt: skip


def test_out_of_order_decisions_are_each_drawn_once_in_arrival_order(qtbot):
    state = MonitorState()
    view = ClassificationView(SimpleNamespace(state=state), lambda: 10.0)
    qtbot.addWidget(view)
    publish(state, [0, 2])  # the second worker answered window 2 before the first answered window 1
    view.refresh()
    publish(state, [1, 4, 3])  # window 1 comes after 2 was drawn: a reader by sequence number would skip it
    view.refresh()
    view.refresh()  # nothing new: nothing drawn twice
    arrival = [0, 2, 1, 4, 3]
    np.testing.assert_array_equal(view.trend.times, [10.0 + 0.05 * s for s in arrival])
    np.testing.assert_array_equal(np.argmax(view.probabilities, axis=1), [s % 3 for s in arrival])
    assert view.last_sequence == 3 and view.last_published == 5


def test_a_model_with_other_classes_in_one_batch_starts_the_trend_at_its_first_decision(qtbot):
    state = MonitorState()
    view = ClassificationView(SimpleNamespace(state=state), lambda: 10.0)
    qtbot.addWidget(view)
    publish(state, [0, 1, 2])
    publish(state, [3, 4], ["rest", "active"])
    view.refresh()
    assert view.classes == ["rest", "active"] and view.probabilities.shape == (2, 2)
    np.testing.assert_allclose(view.probabilities[0], [0.1, 0.9], atol=1e-6)
