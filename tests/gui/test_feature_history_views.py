"""The views' reads of the feature history give what the per-window loops they replaced gave."""

from __future__ import annotations

import numpy as np
import pytest


def test_emg_means_is_emg_mean_of_every_row():
    from monitor.gui.fatigue import emg_means
    from monitor.outlets import emg_mean

    rng = np.random.default_rng(5)
    values = rng.uniform(10, 200, (50, 6)).astype(np.float32)
    values[3, :] = np.nan  # nothing finite: NaN
    values[7, 2] = np.inf  # one non-finite channel: left out, as emg_mean does
    values[9, 0] = np.nan
    emg = np.array([0, 1, 2, 4])  # channels 3 and 5 are not EMG
    for usable in (None, np.array([True, False, True, True, True, True]), np.zeros(6, dtype=bool)):
        got = emg_means(values, usable, emg)
        want = np.array([emg_mean(row, usable, emg) for row in values])
        np.testing.assert_allclose(got, want, rtol=1e-12)
        assert np.isnan(got[3]) and np.isnan(want[3])
    np.testing.assert_allclose(emg_means(values, None, None), [emg_mean(row, None, None) for row in values])


@pytest.mark.parametrize("since", [-np.inf, 1000.0 + 0.05 * 20, 1000.0 + 0.05 * 20.5, 1e9])
def test_recent_feature_is_the_windows_since_a_time_oldest_first(since):
    from monitor.gui.traces import recent_feature
    from monitor.pipeline import MonitorState

    rng = np.random.default_rng(6)
    state = MonitorState(n_channels=4)
    state.features = type(state.features)(16)  # small, so that it wraps
    appended = []
    for i in range(40):
        features = {"RMS": rng.uniform(0, 100, 4), "MNF": rng.uniform(50, 150, 4)}
        state.features.append(1000.0 + 0.05 * i, features)
        appended.append((1000.0 + 0.05 * i, features))
    kept = [(t, f["RMS"]) for t, f in appended[-16:] if t >= since]  # independent: the last 16, filtered
    times, values = recent_feature(state, "RMS", since)
    np.testing.assert_array_equal(times, [t for t, _ in kept])
    assert values.dtype == np.float32 and values.shape == (len(kept), 4)
    np.testing.assert_array_equal(values, np.array([v for _, v in kept], dtype=np.float32).reshape(-1, 4))
    missing_times, missing = recent_feature(state, "not a feature", since)
    assert len(missing_times) == 0 and missing.shape == (0, 4)
