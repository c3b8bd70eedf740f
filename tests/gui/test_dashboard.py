"""The dashboard on a live LSL stream: real outlet, real pipeline threads, real Qt widgets rendered offscreen."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from monitor.pipeline import DecisionRecord
from tests.gui.conftest import BAND_HZ, DEAD_CHANNEL

CLASSES = ["healthy", "myopathy", "neuropathy"]


@pytest.fixture
def window(qtbot, ring_pipeline):
    from monitor.gui.main_window import MainWindow

    window = MainWindow(ring_pipeline)
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    return window


def _has_traces(window) -> bool:
    return window.traces.curve.yData is not None and len(window.traces.curve.yData) > 0


def _lanes(window) -> np.ndarray:
    """The traces curve split back into lanes: (channels, points) of y values."""
    y = window.traces.curve.yData
    return y.reshape(len(window.traces.lanes), -1)


def test_every_view_receives_live_data(qtbot, window, ring_pipeline):
    qtbot.waitUntil(lambda: ring_pipeline.engine.filtered.total_written > 2.5 * 2048, timeout=15000)
    qtbot.waitUntil(lambda: _has_traces(window), timeout=5000)
    window.refresh(everything=True)
    assert window.view_errors == {}

    # traces: one lane per channel, each centred on its offset; the dead electrode is a flat line
    lanes = _lanes(window)
    assert lanes.shape[0] == 8 and lanes.shape[1] >= 200
    np.testing.assert_allclose(lanes.mean(axis=1), -np.arange(8), atol=0.15)
    spread = lanes.std(axis=1)
    assert spread[DEAD_CHANNEL] == 0.0
    assert np.all(np.delete(spread, DEAD_CHANNEL) > 0.05)
    # RMS envelope: channel means of the engine's RMS, scaled into the same lanes (50 µV noise)
    envelope = window.traces.envelope.yData.reshape(8, -1) + np.arange(8)[:, None]
    rms_uv = np.delete(envelope.mean(axis=1), DEAD_CHANNEL) * window.traces.spacing_uv
    assert np.all((rms_uv > 25) & (rms_uv < 100)), rms_uv

    # spectrum: noise band-passed to 60-140 Hz has its mean and median frequency near the band's centre
    low, high = BAND_HZ
    assert low + 25 < window.spectrum.mnf_hz < high - 25, window.spectrum.mnf_hz
    assert low + 20 < window.spectrum.mdf_hz < high - 25, window.spectrum.mdf_hz
    assert window.spectrum.mnf_line.isVisible() and window.spectrum.mnf_line.value() == window.spectrum.mnf_hz

    # fatigue trends: every DSP window counted into 1 s bins, MNF from the engine in the noise band
    centres, means = window.fatigue.history.binned()
    with ring_pipeline.state.lock:
        n_windows = len(ring_pipeline.state.features)
    assert abs(window.fatigue.history.windows - n_windows) <= 3 and window.fatigue.history.windows >= 20
    assert len(centres) >= 2 and np.allclose(np.diff(centres), 1.0)
    assert low + 20 < np.nanmean(means[:, 0]) < high - 20
    assert len(window.fatigue.mnf_curve.xData) == len(centres)
    # constant noise: never a contraction, so nothing assessed (never "fresh")
    assert window.fatigue.badge.text() in ("learning rest", "not assessed")

    # electrodes: the dead channel is masked and drawn as bad on both maps
    expected_bad = np.zeros(8, dtype=bool)
    expected_bad[DEAD_CHANNEL] = True
    np.testing.assert_array_equal(window.electrodes.bad, expected_bad)
    assert window.electrodes.quality_map.colours[DEAD_CHANNEL] != window.electrodes.quality_map.colours[0]
    assert len(window.electrodes.attention_map.crosses.data) == 1
    # ...and the quality monitor's reason is named, in the summary and on the electrode's tooltip
    assert "nonfinite" in window.electrodes.reasons[DEAD_CHANNEL], window.electrodes.reasons
    assert "E03 (nonfinite" in window.electrodes.summary.text()
    assert window.electrodes.quality_map.tips[DEAD_CHANNEL].startswith("E03: nonfinite")
    assert window.electrodes.quality_map.tips[0] == "E01: ok"

    # status: the stream as described by LSL
    assert "8 ch" in window.status.fields["stream"].text() and "2048 Hz" in window.status.fields["stream"].text()
    assert "streaming" in window.status.fields["signal"].text()
    assert window.status.fields["worker"].text().startswith("none")


def test_classification_plots_decisions_and_applies_vote_and_rejection(qtbot, window, ring_pipeline):
    qtbot.waitUntil(lambda: len(ring_pipeline.state.features) > 0, timeout=15000)
    state = ring_pipeline.state
    start = state.features.oldest_timestamp()
    rows = [[0.2, 0.7, 0.1]] * 6 + [[0.55, 0.35, 0.10]] * 3  # six confident myopathy, then three unsure healthy
    attention = np.linspace(0, 1, 8, dtype=np.float32)
    with state.lock:
        for sequence, row in enumerate(rows):
            state.decisions.append(DecisionRecord(sequence, start + 0.05 * sequence, CLASSES[int(np.argmax(row))],
                                                  np.array(row, dtype=np.float32), CLASSES, attention, "test", 0.01,
                                                  0.002))
    view = window.classification
    view.votes_box.setValue(9)
    view.threshold_box.setValue(0.6)
    window.refresh(everything=True)
    assert window.view_errors == {}
    curves = view._curves()
    assert [c.name() for c in curves] == CLASSES
    assert all(len(c.xData) == len(rows) for c in curves)
    np.testing.assert_allclose(curves[-1].yData, 1.0, atol=1e-6)  # stacked bands reach 1
    assert view.label == "myopathy" and view.confidence == pytest.approx((6 * 0.7 + 3 * 0.35) / 9)
    assert view.call_label.text().startswith("myopathy")

    view.votes_box.setValue(3)  # only the three unsure rows vote: each under 0.6, so the call is withheld
    assert view.label == "uncertain" and "uncertain" in view.call_label.text()
    view.threshold_box.setValue(0.5)
    assert view.label == "healthy"

    view.style_box.setCurrentIndex(1)  # lines: raw probabilities, threshold shown
    np.testing.assert_allclose(view._curves()[1].yData, np.array(rows)[:, 1], atol=1e-6)
    assert view.threshold_line.isVisible()

    # electrodes: attention colours follow the model's attention, top channels named
    window.refresh(everything=True)
    colours = window.electrodes.attention_map.colours
    assert colours[0] != colours[-1] and len(set(colours)) > 4
    assert "drove the call: E08, E07, E06" in window.electrodes.summary.text()

    # another model takes over with other classes: its trend starts afresh rather than mixing the two
    with state.lock:
        for sequence in range(len(rows), len(rows) + 4):
            state.decisions.append(DecisionRecord(sequence, start + 0.05 * sequence, "rest", np.array([0.9, 0.1]),
                                                  ["rest", "active"], None, "other", 0.01, 0.002))
    window.refresh(everything=True)
    assert view.classes == ["rest", "active"] and view.probabilities.shape == (4, 2)
    assert [c.name() for c in view._curves()] == ["rest", "active"] and view.label == "rest"


def _compressing_emg(fs: float, n_channels: int, rest_s: float, contraction_s: float, seed: int = 4) -> np.ndarray:
    """Quiet rest, then a contraction whose noise band slides down linearly by 30 Hz (spectral compression)."""
    rng = np.random.default_rng(seed)
    chunks = [butter_noise(rng, fs, n_channels, (20.0, 400.0), rest_s, 3.0)]
    step_s = 0.5
    for index in range(int(contraction_s / step_s)):
        centre = 110.0 - 30.0 * index * step_s / contraction_s
        chunks.append(butter_noise(rng, fs, n_channels, (centre - 35.0, centre + 35.0), step_s, 150.0))
    return np.concatenate(chunks).astype(np.float32)


def butter_noise(rng, fs, n_channels, band, seconds, rms_uv):
    from scipy.signal import butter, sosfilt

    noise = sosfilt(butter(4, band, btype="bandpass", fs=fs, output="sos"),
                    rng.standard_normal((int(seconds * fs), n_channels)), axis=0)
    return noise / noise.std() * rms_uv


def test_fatigue_view_shows_the_trackers_trend_on_a_compressing_spectrum(qtbot, ring_stream):
    from monitor.gui.main_window import MainWindow
    from monitor.pipeline import MonitorPipeline
    from tests.gui.conftest import stop_pipeline

    pipeline = MonitorPipeline(ring_stream.resolve(), publish=False)  # not started: fed offline, same DSP path
    try:
        fs = pipeline.state.fs
        samples = _compressing_emg(fs, 8, rest_s=4.0, contraction_s=60.0)
        timestamps = 1000.0 + np.arange(len(samples)) / fs
        for first in range(0, len(samples), 2048):
            pipeline.engine.process(samples[first : first + 2048], timestamps[first : first + 2048], first)
        window = MainWindow(pipeline)
        qtbot.addWidget(window)
        window.refresh(everything=True)
    finally:
        stop_pipeline(pipeline)
    assert window.view_errors == {}
    view, status = window.fatigue, window.fatigue.status
    assert view.badge.text() == "fatigued"
    # truth: the band's centre falls 30 Hz in the minute, about 27 % of the starting MDF
    assert -40.0 < status.slope_hz_per_min < -20.0, status.slope_hz_per_min
    assert -35.0 < status.percent_change < -15.0, status.percent_change
    assert "Hz/min" in view.readout.text() and f"{status.percent_change:+.1f} %" in view.readout.text()
    assert len(view.contractions) == 1
    start, end = view.contractions[0]
    assert abs(start - (1000.0 + 4.0)) < 3.0 and abs(end - timestamps[-1]) < 1.0
    x, y = view.fit_curve.xData, view.fit_curve.yData
    assert y[0] == pytest.approx(status.baseline_hz)
    assert (y[1] - y[0]) / (x[1] - x[0]) == pytest.approx(status.slope_hz_per_min)  # Hz per session minute
    # the MDF trend drawn falls with the truth too: first vs last 10 s of the contraction
    minutes, mdf = view.mdf_curve.xData, view.mdf_curve.yData
    contraction = minutes * 60 > (start - window.session_origin())
    early, late = mdf[contraction][:10].mean(), mdf[contraction][-10:].mean()
    assert 20.0 < early - late < 40.0, (early, late)
    fins = view.fins_curve.yData[contraction]  # FInsm5 rises as the spectrum compresses (tracker: about +200 %)
    assert np.nanmean(fins[-10:]) > 1.5 * np.nanmean(fins[:10])
    at_rest = minutes * 60 < (1003.0 - window.session_origin())
    assert at_rest.sum() >= 2 and np.isnan(mdf[at_rest]).all()  # the rest's noise floor is not drawn as a trend
    assert np.isfinite(view.mdf_rest_curve.yData[: at_rest.sum()]).all()  # ...except as the dim full trace


def test_vanished_stream_shows_signal_lost_and_resumes(qtbot, window, ring_pipeline, ring_stream):
    qtbot.waitUntil(lambda: ring_pipeline.engine.filtered.total_written > 1024, timeout=15000)
    qtbot.waitUntil(lambda: not window.banner.isVisibleTo(window), timeout=2000)  # the next frame clears it
    ring_stream.vanish()
    qtbot.waitUntil(lambda: window.signal_lost_shown, timeout=5000)
    assert ring_pipeline.state.stream_name in window.banner.text()
    window.refresh(everything=True)
    assert "signal lost" in window.status.fields["signal"].text()
    written = ring_pipeline.acquisition.buffer.total_written
    ring_stream.start()  # the amplifier comes back under the same source_id
    qtbot.waitUntil(lambda: not window.signal_lost_shown, timeout=20000)
    qtbot.waitUntil(lambda: ring_pipeline.acquisition.buffer.total_written > written + 1024, timeout=5000)


def test_controls_change_the_pipeline_settings(qtbot, window, ring_pipeline):
    status, settings = window.status, ring_pipeline.engine.settings
    assert settings.mains_hz == 50.0
    status.mains_box.setCurrentIndex(2)
    assert settings.mains_hz == 60.0
    status.mains_box.setCurrentIndex(0)
    assert settings.mains_hz is None

    status.low_box.setValue(30.0)
    status.high_box.setValue(350.0)
    status.window_box.setValue(250.0)
    status.hop_box.setValue(25.0)
    assert status.apply_settings()
    assert (settings.low_hz, settings.high_hz, settings.window_ms, settings.hop_ms) == (30.0, 350.0, 250.0, 25.0)
    assert ring_pipeline.engine.windower.window_samples == round(0.25 * 2048)

    status.low_box.setValue(400.0)
    status.high_box.setValue(300.0)
    assert not status.apply_settings()
    assert settings.low_hz == 30.0 and "low edge" in status.error_label.text()

    with qtbot.waitSignal(window.marker_added, timeout=1000) as marker:
        status.marker_edit.setText("start 50% MVC")
        status.marker_button.click()
    assert marker.args[1] == "start 50% MVC"
    assert window.traces.markers[-1] == (marker.args[0], "start 50% MVC")
    with qtbot.waitSignal(window.recording_toggled, timeout=1000) as recording:
        status.record_button.click()
    assert recording.args == [True] and status.record_button.text() == "stop recording"
    window.set_recording_state("recording to session.xdf")
    window.refresh(everything=True)
    assert window.status.fields["recording"].text() == "recording to session.xdf"


def test_freeze_keeps_the_traces_still(qtbot, window, ring_pipeline):
    qtbot.waitUntil(lambda: _has_traces(window), timeout=15000)
    window.traces.freeze_check.setChecked(True)
    frozen = window.traces.curve.yData.copy()
    written = ring_pipeline.engine.filtered.total_written
    qtbot.waitUntil(lambda: ring_pipeline.engine.filtered.total_written > written + 512, timeout=5000)
    window.traces.refresh()
    np.testing.assert_array_equal(window.traces.curve.yData, frozen)
    window.traces.freeze_check.setChecked(False)
    window.traces.refresh()
    assert not np.array_equal(window.traces.curve.yData, frozen)


def test_record_button_and_markers_reach_the_session(qtbot, window, ring_pipeline):
    from monitor.errors import UserError

    ring_pipeline.state.recording = "ward3-bed2.xdf"  # what the session sets for --record
    window.status.refresh()
    assert window.status.fields["recording"].text() == "recording to ward3-bed2.xdf"
    ring_pipeline.state.recording = None

    calls, markers = [], []

    def recorder(on: bool) -> str:
        calls.append(on)
        if on and len(calls) == 3:
            raise UserError("disk full")
        return "recording to session.xdf" if on else "saved session.xdf"

    window.connect_session(on_recording=recorder, on_marker=lambda t, text: markers.append((t, text)))
    button, field = window.status.record_button, window.status.fields["recording"]
    button.click()
    assert calls == [True] and field.text() == "recording to session.xdf" and button.isChecked()
    button.click()
    assert calls == [True, False] and field.text() == "saved session.xdf" and not button.isChecked()
    button.click()  # the recorder refuses: the error shows and the button springs back
    assert calls == [True, False, True] and "disk full" in field.text()
    assert not button.isChecked() and button.text() == "start recording"
    window.status.marker_edit.setText("needle in")
    window.status.marker_edit.returnPressed.emit()
    assert [text for _, text in markers] == ["needle in"]


def test_clicking_an_electrode_shows_its_spectrum_and_keys_freeze_and_mark(qtbot, window, ring_pipeline):
    from PyQt6 import QtCore

    qtbot.waitUntil(lambda: ring_pipeline.engine.filtered.total_written > 1024, timeout=15000)
    qtbot.wait(100)
    electrode_map = window.electrodes.quality_map
    x, y = electrode_map.positions[4]
    scene_point = electrode_map.plotItem.vb.mapViewToScene(QtCore.QPointF(x, y))
    qtbot.mouseClick(electrode_map.viewport(), QtCore.Qt.MouseButton.LeftButton,
                     pos=electrode_map.mapFromScene(scene_point))
    assert window.spectrum.channel_box.currentText() == "E05"

    window.activateWindow()
    window.setFocus()
    qtbot.keyClick(window, QtCore.Qt.Key.Key_Space)
    assert window.traces.frozen
    with qtbot.waitSignal(window.marker_added, timeout=1000) as marker:
        qtbot.keyClick(window, QtCore.Qt.Key.Key_M)
    assert marker.args[1] == "marker"


def test_a_stream_that_has_not_started_is_waited_for_not_lost(qtbot):
    """A stream found on the network but not yet sending: the banner says so, then clears at the first samples."""
    from monitor.gui.main_window import MainWindow
    from monitor.pipeline import MonitorPipeline
    from simulators.amplifier import Amplifier
    from simulators.electrodes import ElectrodeLayout
    from tests.gui.conftest import stop_pipeline
    from tests.gui.streams import BandNoiseSource, LiveStream

    stream = LiveStream(BandNoiseSource(ElectrodeLayout.ring(8)), name="gui-late")
    amplifier = Amplifier(stream.source, name=stream.name, source_id=stream.source_id)  # an outlet, no samples yet
    pipeline = MonitorPipeline(stream.resolve(), publish=False)
    pipeline.start()
    try:
        window = MainWindow(pipeline)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitUntil(lambda: window.banner.isVisibleTo(window), timeout=3000)
        assert window.banner.text().startswith("Waiting for the first samples") and not window.signal_lost_shown
        stop = threading.Event()
        feeder = threading.Thread(target=amplifier.run, kwargs={"stop_event": stop}, daemon=True)
        feeder.start()
        qtbot.waitUntil(lambda: not window.banner.isVisibleTo(window), timeout=15000)
        stop.set()
        feeder.join(timeout=5)
    finally:
        stop_pipeline(pipeline)
