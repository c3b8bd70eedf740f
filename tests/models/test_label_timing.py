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


def test_activity_lags_find_a_known_reaction_time():
    from models.label_timing import activity_lags

    fs = 200.0
    rng = np.random.default_rng(3)
    labels = np.repeat([0, 1, 0, 2, 0, 3, 0], 600)  # 3 s runs
    muscle = np.repeat([0, 1, 0, 2, 0, 3, 0], 600)
    lag_on, lag_off = 60, 40  # the muscle starts 300 ms after the cue and relaxes 200 ms after it
    active = np.zeros(len(labels), dtype=bool)
    for change in np.flatnonzero(np.diff(muscle)) + 1:
        if muscle[change] != 0:
            end = change + 600
            active[change + lag_on : end + lag_off] = True
    data = rng.standard_normal((len(labels), 8)) * np.where(active, 40.0, 3.0)[:, None]
    onsets, offsets = activity_lags(data, labels, fs)
    assert len(onsets) == 3 and len(offsets) == 3
    np.testing.assert_allclose(onsets, lag_on / fs, atol=0.06)
    np.testing.assert_allclose(offsets, lag_off / fs, atol=0.06)
