"""The monitor's bounded feature history (monitor.feature_history.FeatureRing)."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.feature_history import FeatureRing

CHANNELS = 3


def window(i: int) -> dict[str, np.ndarray]:
    """Window ``i``'s features: float32-exact values that name the window and the channel."""
    return {"RMS": 100.0 * i + np.arange(CHANNELS), "MNF": -(100.0 * i + np.arange(CHANNELS))}


def filled(capacity: int, n: int) -> FeatureRing:
    ring = FeatureRing(capacity)
    for i in range(n):
        ring.append(1000.0 + 0.05 * i, window(i))
    return ring


def expected(indices: range) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    times = np.array([1000.0 + 0.05 * i for i in indices])
    return times, {
        name: np.reshape([window(i)[name] for i in indices], (len(indices), CHANNELS)) for name in ("RMS", "MNF")
    }


def assert_windows(got: tuple[np.ndarray, dict[str, np.ndarray]], indices: range) -> None:
    want_times, want_values = expected(indices)
    np.testing.assert_array_equal(got[0], want_times)
    assert set(got[1]) == set(want_values)
    for name, values in want_values.items():
        assert got[1][name].shape == (len(indices), CHANNELS)
        np.testing.assert_array_equal(got[1][name], values)


def test_an_empty_history_reads_as_nothing():
    ring = FeatureRing(4)
    assert len(ring) == 0 and not ring
    assert ring.latest() is None and ring.oldest_timestamp() is None
    times, values = ring.recent(10)
    assert len(times) == 0 and values == {}
    assert len(ring.since(-np.inf)[0]) == 0


def test_wrap_around_keeps_exactly_the_last_capacity_windows_in_time_order():
    ring = filled(5, 12)  # wrapped twice, the newest in the middle of the arrays
    assert len(ring) == 5
    assert ring.oldest_timestamp() == pytest.approx(1000.0 + 0.05 * 7)
    assert_windows(ring.recent(5), range(7, 12))
    assert_windows(ring.recent(100), range(7, 12))  # asking for more than it holds gives what it holds
    assert_windows(ring.since(-np.inf), range(7, 12))


def test_before_it_fills_every_window_is_kept():
    ring = filled(5, 3)
    assert len(ring) == 3 and ring.oldest_timestamp() == 1000.0
    assert_windows(ring.recent(5), range(3))


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5])
def test_recent_reads_across_the_wrap_boundary(n):
    ring = filled(5, 7)  # slots hold windows 5, 6, 2, 3, 4: the newest three straddle the arrays' end
    assert_windows(ring.recent(n), range(7 - n, 7))


def test_latest_is_the_newest_window_and_a_copy():
    ring = filled(4, 6)
    timestamp, values = ring.latest()
    assert timestamp == pytest.approx(1000.0 + 0.05 * 5)
    np.testing.assert_array_equal(values["RMS"], window(5)["RMS"])
    values["RMS"][:] = -1.0  # a reader's scratch work must not reach the history
    np.testing.assert_array_equal(ring.latest()[1]["RMS"], window(5)["RMS"])
    ring.recent(4)[1]["MNF"][:] = 0.0
    assert_windows(ring.recent(4), range(2, 6))


def test_values_are_stored_as_float32_and_times_as_float64():
    ring = FeatureRing(3)
    lsl_time = 123456.789012345  # LSL clock seconds: float32 would lose the milliseconds
    ring.append(lsl_time, {"RMS": np.array([0.1, 1e-13, 12345.678])})
    times, values = ring.recent(1)
    assert times.dtype == np.float64 and times[0] == lsl_time
    assert values["RMS"].dtype == np.float32
    np.testing.assert_array_equal(values["RMS"][0], np.array([0.1, 1e-13, 12345.678], dtype=np.float32))


def test_since_keeps_the_windows_at_or_after_a_time_inclusive_or_not():
    ring = filled(5, 9)  # windows 4..8, wrapped
    boundary = 1000.0 + 0.05 * 6
    assert_windows(ring.since(boundary), range(6, 9))
    assert_windows(ring.since(boundary, inclusive=False), range(7, 9))
    assert len(ring.since(1e9)[0]) == 0
    times, values = ring.since(boundary, names=("MNF", "not a feature"))
    assert list(values) == ["MNF"] and len(times) == 3


def test_since_stops_at_the_newest_older_window_like_a_walk_back_from_the_newest():
    ring = FeatureRing(6)
    for timestamp in (10.0, 11.0, 12.0, 5.0, 6.0):  # the stream restarted: time went back
        ring.append(timestamp, {"RMS": np.full(CHANNELS, timestamp)})
    times, values = ring.since(11.5)
    np.testing.assert_array_equal(times, [])  # the newest window (6.0) is already older: nothing newer than it
    times, _ = ring.since(5.5)
    np.testing.assert_array_equal(times, [6.0])
    times, _ = ring.since(0.0)
    np.testing.assert_array_equal(times, [10.0, 11.0, 12.0, 5.0, 6.0])


def test_channel_count_and_feature_names_are_fixed_by_the_first_window():
    ring = filled(4, 2)
    assert ring.names == ("RMS", "MNF") and ring.shape("RMS") == (CHANNELS,)
    with pytest.raises(ValueError, match="shape"):
        ring.append(2.0, {"RMS": np.zeros(CHANNELS + 1), "MNF": np.zeros(CHANNELS + 1)})
    with pytest.raises(ValueError, match="not in the first window"):
        ring.append(2.0, {**window(2), "MDF": np.zeros(CHANNELS)})
    assert len(ring) == 2  # a refused window leaves no trace
    assert_windows(ring.recent(4), range(2))


def test_a_feature_a_window_lacks_reads_as_nan():
    ring = filled(4, 1)
    ring.append(5.0, {"RMS": np.ones(CHANNELS)})
    _, values = ring.recent(1)
    assert np.isnan(values["MNF"]).all() and (values["RMS"] == 1.0).all()


def test_scalar_features_keep_their_shape():
    ring = FeatureRing(3)
    for i in range(4):
        ring.append(float(i), {"RMS": np.full(CHANNELS, float(i)), "count": i})
    times, values = ring.recent(3)
    assert values["count"].shape == (3,) and values["RMS"].shape == (3, CHANNELS)
    np.testing.assert_array_equal(values["count"], [1, 2, 3])
    assert ring.latest()[1]["count"].shape == ()


def test_an_empty_first_window_or_capacity_is_refused():
    with pytest.raises(ValueError):
        FeatureRing(0)
    with pytest.raises(ValueError):
        FeatureRing(3).append(0.0, {})


def test_a_refused_window_leaves_the_oldest_window_of_a_full_history_intact():
    ring = filled(3, 5)  # full: the next append overwrites window 2
    with pytest.raises(ValueError):
        ring.append(9.0, {"RMS": np.zeros(CHANNELS), "MNF": np.zeros(CHANNELS + 1)})
    assert_windows(ring.recent(3), range(2, 5))
