"""The dashboard window: the six views around the live traces, a "signal lost" banner, one timer driving them all.

The timer ticks at ~30 Hz. The traces redraw every tick; the spectrum and the slower trends redraw every few ticks,
since a clinician cannot read them faster and the CPU is shared with the DSP and the model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pyqtgraph as pg
from PyQt6 import QtCore, QtGui, QtWidgets

from monitor.acquisition import channel_count_text, signal_status
from monitor.errors import UserError
from monitor.gui import decomposition as decomposition_view
from monitor.gui import needle as needle_view
from monitor.gui.classification import ClassificationView
from monitor.gui.electrodes import ElectrodesView
from monitor.gui.fatigue import FatigueView
from monitor.gui.spectrum import SpectrumView
from monitor.gui.status import StatusView
from monitor.gui.traces import TracesView

log = logging.getLogger(__name__)

FRAME_INTERVAL_MS = 33
#: redraw every N ticks, per view
EVERY_TICKS = {"spectrum": 6, "classification": 8, "fatigue": 8, "electrodes": 8, "status": 8}
#: on which tick of its period each view redraws: the slow views never share a frame (spectrum on even ticks, the
#: others on odd ones, one each), so no frame carries all of them and overruns the 33 ms (at 256 channels the
#: spectrum alone is 7-22 ms of CPU; together they cost a missed frame every 24 ticks, 28.5 frames/s)
PHASE_TICKS = {"spectrum": 0, "classification": 1, "fatigue": 3, "electrodes": 5, "status": 7}
#: heights of the traces, the trends and the needle panel in a needle window (px, scaled to the window)
NEEDLE_SPLIT = (170, 400, 430)
NEEDLE_EVERY_TICKS = 15  # the needle panel only redraws when its background analysis (every few s) has news
DECOMPOSITION_EVERY_TICKS = 3  # the motor-unit raster at ~10 Hz
BANNER_LOST = "background: rgb(200, 40, 40); color: white; font-size: 14pt; font-weight: bold; padding: 6px;"
BANNER_WAITING = "background: rgb(90, 90, 100); color: white; font-size: 14pt; padding: 6px;"

pg.setConfigOptions(antialias=False, background=(18, 18, 22), foreground=(200, 200, 200))


class MainWindow(QtWidgets.QMainWindow):
    """All views of one pipeline. ``recording_toggled(bool)`` and ``marker_added(float, str)`` are for the session."""

    recording_toggled = QtCore.pyqtSignal(bool)
    marker_added = QtCore.pyqtSignal(float, str)

    def __init__(
        self, pipeline: Any, parent: QtWidgets.QWidget | None = None, adaptation: Any | None = None
    ) -> None:
        super().__init__(parent)
        self.pipeline = pipeline
        self.ticks = 0
        self.view_errors: dict[str, str] = {}
        self._origin: float | None = None
        state = pipeline.state
        channels = channel_count_text(state.n_channels, getattr(state, "emg_channels", None))
        self.setWindowTitle(f"NeuroFusion Monitor — {state.stream_name} ({channels} @ {state.fs:g} Hz)")

        self.banner = QtWidgets.QLabel("")
        self.banner.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.banner.setStyleSheet(BANNER_LOST)
        self.banner.setVisible(False)
        self.traces = TracesView(pipeline)
        self.spectrum = SpectrumView(pipeline)
        self.classification = ClassificationView(pipeline, self.session_origin)
        self.fatigue = FatigueView(pipeline, self.session_origin)
        self.electrodes = ElectrodesView(pipeline)
        self.status = StatusView(pipeline)
        self.status.recording_toggled.connect(self.recording_toggled)
        self.status.marker_requested.connect(self._add_marker)
        self.electrodes.channel_selected.connect(self.spectrum.select_channel)
        # keys a clinician uses without looking away from the patient: space freezes, M marks, R records
        for key, action in (("Space", self.traces.freeze_check.toggle), ("M", self.status.add_marker),
                            ("R", self.status.record_button.click)):
            shortcut = QtGui.QShortcut(QtGui.QKeySequence(key), self)
            shortcut.activated.connect(action)

        trends = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        trends.addWidget(self.classification)
        trends.addWidget(self.fatigue)
        left = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        left.addWidget(self.traces)
        left.addWidget(trends)
        left.setSizes([600, 400])
        right = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        right.addWidget(self.electrodes)
        right.addWidget(self.spectrum)
        right.addWidget(self.status)
        right.setSizes([280, 280, 440])
        self.needle = None
        if needle_view.wanted(state, pipeline.engine.settings.mode):
            self.needle = needle_view.NeedleView(pipeline)  # MUPs and their reading beside the network's verdict
            left.addWidget(self.needle)
            # one channel needs no tall lane; the MUP overlay and its table are what the electromyographer reads
            # (left to the splitter, they got ~90 px under the trends)
            left.setSizes(list(NEEDLE_SPLIT))
        self.decomposition = None  # motor-unit panel: U opens it on a grid stream (monitor/gui/decomposition.py)
        self._decomposition_dock: QtWidgets.QDockWidget | None = None
        if decomposition_view.wanted(state):
            shortcut = QtGui.QShortcut(QtGui.QKeySequence("U"), self)
            shortcut.activated.connect(self.toggle_decomposition)
        self.adaptation = None
        if adaptation is not None:  # label the live signal, adapt the model, hot-swap it (monitor/adaptation)
            from monitor.gui.adaptation import AdaptationPanel

            self.adaptation = AdaptationPanel(adaptation)
            right.addWidget(self.adaptation)
        body = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        body.addWidget(left)
        body.addWidget(right)
        body.setSizes([1000, 600])
        central = QtWidgets.QWidget()
        column = QtWidgets.QVBoxLayout(central)
        column.setContentsMargins(2, 2, 2, 2)
        column.addWidget(self.banner)
        column.addWidget(body, 1)
        self.setCentralWidget(central)

        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(FRAME_INTERVAL_MS)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()

    def views(self) -> dict[str, QtWidgets.QWidget]:
        return {
            "traces": self.traces, "spectrum": self.spectrum, "classification": self.classification,
            "fatigue": self.fatigue, "electrodes": self.electrodes, "status": self.status,
        }

    def view_regions(self) -> dict[str, QtCore.QRect]:
        """Each view's rectangle in window coordinates (what a snapshot of this window shows where)."""
        origin = QtCore.QPoint(0, 0)
        return {name: QtCore.QRect(view.mapTo(self, origin), view.size()) for name, view in self.views().items()}

    def session_origin(self) -> float:
        """LSL time the trend views count session minutes from: the first window this window saw."""
        if self._origin is None:
            state = self.pipeline.state
            with state.lock:
                first = state.features.oldest_timestamp()
                if first is None:
                    first = state.decisions.oldest_timestamp()
            if first is None:
                return 0.0
            self._origin = float(first)
        return self._origin

    def refresh(self, everything: bool = False) -> None:
        """One frame. ``everything`` redraws the slow views too (snapshots, tests)."""
        self.ticks += 1
        self._update_banner()
        self._refresh_view("traces")
        for name, every in EVERY_TICKS.items():
            if everything or self.ticks % every == PHASE_TICKS[name]:
                self._refresh_view(name)
        if self.needle is not None and (everything or self.ticks % NEEDLE_EVERY_TICKS == 0):
            self._refresh_view("needle")
        if self._decomposition_dock is None and self._session_decomposes():
            # the session decomposes (--decompose, or a core whose status carries units): its units are shown
            # without U, which no snapshot can press; once only, so a user who closes the panel keeps it closed
            self.toggle_decomposition()
        dock = self._decomposition_dock
        if dock is not None and dock.isVisibleTo(self) and (everything or self.ticks % DECOMPOSITION_EVERY_TICKS == 0):
            self._refresh_view("decomposition")

    def _session_decomposes(self) -> bool:
        """Whether motor units are being decomposed already: a core's (a view's ``pipeline.decomposition``) or the
        in-process session's service (``pipeline.decomposition_host``, started by --decompose)."""
        if getattr(self.pipeline, "decomposition", None) is not None:
            return True
        host = getattr(self.pipeline, "decomposition_host", None)
        return host is not None and getattr(host, "service", None) is not None

    def toggle_decomposition(self) -> None:
        """Shows or hides the motor-unit panel in a dock; the first time creates it, its discharge outlet with it."""
        if self._decomposition_dock is None:
            self.decomposition = decomposition_view.DecompositionPanel(self.pipeline)
            self._decomposition_dock = QtWidgets.QDockWidget("Motor units", self)
            self._decomposition_dock.setWidget(self.decomposition)
            self.addDockWidget(QtCore.Qt.DockWidgetArea.BottomDockWidgetArea, self._decomposition_dock)
            # a third of the height: left to its size hint the dock took half, squeezing the traces to a strip
            self.resizeDocks([self._decomposition_dock], [max(200, self.height() // 3)],
                             QtCore.Qt.Orientation.Vertical)
            return
        self._decomposition_dock.setVisible(not self._decomposition_dock.isVisibleTo(self))

    def _refresh_view(self, name: str) -> None:
        # one broken view must not blank the others (nor raise into Qt's loop at 30 Hz): log it once, keep going
        try:
            getattr(self, name).refresh()
        except Exception as error:
            if name not in self.view_errors:
                log.exception("the %s view failed to refresh", name)
            self.view_errors[name] = f"{type(error).__name__}: {error}"

    def _update_banner(self) -> None:
        signal = signal_status(self.pipeline.acquisition)
        message, style = "", BANNER_LOST
        name = self.pipeline.state.stream_name
        if signal.state == "refused":
            message = signal.phrase
        elif signal.state == "waiting":
            message, style = f"Waiting for the first samples from '{name}'", BANNER_WAITING
        elif signal.state == "confirming":
            # the stream is back; what keeps its samples off the screen is the monitor's own check, not a fault
            held_s = signal.held_samples / self.pipeline.state.fs
            message = f"'{name}' is back — confirming its rate before showing it ({held_s:.1f} s held)"
            style = BANNER_WAITING
        elif signal.state == "lost":
            message = f"Signal lost — waiting for '{name}' to return"
        if message != self.banner.text():
            self.banner.setText(message)
            self.banner.setStyleSheet(style)
        self.banner.setVisible(bool(message))

    @property
    def signal_lost_shown(self) -> bool:
        return self.banner.isVisibleTo(self) and "lost" in self.banner.text().lower()

    def _add_marker(self, text: str) -> None:
        import pylsl

        timestamp = pylsl.local_clock()
        self.traces.add_marker(timestamp, text)
        self.marker_added.emit(timestamp, text)

    def set_recording_state(self, text: str) -> None:
        """The session reports what the recorder is doing (e.g. "recording to session.xdf")."""
        self.status.set_recording_state(text)

    def connect_session(
        self,
        on_recording: Callable[[bool], str | None] | None = None,
        on_marker: Callable[[float, str], None] | None = None,
    ) -> None:
        """Hands the record button and markers to the session.

        ``on_recording(True/False)`` starts or stops the recorder and returns the state to show (e.g. "recording to
        x.xdf"); a UserError it raises is shown instead and the button springs back. ``on_marker(lsl_time, text)``
        receives each annotation (e.g. to push it on a marker outlet that LabRecorder records)."""
        if on_recording is not None:
            self.recording_toggled.connect(lambda on: self._toggle_recording(on_recording, on))
        if on_marker is not None:
            self.marker_added.connect(on_marker)

    def _toggle_recording(self, callback: Callable[[bool], str | None], on: bool) -> None:
        try:
            text = callback(on) or ("recording" if on else "not recording")
        except UserError as error:
            text = f"not recording: {error}" if on else f"recording stopped badly: {error}"
            self.status.show_recording(False)  # failing to start or to stop both leave nothing recording
        self.set_recording_state(text)
        self.status.refresh()

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        self.timer.stop()
        if self.needle is not None:
            self.needle.stop()
        super().closeEvent(event)
