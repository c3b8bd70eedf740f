""""Endurance left" in the fatigue view: the bundled LSTM forecaster fed by the view's own MDF trend."""

from __future__ import annotations

import numpy as np
import pytest

from models.prognosis import EPOCH_S, EnduranceEstimator, load_forecaster
from monitor.gui.endurance import EnduranceForecast, contraction_epochs
from tests.gui.test_dashboard import butter_noise


@pytest.fixture(scope="module")
def forecaster():
    return load_forecaster()


def test_epochs_of_the_ongoing_contraction_survive_short_pauses_and_end_at_rest():
    mdf = np.arange(20, dtype=float)
    contracting = np.zeros(20, dtype=bool)
    contracting[2:6] = True  # an earlier contraction, ended by a 5 s rest
    contracting[11:20] = True
    contracting[15:17] = False  # a 2 s pause: the same contraction
    start, epochs = contraction_epochs(mdf, contracting)
    assert start == 11
    # bins 11-18 make four complete 2 s epochs; the pause's epoch (15, 16) has no contraction bin
    np.testing.assert_array_equal(epochs, [11.5, 13.5, np.nan, 17.5])
    contracting[19] = False
    assert contraction_epochs(mdf, contracting) is None  # the newest bin is at rest


def test_estimate_and_text_follow_the_estimator_on_a_known_trend(forecaster):
    forecast = EnduranceForecast(lambda: forecaster, background=False)
    # 40 s of contraction, MDF falling 10 Hz/min from 100 Hz in 1 s bins
    mdf = 100.0 - 10.0 * np.arange(40) / 60.0
    contracting = np.ones(40, dtype=bool)
    estimate = forecast.update(mdf, contracting)
    direct = EnduranceEstimator(forecaster)
    for value in mdf.reshape(20, 2).mean(axis=1):
        direct.add_epoch(value)
    expected = direct.estimate()
    assert estimate == expected and forecast.state == "forecast"
    epochs = mdf.reshape(20, 2).mean(axis=1)
    assert expected["threshold_hz"] == pytest.approx(0.85 * np.median(epochs[:5]), abs=0.01)
    # the line itself reaches the threshold ~55 s after its last bin: inside the forecast's 90 % band
    line_s = (mdf[-1] - expected["threshold_hz"]) / 10.0 * 60.0
    # the forecaster follows the trend it was fed (bundled weights: 38 s against the line's 55 s; was 2-120 s)
    assert 0.5 * line_s <= expected["seconds"] <= 1.5 * line_s
    assert expected["earliest_s"] <= line_s and (expected["latest_s"] is None or line_s <= expected["latest_s"])
    text = forecast.text()
    assert text.startswith(f"endurance left {expected['seconds']:.0f} s")
    assert f"90 %: {expected['earliest_s']:.0f} s–" in text and "MDF -15 %" in text
    assert forecast.update(mdf[:15], contracting[:15]) is None and "needs 20 s" in forecast.text()
    fallen = np.concatenate([mdf, np.full(10, 80.0)])
    forecast.update(fallen, np.ones(50, dtype=bool))
    assert forecast.state == "reached" and forecast.text().startswith("endurance left 0 s")
    contracting = np.ones(50, dtype=bool)
    contracting[-1] = False
    forecast.update(fallen, contracting)
    assert forecast.estimate is None and "(at rest)" in forecast.text()


def test_a_forecaster_that_fails_to_load_leaves_the_view_a_dash(forecaster):
    def broken():
        raise FileNotFoundError("no weights")

    forecast = EnduranceForecast(broken, background=True)
    assert forecast.wait_ready(5.0)
    forecast.update(np.full(30, 90.0), np.ones(30, dtype=bool))
    assert forecast.state == "unavailable" and forecast.text() == "endurance left —  (no forecaster)"


def _slow_compression(fs: float, n_channels: int, rest_s: float, contraction_s: float, hz_per_min: float):
    rng = np.random.default_rng(7)
    chunks = [butter_noise(rng, fs, n_channels, (20.0, 400.0), rest_s, 3.0)]
    for index in range(int(contraction_s / 0.5)):
        centre = 110.0 - hz_per_min * index * 0.5 / 60.0
        chunks.append(butter_noise(rng, fs, n_channels, (centre - 35.0, centre + 35.0), 0.5, 150.0))
    return np.concatenate(chunks).astype(np.float32)


def test_fatigue_view_shows_endurance_left_from_the_live_trend(qtbot, ring_stream, forecaster):
    from monitor.gui.fatigue import FatigueView
    from monitor.pipeline import MonitorPipeline
    from tests.gui.conftest import stop_pipeline

    pipeline = MonitorPipeline(ring_stream.resolve(), publish=False)  # not started: fed offline, same DSP path
    try:
        fs = pipeline.state.fs
        samples = _slow_compression(fs, 8, rest_s=4.0, contraction_s=46.0, hz_per_min=12.0)
        timestamps = 1000.0 + np.arange(len(samples)) / fs
        for first in range(0, len(samples), 2048):
            pipeline.engine.process(samples[first : first + 2048], timestamps[first : first + 2048], first)
        view = FatigueView(pipeline, lambda: 1000.0, forecast=EnduranceForecast(lambda: forecaster, background=False))
        qtbot.addWidget(view)
        view.refresh()
    finally:
        stop_pipeline(pipeline)
    # independent: the binned channel-mean MDF from the contraction's first loud bin on, in pairs, into the estimator
    centres, means = view.history.binned()
    loud = means[:, 2] > view.status.contraction_rms
    first = int(np.flatnonzero(loud)[0])
    pairs = means[first : first + (len(means) - first) // 2 * 2, 1].reshape(-1, 2).mean(axis=1)
    direct = EnduranceEstimator(forecaster)
    for value in pairs:
        direct.add_epoch(value)
    expected = direct.estimate()
    assert len(pairs) >= 20 and view.forecast.state == "forecast"
    assert view.forecast.estimate["seconds"] == expected["seconds"]
    assert view.endurance_label.text().startswith(f"endurance left {expected['seconds']:.0f} s")
    assert 2.0 <= expected["seconds"] <= 120.0
    # the forecast is drawn after the last complete epoch, its band around it, as far as 30 s past the data (half the
    # session shown, at least 30 s): its 2 minutes squeezed the measured trends into a fifth of the plot's width
    x, y = view.forecast_curve.xData, view.forecast_curve.yData
    last_end = centres[first] - 0.5 + len(pairs) * EPOCH_S
    assert x[0] == pytest.approx((last_end + EPOCH_S - 1000.0) / 60.0)
    assert x[-1] <= (centres[-1] + 30.0 - 1000.0) / 60.0 + 1e-9 and len(x) >= 10
    np.testing.assert_allclose(y, expected["forecast_hz"][: len(x)])
    assert np.all(view.forecast_low.yData <= y) and np.all(view.forecast_high.yData >= y)
