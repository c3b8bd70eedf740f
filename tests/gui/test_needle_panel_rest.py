"""The needle panel's network side counts contracting windows only (issue 17): live needle decisions published as
"rest" or while the rest level was learned stay out of the mean probabilities and out of the agreement with the MUP
reading. A bare pipeline stand-in and an offscreen widget: no stream, no model, well under a second."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np

from dsp.mup_reading import Reading
from dsp.ringbuffer import RingBuffer
from monitor.decision_history import DecisionRing, MuscleState
from monitor.needle_live import NeedleSnapshot
from monitor.pipeline import LEARNING_LABEL, REST_LABEL, DecisionRecord

CLASSES = ["healthy", "myopathy", "neuropathy"]
FS = 10_000.0


def _pipeline() -> SimpleNamespace:
    state = SimpleNamespace(lock=threading.RLock(), fs=FS, layout={"kind": "needle"}, n_channels=1,
                            channel_labels=["needle"], decisions=DecisionRing(64))
    return SimpleNamespace(state=state, acquisition=SimpleNamespace(buffer=RingBuffer(int(FS), 1)))


def _decide(pipeline, sequence: int, when: float, probabilities: list[float], muscle: MuscleState) -> None:
    label = {MuscleState.RELAXED: REST_LABEL, MuscleState.LEARNING: LEARNING_LABEL}.get(muscle, "neuropathy")
    with pipeline.state.lock:
        pipeline.state.decisions.append(DecisionRecord(sequence, when, label, np.array(probabilities, np.float32),
                                                       CLASSES, None, "needle-test", 0.01, 0.001, muscle=muscle))


def _view(qtbot, pipeline):
    from monitor.gui.needle import NeedleView

    view = NeedleView(pipeline, window_s=5.0, interval_s=60.0)
    view.stop()  # nothing to analyse: the snapshot is given
    qtbot.addWidget(view)
    reading = Reading("neurogenic", 0, 3, ())
    view.snapshot = NeedleSnapshot(0, 0, 0, int(5 * FS), 100.0, 105.0, SimpleNamespace(reading=reading), None, 0.1)
    return view


def test_rest_windows_stay_out_of_the_mean_and_the_agreement(qtbot):
    pipeline = _pipeline()
    view = _view(qtbot, pipeline)
    # at rest the model leans to myopathy (its resting guess); the two contracting windows say neuropathy
    _decide(pipeline, 0, 100.5, [0.1, 0.8, 0.1], MuscleState.LEARNING)
    _decide(pipeline, 1, 101.0, [0.1, 0.8, 0.1], MuscleState.RELAXED)
    _decide(pipeline, 2, 101.5, [0.1, 0.8, 0.1], MuscleState.RELAXED)
    _decide(pipeline, 3, 102.0, [0.2, 0.1, 0.7], MuscleState.CONTRACTING)
    _decide(pipeline, 4, 103.0, [0.0, 0.1, 0.9], MuscleState.CONTRACTING)
    view._show_network()

    probabilities, count = view._network_probabilities(view.snapshot)
    assert count == 2 and view.resting_windows == 3
    np.testing.assert_allclose([probabilities[c] for c in CLASSES], [0.1, 0.1, 0.8], atol=1e-6)
    text = view.network_label.text()
    assert "neuropathy 80%" in text and "mean of 2 verdicts on the newest 5 s each, 3 at rest left out" in text
    # with the rest windows in, the mean would say myopathy and the flag "disagree"
    assert view.agreement["agree"] is True and view.agreement["network_class"] == "neuropathy"
    assert view.agreement_label.text().startswith("agree")


def test_only_rest_windows_show_no_contraction_yet(qtbot):
    pipeline = _pipeline()
    view = _view(qtbot, pipeline)
    _decide(pipeline, 0, 101.0, [0.1, 0.8, 0.1], MuscleState.RELAXED)
    _decide(pipeline, 1, 102.0, [0.1, 0.8, 0.1], MuscleState.RELAXED)
    view._show_network()

    assert view._network_probabilities(view.snapshot) == (None, 0)
    assert view.network_label.text().startswith("no contraction yet")
    assert view.agreement is None and view.agreement_label.text() == ""
