"""What the views compute before drawing, checked against independent computations (no stream needed)."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.gui.classification import UNCERTAIN, smoothed_call
from monitor.gui.spectrum import mean_and_median_frequency, welch_psd
from monitor.gui.traces import MinMaxDecimator


def _reference_bins(data: np.ndarray, first_bin: int, last_bin: int, length: int):
    """Independent loop: bin b covers samples [b*L - 1, (b+1)*L) (the one before it joins it to its neighbour)."""
    low, high = [], []
    for b in range(first_bin, last_bin + 1):
        segment = data[max(0, b * length - 1) : (b + 1) * length]
        low.append(segment.min(axis=0))
        high.append(segment.max(axis=0))
    return np.array(low), np.array(high)


def test_minmax_decimator_matches_per_bin_extremes_when_fed_in_random_chunks():
    from dsp.ringbuffer import RingBuffer

    rng = np.random.default_rng(0)
    data = rng.standard_normal((30_000, 3)).astype(np.float32)
    data[25_000, 1] = 50.0  # one-sample spike: subsampling would almost surely miss it
    buffer = RingBuffer(12_000, 3)
    decimator = MinMaxDecimator(3)
    span, bins = 10_000, 500  # 20 samples a bin
    written = 0
    while written < len(data):
        n = int(rng.integers(1, 700))
        chunk = data[written : written + n]
        buffer.write(chunk, np.arange(written, written + len(chunk)) / 1000.0)
        written += len(chunk)
        low, high, times = decimator.update(buffer, span, bins)
    assert decimator.bin_length == 20
    first_bin, last_bin = -(-(written - span) // 20), (written - 1) // 20
    ref_low, ref_high = _reference_bins(data, first_bin, last_bin, 20)
    np.testing.assert_array_equal(low, ref_low)
    np.testing.assert_array_equal(high, ref_high)
    np.testing.assert_allclose(times, (np.arange(first_bin, last_bin + 1) * 20 + 19) / 1000.0)
    assert high[:, 1].max() == 50.0
    # segments of neighbouring bins touch: the picture is a connected line, never a dotted one
    assert np.all(np.maximum(low[1:], low[:-1]) <= np.minimum(high[1:], high[:-1]))


def test_minmax_decimator_at_one_sample_per_bin_draws_the_polyline():
    from dsp.ringbuffer import RingBuffer

    data = np.array([[0.0], [2.0], [-1.0], [3.0]], dtype=np.float32)
    buffer = RingBuffer(10, 1)
    buffer.write(data, np.arange(4.0))
    low, high, _ = MinMaxDecimator(1).update(buffer, span_samples=4, n_bins=100)
    # each segment joins one sample to the next: (0,0), (0,2), (-1,2), (-1,3)
    np.testing.assert_array_equal(low[:, 0], [0, 0, -1, -1])
    np.testing.assert_array_equal(high[:, 0], [0, 2, 2, 3])


def test_mean_and_median_frequency_of_known_spectra():
    frequencies = np.linspace(0, 500, 501)
    flat = ((frequencies >= 100) & (frequencies <= 300)).astype(float)
    mnf, mdf = mean_and_median_frequency(frequencies, flat)
    assert mnf == pytest.approx(200.0) and mdf == pytest.approx(200.0, abs=1.0)
    # power 3:1 at 50 and 250 Hz: mean 100 Hz, median at the 50 Hz line
    two_lines = np.zeros_like(frequencies)
    two_lines[50], two_lines[250] = 3.0, 1.0
    mnf, mdf = mean_and_median_frequency(frequencies, two_lines)
    assert mnf == pytest.approx(100.0) and mdf == pytest.approx(50.0, abs=1.0)
    assert np.isnan(mean_and_median_frequency(frequencies, np.zeros_like(frequencies))[0])


def test_welch_psd_finds_a_sine_at_its_frequency():
    fs = 2048.0
    t = np.arange(int(2 * fs)) / fs
    data = np.column_stack([np.sin(2 * np.pi * 120 * t), 0.5 * np.sin(2 * np.pi * 300 * t)])
    frequencies, psd = welch_psd(data, fs)
    assert frequencies[np.argmax(psd[:, 0])] == pytest.approx(120, abs=4)
    assert frequencies[np.argmax(psd[:, 1])] == pytest.approx(300, abs=4)
    assert frequencies[1] - frequencies[0] == pytest.approx(4.0)  # ~4 Hz bins at any rate


@pytest.mark.parametrize(("n_samples", "n_channels", "dtype", "fs"),
                         [(4096, 256, np.float32, 2048.0), (3001, 3, np.float64, 2048.0), (100, 2, np.float32, 2048.0),
                          (400, 8, np.float32, 200.0), (16001, 1, np.float32, 8000.0)])  # fmt: skip
def test_welch_psd_equals_scipys_welch(n_samples, n_channels, dtype, fs):
    from scipy.signal import welch

    data = (np.random.default_rng(n_samples).standard_normal((n_samples, n_channels)) * 50 + 7).astype(dtype)
    frequencies, psd = welch_psd(data, fs)
    segment = int(min(n_samples, 2 ** int(np.round(np.log2(max(fs / 4.0, 16.0))))))
    expected_frequencies, expected = welch(data, fs=fs, nperseg=segment, axis=0, detrend="constant")
    np.testing.assert_array_equal(frequencies, expected_frequencies)
    assert psd.shape == expected.shape and psd.dtype == expected.dtype
    np.testing.assert_allclose(psd, expected, rtol=0, atol=1e-5 * float(np.abs(expected).max()))


def test_smoothed_call_votes_rejects_and_reports_confidence():
    classes = ["healthy", "myopathy", "neuropathy"]
    rows = np.array([[0.1, 0.8, 0.1]] * 5 + [[0.7, 0.2, 0.1]] * 4)
    label, confidence = smoothed_call(rows, classes, votes=9, threshold=0.5)
    assert label == "myopathy" and confidence == pytest.approx((5 * 0.8 + 4 * 0.2) / 9)
    assert smoothed_call(rows, classes, votes=4, threshold=0.5)[0] == "healthy"
    label, confidence = smoothed_call(rows, classes, votes=4, threshold=0.75)
    assert label == UNCERTAIN and confidence == pytest.approx(0.7)
    # a tie goes to the most recent ballot
    tie = np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05]])
    assert smoothed_call(tie, classes, votes=2, threshold=0.5)[0] == "myopathy"
    assert smoothed_call(np.empty((0, 3)), classes, votes=5, threshold=0.5)[0] == UNCERTAIN


def test_feature_history_bins_each_second_over_usable_emg_channels_across_batches():
    from monitor.gui.fatigue import FEATURES, FeatureHistory
    from monitor.pipeline import MonitorState

    rng = np.random.default_rng(2)
    state = MonitorState(n_channels=4, emg_channels=np.array([0, 1, 2]))  # channel 3 is not EMG (e.g. an index)
    state.usable = np.array([True, False, True, True])  # channel 1 masked
    times = 100.0 + np.arange(70) * 0.05  # 3.5 s of 50 ms hops
    # float32-exact values: the history stores float32, and the expectations below are computed from these
    values = {name: rng.uniform(50, 150, (70, 4)).astype(np.float32).astype(np.float64) for name in FEATURES}
    values["MDF"][10, :] = np.nan  # a window whose MDF is unknown on every channel
    history = FeatureHistory(bin_s=1.0)
    fed = 0
    for batch in (7, 13, 1, 29, 20):  # batches end in the middle of bins
        for i in range(fed, fed + batch):
            state.features.append(times[i], {n: values[n][i] for n in FEATURES})
        fed += batch
        assert history.collect(state) == batch
    centres, means = history.binned()
    np.testing.assert_allclose(centres, [100.5, 101.5, 102.5, 103.5])
    for b, centre in enumerate(centres):  # independent: a loop over windows, channels 0 and 2 only
        inside = (times >= centre - 0.5 - 1e-9) & (times < centre + 0.5 - 1e-9)
        for column, name in enumerate(FEATURES):
            per_window = values[name][inside][:, [0, 2]].mean(axis=1)
            np.testing.assert_allclose(means[b, column], np.nanmean(per_window))
    assert history.windows == 70 and history.latest[0] == values["MNF"][-1, [0, 2]].mean()


def test_contraction_spans_are_the_runs_of_contracting_bins():
    from monitor.gui.fatigue import contraction_spans

    centres = np.arange(10) + 0.5
    contracting = np.array([0, 1, 1, 0, 0, 1, 1, 1, 0, 1], dtype=bool)
    assert contraction_spans(centres, contracting, 1.0) == [(1.0, 3.0), (5.0, 8.0), (9.0, 10.0)]
    assert contraction_spans(centres, np.zeros(10, dtype=bool), 1.0) == []


def test_raster_lanes_lights_exactly_the_rows_each_segment_covers():
    from monitor.gui.traces import raster_lanes

    rng = np.random.default_rng(5)
    low = rng.uniform(-0.4, 0.0, (30, 3)) - np.arange(3)  # lane k centred on -k
    high = low + rng.uniform(0.0, 0.4, (30, 3))
    height = 40
    image = raster_lanes(low, high, height)
    rows_per_unit = height / 4.0  # 3 lanes + 1
    expected = np.zeros((30, height), dtype=bool)
    for b in range(30):  # independent: a loop over every segment
        for k in range(3):
            first = int(np.floor((low[b, k] + 3) * rows_per_unit))
            last = int(np.floor((high[b, k] + 3) * rows_per_unit))
            expected[b, first : last + 1] = True
    np.testing.assert_array_equal(image, expected)


def test_welch_psd_of_each_channel_does_not_depend_on_the_others():
    # the spectrum view averages the chosen channels' PSDs out of all channels' (cheaper than copying them out)
    data = (np.random.default_rng(5).standard_normal((4096, 64)) * 50).astype(np.float32)
    chosen = np.flatnonzero(np.random.default_rng(6).random(64) > 0.3)
    _, every = welch_psd(data, 2048.0)
    _, only_chosen = welch_psd(data[:, chosen], 2048.0)
    np.testing.assert_allclose(every[:, chosen].mean(axis=1), only_chosen.mean(axis=1), rtol=1e-6)
