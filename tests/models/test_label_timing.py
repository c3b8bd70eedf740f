"""Label timing: distance of each window to the nearest label change, delayed labels, settled accuracy."""

from __future__ import annotations

import numpy as np

from models.datasets import delay_labels, distance_to_label_change, windows_from_recording
from models.evaluation import settled_accuracy
from simulators.electrodes import ElectrodeLayout


def test_distance_to_label_change_counts_from_the_window_edges():
    fs = 100.0
    labels = np.array([0] * 100 + [1] * 100 + [0] * 100)  # changes at samples 100 and 200
    ends = np.array([50, 100, 140, 190, 300])  # windows of 20 samples: [30,50) [80,100) [120,140) [170,190) [280,300)
    distances = distance_to_label_change(labels, ends, 20, fs)
    np.testing.assert_allclose(distances, [0.5, 0.0, 0.2, 0.1, 0.8])
    assert np.isinf(distance_to_label_change(np.zeros(50, int), np.array([20, 40]), 10, fs)).all()


def test_delayed_labels_keep_length_and_move_every_change():
    labels = np.array([0, 0, 1, 1, 1, 2, 2, 0])
    np.testing.assert_array_equal(delay_labels(labels, 2), [0, 0, 0, 0, 1, 1, 1, 2])
    np.testing.assert_array_equal(delay_labels(labels, 0), labels)


def test_recording_windows_carry_their_distance_and_settled_accuracy_uses_it():
    fs = 200.0
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 0, 2], 400)  # 2 s runs
    data = rng.standard_normal((len(labels), 8)) * 10
    windows = windows_from_recording(data, labels, fs, "s1", ElectrodeLayout.ring(8).to_dict(), ["a", "b", "c"])
    assert windows.label_distance_s is not None and len(windows.label_distance_s) == len(windows)
    # every window is label-pure, so none lies across a change; the nearest windows touch one
    assert windows.label_distance_s.min() == 0.0
    # the last window [7.8 s, 8 s) lies 1.8 s after the last change (6 s); recording edges are not changes
    assert windows.label_distance_s[-1] == 1.8
    settled = windows.settled(0.5)
    # a classifier wrong only within 0.5 s of a change is perfect on the settled windows
    predicted = np.where(settled, windows.labels, (windows.labels + 1) % 3)
    result = settled_accuracy(windows, predicted, 0.5)
    assert result["settled_accuracy"] == 1.0
    assert result["settled_windows"] == int(settled.sum())
    assert 0 < settled.sum() < len(windows)
    assert float(np.mean(predicted == windows.labels)) < 0.8


LAG_ON, LAG_OFF = 60, 40  # samples at 200 Hz: the muscle starts 300 ms after the cue and relaxes 200 ms after it


def cue_and_muscle_recording() -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """-> (data (n, 8), cue labels, muscle-timed labels, fs): 3 s runs of rest and three gestures."""
    fs = 200.0
    rng = np.random.default_rng(3)
    labels = np.repeat([0, 1, 0, 2, 0, 3, 0], 600)
    muscle = labels.copy()
    for change in np.flatnonzero(np.diff(labels)) + 1:
        muscle[change : change + (LAG_ON if labels[change] != 0 else LAG_OFF)] = labels[change - 1]
    data = rng.standard_normal((len(labels), 8)) * np.where(muscle != 0, 40.0, 3.0)[:, None]
    return data, labels, muscle, fs


def test_activity_lags_find_a_known_reaction_time():
    from models.label_timing import activity_lags

    data, labels, _, fs = cue_and_muscle_recording()
    onsets, offsets = activity_lags(data, labels, fs)
    assert len(onsets) == 3 and len(offsets) == 3
    np.testing.assert_allclose(onsets, LAG_ON / fs, atol=0.06)
    np.testing.assert_allclose(offsets, LAG_OFF / fs, atol=0.06)


def test_muscle_timed_labels_move_every_change_to_the_muscle():
    from models.label_timing import muscle_timed_labels

    data, labels, muscle, fs = cue_and_muscle_recording()
    moved = muscle_timed_labels(data, labels, fs)
    # the half-level crossing of a 100 ms RMS envelope lands within 12 samples (60 ms) of the true change
    assert np.mean(moved != muscle) < 6 * 12 / len(labels)
    assert np.mean(labels != muscle) == (3 * LAG_ON + 3 * LAG_OFF) / len(labels)
    np.testing.assert_array_equal(np.unique(moved), [0, 1, 2, 3])


def test_window_majority_takes_the_label_most_samples_carry():
    from models.label_timing import window_majority

    labels = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2, 0])
    np.testing.assert_array_equal(window_majority(labels, np.array([4, 5, 9, 10]), 4), [0, 1, 2, 2])


def test_calibration_spans_are_aligned_from_their_own_labels_and_held_out_windows_are_untouched():
    from models.calibration import Span, split_by_spans
    from models.label_timing import align_spans_to_muscle, window_majority

    data, labels, muscle, fs = cue_and_muscle_recording()
    inside = np.zeros(len(labels), dtype=bool)
    inside[:400] = inside[600:1000] = inside[1200:1500] = True  # rest, gesture 1 from its cue, rest from its cue
    aligned, usable = align_spans_to_muscle(data, labels, inside, fs)
    # gesture 1's first samples before the muscle answers become rest (within 60 ms of the true lag)
    relabelled = int(np.sum(aligned[600:1000] == 0))
    assert abs(relabelled - LAG_ON) <= 12 and np.all(aligned[600 + relabelled : 1000] == 1)
    # rest's cue at 1200 comes while the muscle still relaxes: those samples are unusable, not relabelled
    dropped = int(np.sum(~usable[1200:1500]))
    assert abs(dropped - LAG_OFF) <= 12 and np.all(aligned[1200:1500] == 0)
    np.testing.assert_array_equal(aligned[~inside], labels[~inside])

    classes = ["rest", "a", "b", "c"]
    layout = ElectrodeLayout.ring(8).to_dict()
    spans = [Span("r", 0.0, 2.0), Span("r", 3.0, 5.0), Span("r", 6.0, 7.5)]
    cue_calibration, cue_held = split_by_spans(data, labels, fs, "r", spans, layout, classes, muscle_timing=False)
    calibration, held = split_by_spans(data, labels, fs, "r", spans, layout, classes, muscle_timing=True)
    np.testing.assert_array_equal(held.labels, cue_held.labels)
    np.testing.assert_array_equal(held.times, cue_held.times)
    # gesture 1's cue is at 3 s and the muscle answers at 3.3 s: its first 200 ms window ends at 3.2 s cue-timed,
    # at 3.5 s muscle-timed, and the windows over the silent start are rest
    def first_end(windows, label, after_s):
        return float(windows.times[(windows.labels == label) & (windows.times > after_s)].min())

    assert first_end(cue_calibration, 1, 0.0) == 3.2
    assert 3.5 - 12 / fs <= first_end(calibration, 1, 0.0) <= 3.5 + 12 / fs
    assert np.sum((calibration.labels == 0) & (calibration.times > 3.0) & (calibration.times < 3.5)) >= 2
    # rest's cue at 6 s, relaxation until 6.2 s: the first rest window there ends at 6.2 s cue-timed, ~6.4 s after
    assert first_end(cue_calibration, 0, 6.0) == 6.2
    assert 6.4 - 12 / fs <= first_end(calibration, 0, 6.0) <= 6.4 + 12 / fs
    # held-out windows carry the muscle-timed labels beside the recorded ones: they match the true muscle timing
    true_muscle = window_majority(muscle, np.round(held.times * fs).astype(int), 40)
    assert np.mean(held.muscle_labels == true_muscle) >= 0.97
    assert np.mean(true_muscle != held.labels) > 0.04


def test_muscle_timed_accuracy_scores_a_classifier_that_follows_the_muscle():
    from models.evaluation import muscle_timed_accuracy

    data, labels, _, fs = cue_and_muscle_recording()
    windows = windows_from_recording(data, labels, fs, "s1", ElectrodeLayout.ring(8).to_dict(), ["rest", "a", "b", "c"])
    follows_muscle = windows.muscle_labels.copy()
    result = muscle_timed_accuracy(windows, follows_muscle)
    assert result["muscle_timed_accuracy"] == 1.0
    assert result["muscle_cue_agreement"] == float(np.mean(follows_muscle == windows.labels)) < 0.95
