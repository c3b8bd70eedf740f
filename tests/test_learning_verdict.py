"""No condition while the rest level is being learned: a relaxed muscle at the start of a session reads "learning rest
level", then "rest", never a condition — offline, on the decisions outlet's label index and on the headless dashboard.
"""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
from rich.console import Console

from dsp.fatigue import FatigueSettings
from monitor.outlets import LEARNING_INDEX, REST_INDEX
from monitor.pipeline import (
    LEARNING_LABEL,
    REST_LABEL,
    DecisionRecord,
    MonitorState,
    MuscleState,
    contracting,
    label_index,
    muscle_state,
    verdict,
)
from simulators.electrodes import ElectrodeLayout
from tests.untrained_ring_model import CLASSES, save_untrained_ring_model

FS = 200.0
REST_S = 5.0  # as the demo's hold: rest well past the tracker's learning, then contract
CONTRACTION_S = 3.0


def window_result(learning: bool, active: list[bool], rest_rms: list[float]) -> SimpleNamespace:
    """What ``muscle_state`` reads of a dsp.engine.WindowResult: the fatigue tracker's report."""
    fatigue = SimpleNamespace(learning=learning, active=np.array(active), rest_rms=np.array(rest_rms, float))
    return SimpleNamespace(fatigue=fatigue)


def test_a_window_while_the_rest_level_is_learned_gets_the_learning_verdict_not_the_models_class():
    learning = window_result(True, [False] * 3, [np.nan] * 3)
    assert muscle_state(learning) is MuscleState.LEARNING and not contracting(learning)
    assert verdict("myopathy", muscle_state(learning)) == LEARNING_LABEL
    relaxed = window_result(False, [False] * 3, [2.0] * 3)
    assert verdict("myopathy", muscle_state(relaxed)) == REST_LABEL
    active = window_result(False, [False, True, False], [2.0] * 3)
    assert verdict("myopathy", muscle_state(active)) == "myopathy" and contracting(active)


def test_a_channel_subset_is_learning_until_one_of_its_channels_has_a_rest_level():
    # channels 0-1 were unusable throughout the learning phase (no rest level yet); channel 2 contracts
    result = window_result(False, [False, False, True], [np.nan, np.nan, 3.0])
    assert muscle_state(result, np.array([0, 1])) is MuscleState.LEARNING
    assert muscle_state(result, np.array([1, 2])) is MuscleState.CONTRACTING
    assert muscle_state(result) is MuscleState.CONTRACTING
    quiet = window_result(False, [False, False, False], [np.nan, 1.0, 3.0])
    assert muscle_state(quiet, np.array([0, 1])) is MuscleState.RELAXED


def test_the_decisions_outlet_publishes_a_class_index_only_while_contracting():
    probabilities = np.array([0.1, 0.8, 0.1])
    assert label_index(probabilities, MuscleState.CONTRACTING) == 1
    assert label_index(probabilities, MuscleState.RELAXED) == REST_INDEX < 0
    assert label_index(probabilities, MuscleState.LEARNING) == LEARNING_INDEX < 0
    assert LEARNING_INDEX != REST_INDEX


def relaxed_then_contracting() -> object:
    from monitor.recordings.base import Recording

    rng = np.random.default_rng(11)
    rest = rng.normal(0.0, 2.0, (int(REST_S * FS), 8))
    contraction = rng.normal(0.0, 60.0, (int(CONTRACTION_S * FS), 8))
    data = np.vstack([rest, contraction])
    return Recording(data=data, timestamps=100.0 + np.arange(len(data)) / FS, fs=FS,
                     channel_labels=[f"E{i + 1}" for i in range(8)], units=["uV"] * 8,
                     layout=ElectrodeLayout.ring(8).to_dict())  # fmt: skip


@pytest.fixture(scope="module")
def ring_model(tmp_path_factory):
    return save_untrained_ring_model(tmp_path_factory.mktemp("model"), ElectrodeLayout.ring(8).to_dict(),
                                     "test-learning", seed=5)


def test_analysis_of_a_session_that_rests_first_gives_no_condition_before_the_rest_level_is_known(ring_model):
    from models.predictor import load_predictor
    from monitor.recordings.analysis import analyze_recording
    from monitor.recordings.preprocessing import windows_sentence

    analysis = analyze_recording(relaxed_then_contracting(), load_predictor(ring_model, backend="torch"))
    windows = analysis.windows
    learning_s = FatigueSettings().rest_learning_s
    # the tracker learns over the windows ending in the first rest_learning_s after the first window
    since_first = np.array([w.time_s - windows[0].time_s for w in windows])
    during = [w for w, t in zip(windows, since_first, strict=True) if t < learning_s - 1e-6]
    relaxed_after = [w for w, t in zip(windows, since_first, strict=True)
                     if t > learning_s + 1e-6 and w.time_s < REST_S - 0.01]  # fmt: skip
    contraction = [w for w in windows if w.time_s > REST_S + 0.5]
    assert len(during) >= 55 and len(relaxed_after) >= 15 and len(contraction) >= 40
    assert {w.label for w in during} == {LEARNING_LABEL}
    assert {w.label for w in relaxed_after} == {REST_LABEL}
    assert {w.label for w in contraction} <= set(CLASSES)

    not_decided = analysis.preprocessing["windows"]["not_decided"]
    learning_reason = next(reason for reason in not_decided if "learned" in reason)
    rest_reason = next(reason for reason in not_decided if "no contraction" in reason)
    assert not_decided[learning_reason] == sum(w.label == LEARNING_LABEL for w in windows) >= len(during)
    assert not_decided[rest_reason] == sum(w.label == REST_LABEL for w in windows) >= len(relaxed_after)
    assert f"without a model decision: {learning_reason}" in windows_sentence(analysis.preprocessing["windows"])
    # the learning windows have a share of their own, never a condition's
    shares = analysis.summary["label_distribution"]
    assert shares[LEARNING_LABEL] == pytest.approx(not_decided[learning_reason] / len(windows))
    decided = sum(w.label in CLASSES for w in windows)
    assert sum(shares.get(name, 0.0) for name in CLASSES) == pytest.approx(decided / len(windows))
    # the mean confidence is that of the class verdicts only, not of the windows that got none
    confidences = [w.confidence for w in windows if w.label in CLASSES]
    assert analysis.summary["mean_confidence"] == pytest.approx(float(np.mean(confidences)))
    assert analysis.summary["mean_confidence"] != pytest.approx(float(np.mean([w.confidence for w in windows])))


def record(sequence: int, muscle: MuscleState) -> DecisionRecord:
    probabilities = np.array([0.02, 0.95, 0.03])  # the untrained model's "myopathy" on a relaxed muscle
    label = verdict(CLASSES[int(np.argmax(probabilities))], muscle)
    return DecisionRecord(sequence, 10.0 + 0.05 * sequence, label, probabilities, CLASSES, None, "m", 0.01, 0.002,
                          muscle=muscle)  # fmt: skip


def headless_with(records: list[DecisionRecord]):
    from monitor.headless import HeadlessDashboard

    state = MonitorState(stream_name="amp", fs=FS, n_channels=3, channel_labels=["a", "b", "c"])
    state.decisions.extend(records)
    pipeline = SimpleNamespace(
        state=state, client=None,
        acquisition=SimpleNamespace(signal_lost=False, buffer=SimpleNamespace(total_written=0), incompatible=False),
        engine=SimpleNamespace(reader=SimpleNamespace(dropped=0), profiler=None),
    )  # fmt: skip
    out = io.StringIO()
    console = Console(file=io.StringIO(), record=True, width=120)
    return HeadlessDashboard(pipeline, jsonl=out, console=console), out


@pytest.mark.parametrize("muscle, label", [(MuscleState.LEARNING, LEARNING_LABEL), (MuscleState.RELAXED, REST_LABEL)])
def test_headless_dashboard_shows_no_condition_or_class_share_without_a_contraction(muscle, label):
    import json

    dashboard, out = headless_with([record(0, muscle)])
    assert dashboard.summary()["label"] == label and dashboard.summary()["muscle"] == muscle.value
    dashboard.console.print(dashboard.render())
    shown = dashboard.console.export_text()
    assert label in shown
    assert "95.0%" not in shown and "myopathy" not in shown  # no "myopathy 95 %" bar while there is no verdict
    dashboard._write_new_decisions()
    line = json.loads(out.getvalue())
    assert line["label"] == label and line["muscle"] == muscle.value


def test_headless_dashboard_shows_the_condition_and_its_bars_while_contracting():
    dashboard, _ = headless_with([record(0, MuscleState.LEARNING), record(1, MuscleState.CONTRACTING)])
    dashboard.console.print(dashboard.render())
    shown = dashboard.console.export_text()
    assert "myopathy" in shown and "95.0%" in shown and LEARNING_LABEL not in shown
