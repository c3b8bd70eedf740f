"""What a clinician reads in the window: keys beside the plots (not over the data), no band where there is no
condition, the caveat beside each model's verdict, labels off the electrodes, readouts without absurd precision.
Widgets offscreen, no stream, no model: well under a second each."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PyQt6 import QtWidgets

from monitor.pipeline import DecisionRecord, MonitorState, MuscleState, verdict
from simulators.electrodes import ElectrodeLayout

CLASSES = ["healthy", "myopathy", "neuropathy"]
MYOPATHY = np.array([0.02, 0.95, 0.03])


def _condition_view(qtbot, model_id: str, muscles: list[MuscleState]):
    from monitor.gui.classification import ClassificationView

    state = MonitorState()
    view = ClassificationView(SimpleNamespace(state=state), lambda: 10.0)
    qtbot.addWidget(view)
    with state.lock:
        for sequence, muscle in enumerate(muscles):
            state.decisions.append(DecisionRecord(
                sequence, 10.0 + 0.05 * sequence, verdict("myopathy", muscle), MYOPATHY, CLASSES, None, model_id,
                0.01, 0.002, muscle=muscle))  # fmt: skip
    view.refresh()
    return view


def test_condition_trend_has_its_key_above_the_plot_and_no_band_at_rest(qtbot):
    muscles = [MuscleState.CONTRACTING] * 20 + [MuscleState.RELAXED] * 20 + [MuscleState.CONTRACTING] * 20
    view = _condition_view(qtbot, "some-model", muscles)
    assert view.plot.plotItem.legend is None  # a legend inside the plot covered the bands
    key = view.key_label.text()
    assert all(name in key for name in CLASSES) and "gaps" in key
    top = view._curves()[-1].yData
    # the relaxed muscle's "myopathy 95 %" is no condition: a gap, as the call says "rest"
    assert np.isnan(top[20:40]).all() and np.isfinite(top[:20]).all() and np.isfinite(top[40:]).all()


def test_the_reason_for_no_condition_is_in_small_type_after_the_call(qtbot):
    from monitor.pipeline import SPONTANEOUS_LABEL

    view = _condition_view(qtbot, "needle-statistics-emg-clinical-v2", [MuscleState.RELAXED] * 20)
    view.withheld.clear()
    view.withheld.extend([SPONTANEOUS_LABEL] * 20)
    view.refresh()
    text = view.call_label.text()
    assert text.startswith(SPONTANEOUS_LABEL) and 'font-size: 10pt' in text.split(SPONTANEOUS_LABEL, 1)[1]
    view.resize(560, 380)
    view.show()
    qtbot.waitExposed(view)
    assert view.call_label.height() < 80  # one line of 20 pt and its reason, not three lines of 20 pt


def test_no_model_is_said_in_plain_type_without_a_threshold_line(qtbot):
    from monitor.gui.classification import NO_CALL_STYLE, ClassificationView

    state = MonitorState()
    state.model_status = "no model for this layout (256 ch grid16x16)"
    view = ClassificationView(SimpleNamespace(state=state), lambda: 10.0)
    qtbot.addWidget(view)
    view.refresh()
    assert view.call_label.text() == state.model_status and view.call_label.styleSheet() == NO_CALL_STYLE
    assert not view.threshold_line.isVisible()  # stacked bands: no dotted line across an empty plot


def test_each_models_caveat_is_shown_beside_its_verdict(qtbot):
    from models.model_card import SIMULATED_ONLY_NOTE
    from monitor.gui.classification import NEEDLE_NOTE

    card = json.loads(Path("models/weights/default.card.json").read_text())
    surface = _condition_view(qtbot, card["model_id"], [MuscleState.CONTRACTING] * 5)
    assert surface.provenance_label.isVisibleTo(surface) and surface.provenance_label.text() == SIMULATED_ONLY_NOTE
    needle = _condition_view(qtbot, "needle-statistics-emg-clinical-v2", [MuscleState.RELAXED] * 5)
    assert needle.provenance_label.isVisibleTo(needle) and "not a diagnosis" in needle.provenance_label.text()
    assert needle.provenance_label.text() == NEEDLE_NOTE
    other = _condition_view(qtbot, "a-lab-model", [MuscleState.CONTRACTING] * 5)
    assert not other.provenance_label.isVisibleTo(other)


def test_needle_panel_says_decision_support_not_a_diagnosis(qtbot):
    from dsp.ringbuffer import RingBuffer
    from monitor.decision_history import DecisionRing
    from monitor.gui.needle import NeedleView

    fs = 10_000.0
    state = SimpleNamespace(lock=threading.RLock(), fs=fs, layout={"kind": "needle"}, n_channels=1,
                            channel_labels=["needle"], decisions=DecisionRing(8))
    view = NeedleView(SimpleNamespace(state=state, acquisition=SimpleNamespace(buffer=RingBuffer(int(fs), 1))),
                      window_s=5.0, interval_s=60.0)
    view.stop()
    qtbot.addWidget(view)
    assert view.caveat_label.isVisibleTo(view) and "not a diagnosis" in view.caveat_label.text()


def test_fatigue_key_above_the_plot_and_readouts_without_absurd_precision(qtbot):
    from monitor.gui.endurance import EnduranceForecast
    from monitor.gui.fatigue import FatigueView, dash_number

    state = MonitorState()
    pipeline = SimpleNamespace(state=state, engine=SimpleNamespace())
    view = FatigueView(pipeline, lambda: 0.0, forecast=EnduranceForecast(lambda: None, background=False))
    qtbot.addWidget(view)
    view.history.latest = np.array([90.0, 80.0, 42.0, 3.83e-15])  # FInsm5 in SI units, as the engine gives it
    view.refresh()
    assert view.frequency_plot.plotItem.legend is None
    assert all(name in view.key_label.text() for name in ("MNF", "MDF", "MDF trend", "MDF forecast"))
    readout = view.readout_more.text()
    assert "e-15" not in readout and "RMS 42 µV" in readout
    assert dash_number(-0.2, "+.0f", " %") == "0 %" and dash_number(-0.04, "+.1f", " %") == "0.0 %"
    assert dash_number(-3.0, "+.0f", " %") == "-3 %" and dash_number(None, ".0f") == "—"
    # squeezed under a needle panel, each plot stays as tall as its axis label: nothing cut off
    view.resize(450, 200)
    view.show()
    qtbot.waitExposed(view)
    for plot in (view.frequency_plot, view.rms_plot, view.fins_plot):
        axis = plot.getAxis("left")
        assert axis.label.boundingRect().width() <= axis.height(), axis.labelText
        assert "color: #c8c8c8" in axis.labelString()  # light on the dark plot (a bare size made it near black)


def test_endurance_band_beyond_the_horizon_is_said_once():
    from monitor.gui.endurance import EnduranceForecast

    forecast = EnduranceForecast(lambda: None, background=False)
    forecast.estimator = SimpleNamespace(drop_pct=15.0)
    forecast.state = "forecast"
    forecast.estimate = {"horizon_s": 120.0, "seconds": None, "earliest_s": None, "latest_s": None}
    assert forecast.text() == "endurance left >120 s  (90 %: >120 s, to MDF -15 %)"
    forecast.estimate = {"horizon_s": 120.0, "seconds": 80.0, "earliest_s": 50.0, "latest_s": None}
    assert forecast.text() == "endurance left 80 s  (90 %: 50 s–>120 s, to MDF -15 %)"


def test_ring_labels_lie_outside_the_electrodes(qtbot):
    from monitor.gui.electrodes import ElectrodeMap, electrode_spacing_mm

    layout = ElectrodeLayout.ring(8)
    electrode_map = ElectrodeMap(layout, "signal quality")
    qtbot.addWidget(electrode_map)
    positions = np.asarray(layout.positions_mm, dtype=float)
    radius = np.linalg.norm(positions, axis=1).max()
    size = 0.85 * electrode_spacing_mm(positions)
    label_radii = [np.hypot(label.pos().x(), label.pos().y()) for label in electrode_map.labels]
    assert len(label_radii) == 8 and min(label_radii) > radius + size / 2  # under each one they fell on its neighbour


def test_attention_map_says_when_there_is_no_attention_to_show(qtbot):
    from monitor.gui.electrodes import (
        ATTENTION_TITLE,
        NO_ATTENTION_FROM_MODEL_TITLE,
        NO_ATTENTION_TITLE,
        ElectrodesView,
    )
    from tests.gui.test_view_drawing import FakeState

    layout = ElectrodeLayout.grid(8, 8)
    state = FakeState(layout.to_dict(), 64, list(layout.labels))
    view = ElectrodesView(SimpleNamespace(state=state))
    qtbot.addWidget(view)
    view.refresh()  # no model for the layout: grey electrodes, and the title says why
    assert view.attention_map.plotItem.titleLabel.text == NO_ATTENTION_TITLE
    state.decisions.record = SimpleNamespace(channel_attention=None, muscle=MuscleState.CONTRACTING, label="healthy")
    view.refresh()  # a model whose decisions carry no attention (the needle model): not "no decision yet"
    assert view.attention_map.plotItem.titleLabel.text == NO_ATTENTION_FROM_MODEL_TITLE
    state.decisions.record = SimpleNamespace(channel_attention=np.linspace(0, 1, 64), muscle=MuscleState.CONTRACTING,
                                             label="healthy")
    view.refresh()
    assert view.attention_map.plotItem.titleLabel.text == ATTENTION_TITLE


def test_a_decomposing_session_shows_the_motor_unit_panel_without_pressing_u(qtbot, grid_pipeline):
    """With --decompose the units are shown (and in a snapshot, where nobody can press U); U still hides them."""
    from monitor.gui.main_window import MainWindow

    window = MainWindow(grid_pipeline)
    qtbot.addWidget(window)
    window.refresh(everything=True)
    assert window.decomposition is None  # a grid that does not decompose: the dock waits for U
    grid_pipeline.decomposition = SimpleNamespace(status=SimpleNamespace(message="calibrating on 5 s"),
                                                  found_again_units=[], n_units=0, unit_ids=[], channels=[])
    window.refresh(everything=True)
    assert window.decomposition is not None and window._decomposition_dock.isVisibleTo(window)
    panel = window.decomposition
    assert panel.status_label.text() == "calibrating on 5 s"
    # no unit yet: the empty lines give their height to the plots; the time axes say what they count
    assert not any(label.isVisibleTo(panel) for label in (panel.found_again_label, panel.rates_label,
                                                           panel.units_file_label, panel.thresholds_label))
    assert panel.raster.getAxis("bottom").labelText == panel.rates.getAxis("bottom").labelText == "time (s)"
    panel.muap_map = lambda counters: np.linspace(20.0, 317.0, 64)  # the MUAP map is scaled to its own range
    panel._draw_muap(0, [1, 2, 3])
    assert panel.muap_label.text() == "unit 0: peak-to-peak 20 µV (dark) to 317 µV (bright)"
    window.toggle_decomposition()
    window.refresh(everything=True)
    assert not window._decomposition_dock.isVisibleTo(window)


def test_masked_lanes_are_marked_and_a_session_without_a_model_says_so(qtbot, ring_pipeline):
    """The dead electrode's lane (tests/gui/conftest.py: channel 2 reads NaN) is a flat line that looks like a quiet
    muscle: its label is crossed as on the electrode map. With no worker the condition view says none runs."""
    from monitor.gui.classification import ClassificationView
    from monitor.gui.traces import TracesView
    from tests.gui.conftest import DEAD_CHANNEL, wait_for

    traces = TracesView(ring_pipeline)
    qtbot.addWidget(traces)

    def masked() -> bool:
        traces.refresh()
        return traces.lane_labels[DEAD_CHANNEL].startswith("✕")

    assert wait_for(masked, 10.0)
    assert sum(label.startswith("✕") for label in traces.lane_labels) == 1
    condition = ClassificationView(ring_pipeline, lambda: 0.0)
    qtbot.addWidget(condition)
    condition.refresh()
    assert condition.call_label.text().startswith("no condition model running")


def test_mnf_and_mdf_names_sit_on_either_side_of_their_lines(qtbot):
    from monitor.gui.spectrum import SpectrumView

    state = MonitorState()
    state.channel_labels = ["E01"]
    view = SpectrumView(SimpleNamespace(state=state))
    qtbot.addWidget(view)
    # MDF (lower) named left of its line, MNF right of its own: a few Hz apart, the names stacked on the lines
    assert view.mdf_line.label.anchor.x() > 0.5 > view.mnf_line.label.anchor.x()
    # on a needle's 16 kHz axis an MDF of 140 Hz has no room on its left: its name goes right, below MNF's
    view._x_high, view.mdf_hz = 16384.0, 140.0
    view._place_mdf_name()
    assert view.mdf_line.label.anchor.x() < 0.5 and view.mdf_line.label.orthoPos < view.mnf_line.label.orthoPos


def test_lane_labels_thin_out_when_the_lanes_get_thin(qtbot, grid_pipeline):
    """64 lanes squeezed to ~200 px (the motor-unit dock open): 32 labels ran into one smear; as many as fit now."""
    from monitor.gui.traces import LABEL_PIXELS, TracesView

    traces = TracesView(grid_pipeline)
    qtbot.addWidget(traces)
    traces.resize(800, 900)
    traces.show()
    qtbot.waitExposed(traces)
    traces.refresh()

    def labelled() -> int:
        return sum(bool(text) for _, text in traces.plot.getAxis("left")._tickLevels[0])

    assert labelled() == 32
    traces.resize(800, 240)
    QtWidgets.QApplication.processEvents()
    traces.refresh()
    height = traces.plot.plotItem.vb.height()
    assert 0 < labelled() <= height / LABEL_PIXELS


def test_needle_counts_agree_with_their_noun():
    from monitor.gui.needle import _count

    assert _count(1, "motor unit") == "1 motor unit"
    assert _count(3, "unit") == "3 units" and _count(0, "unit") == "0 units"
