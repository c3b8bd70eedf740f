"""The needle-EMG panel on a live needle stream: real LSL outlet fed by the simulator, real pipeline, real widget
rendered offscreen, checked against the offline `neurofusion analyze --mode needle` of the very samples it analysed."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from monitor.needle_live import LiveNeedleAnalysis
from monitor.pipeline import DecisionRecord
from simulators.emg import EmgSimulator, SimulationConfig
from tests.gui.conftest import start_pipeline, stop_pipeline
from tests.gui.streams import LiveStream
from tests.needle_subjects import EFFORT, FS

WINDOW_S = 5.0
CLASSES = ["healthy", "myopathy", "neuropathy"]


def _config(condition: str, seed: int) -> SimulationConfig:
    return SimulationConfig(layout="needle", fs=FS, condition=condition, profile="hold",
                            mvc_percent=EFFORT[condition], seed=seed, fatigue_rate=0.0)


@pytest.fixture
def needle_pipeline():
    stream = LiveStream(EmgSimulator(_config("neuropathy", 4)), name="gui-needle").start()
    pipeline = start_pipeline(stream)
    yield pipeline
    stop_pipeline(pipeline)
    stream.vanish()


def _offline(data: np.ndarray, tmp_path) -> dict:
    recording = tmp_path / "analysed.npz"
    np.savez(recording, data=data, fs=np.float64(FS))
    out = tmp_path / "report"
    done = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "analyze", str(recording), "--mode", "needle", "--no-model",
         "--no-figures", "--quiet", "--out", str(out)],
        capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return json.loads((out / "needle.json").read_text())


def test_panel_shows_the_offline_reading_and_neurogenic_flags_beside_the_network(qtbot, needle_pipeline, tmp_path):
    from monitor.gui.main_window import MainWindow
    from monitor.gui.needle import NeedleView

    window = MainWindow(needle_pipeline)  # a needle stream gets the panel without being asked
    qtbot.addWidget(window)
    assert window.needle is not None
    # at the snapshot's size the MUP overlay and its table keep room to be read (they had ~90 px under the trends)
    window.resize(1600, 1000)
    window.show()
    qtbot.waitExposed(window)
    assert window.needle.plot.height() >= 150 and window.needle.table.height() >= 150
    assert all(plot.height() >= plot.minimumHeight() for plot in (window.fatigue.frequency_plot,
                                                                  window.fatigue.rms_plot, window.fatigue.fins_plot))
    window.close()

    view = NeedleView(needle_pipeline, window_s=WINDOW_S, interval_s=1.0)
    qtbot.addWidget(view)
    view.resize(1000, 600)
    view.show()
    qtbot.waitUntil(lambda: view.analysis.latest is not None and view.analysis.latest.report is not None,
                    timeout=30000)
    snapshot = view.analysis.latest
    # the network's decisions over the same samples (the bundled model has no needle classes: its output is given)
    with needle_pipeline.state.lock:
        for sequence, fraction in enumerate((0.3, 0.7)):
            when = snapshot.first_timestamp + fraction * (snapshot.last_timestamp - snapshot.first_timestamp)
            needle_pipeline.state.decisions.append(DecisionRecord(
                sequence, when, "neuropathy", np.array([0.1, 0.1, 0.8]) if sequence else np.array([0.3, 0.1, 0.6]),
                CLASSES, None, "test", 0.01, 0.001))
    view.refresh()
    assert view.snapshot is snapshot

    # the exact samples analysed: the simulator's own, untouched by the live filters
    block = needle_pipeline.acquisition.buffer.read_from(snapshot.first_counter,
                                                         snapshot.end_counter - snapshot.first_counter)
    assert block.data.shape == (int(WINDOW_S * FS), 1)
    truth = EmgSimulator(_config("neuropathy", 4)).generate(30.0)[:, 0]
    start = int(np.flatnonzero(truth == block.data[0, 0])[0])
    np.testing.assert_array_equal(truth[start : start + block.data.shape[0]], block.data[:, 0])

    offline = _offline(block.data, tmp_path)
    assert view.n_units == len(offline["units"]) >= 1
    assert view.reading == offline["reading"]["label"] == "neurogenic"
    assert view.reading_label.text().startswith("neurogenic")
    # one template curve per unit, one table row per unit plus the mean
    assert len(view._curves) == view.n_units
    assert view.table.rowCount() == view.n_units + 1
    assert view.table.verticalHeaderItem(view.n_units).text() == "mean"
    offline_amplitudes = sorted(u["measures"]["amplitude_uv"] for u in offline["units"])
    shown = sorted(float(view.table.item(row, 1).text().split()[0]) for row in range(view.n_units))
    np.testing.assert_allclose(shown, offline_amplitudes, atol=0.6)  # shown to the µV
    # neurogenic flags: long MUPs, mean above the range, marked and coloured
    assert view.flags[-1]["duration_ms"] == offline["summary"]["mean_flags"]["duration_ms"] == "high"
    assert view.table.item(view.n_units, 2).text().endswith("↑")
    assert any(flags.get("duration_ms") == "high" for flags in view.flags[:-1])
    assert not any("low" in flags.values() for flags in view.flags)
    # beside the network: mean of the two decisions, and the agreement
    network = view.network_label.text()
    assert "neuropathy 70%" in network and "(mean of 2 verdicts on the newest 5 s each; test)" in network
    assert view.agreement["agree"] is True and view.agreement["network_class"] == "neuropathy"
    assert view.agreement_label.text().startswith("agree")
    assert view.grab().width() > 0  # it draws offscreen

    # the needle model's own rolling verdicts on this stream (what `monitor` runs on a needle stream) take the
    # network's place beside the next reading, named, with the agreement worked out on them
    from monitor.needle_live import LiveNeedleVerdicts
    from monitor.recordings.needle import load_condition_model

    model = load_condition_model(None)
    if model is None:
        return
    verdicts = LiveNeedleVerdicts(needle_pipeline, model).start()
    try:
        def shows_model() -> bool:
            view.refresh()
            return verdicts.errors > 0 or (view.model_id == model.model_id and view.agreement is not None)

        qtbot.waitUntil(shows_model, timeout=60000)
    finally:
        verdicts.stop()
    assert verdicts.errors == 0, verdicts.last_error
    assert verdicts.published >= 1
    assert f"; {model.model_id})" in view.network_label.text()
    probabilities, count = view._network_probabilities(view.snapshot)
    assert count >= 1 and set(probabilities) == {"healthy", "myopathy", "neuropathy"}
    assert view.agreement["network_class"] == max(probabilities, key=probabilities.get)
    assert view.agreement_label.text().startswith("agree" if view.agreement["agree"] else "disagree")


def test_background_analysis_follows_the_selected_channel_and_reports_bad_samples():
    from dsp.ringbuffer import RingBuffer

    data = EmgSimulator(_config("myopathy", 1)).generate(4.0)[:, 0]
    buffer = RingBuffer(int(10 * FS), 2)
    samples = np.column_stack([data, np.full_like(data, np.nan)])  # channel 2: electrode off
    buffer.write(samples, np.arange(data.size) / FS)
    analysis = LiveNeedleAnalysis(buffer, FS, channel=0, window_s=4.0, interval_s=0.05).start()
    try:
        deadline = time.monotonic() + 30
        while analysis.latest is None and time.monotonic() < deadline:
            time.sleep(0.05)
        first = analysis.latest
        assert first is not None and first.error is None and first.channel == 0
        assert first.report.reading.label == "myopathic"
        assert (first.first_counter, first.end_counter) == (0, data.size)
        # `monitor --muscle biceps`: the live reading uses the biceps reference values, as `analyze --muscle`
        analysis.muscle = "biceps"
        with_muscle = analysis.analyse_now()
        assert with_muscle.report.reference.muscle == "biceps" and with_muscle.report.muscle == "biceps"
        assert first.report.reference is None  # no muscle: the generic reference
        analysis.select_channel(1)
        second = analysis.analyse_now()
        assert second.channel == 1 and second.report is None and "NaN" in second.error
        assert second.sequence > first.sequence
        with pytest.raises(ValueError, match="channel 2 does not exist"):
            analysis.select_channel(2)
    finally:
        analysis.stop()
    assert analysis._thread is not None and not analysis._thread.is_alive()
