"""Status and controls: what the stream, DSP and worker are doing, and the settings a clinician may change live.

Controls act on the DSP engine directly (``engine.update_settings``); recording and markers are requests this view
emits as Qt signals, because the recorder belongs to the session, not to the window.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
from PyQt6 import QtCore, QtWidgets

from monitor.acquisition import channel_count_text, dropped_figure, signal_status

NOT_RECORDING = "not recording"
#: colour of each SignalStatus state; red for anything else
SIGNAL_COLOURS = {"streaming": (60, 170, 90), "waiting": (200, 150, 40), "confirming": (200, 150, 40)}
MAINS_CHOICES = (("off", None), ("50 Hz", 50.0), ("60 Hz", 60.0))
ROWS = (
    ("stream", "stream"), ("signal", "signal"), ("samples", "samples"), ("windows", "windows"),
    ("latency", "latency"), ("latency_worker", "  model (worker)"), ("latency_dsp", "  DSP"),
    ("latency_transport", "  transport"), ("worker", "worker"), ("resources", "resources"),
    ("recording", "recording"),
)


def _percentiles_ms(seconds: list[float]) -> tuple[float, float] | None:
    if not seconds:
        return None
    p50, p99 = np.percentile(np.asarray(seconds) * 1000.0, [50, 99])
    return float(p50), float(p99)


def latency_breakdown(pipeline: Any) -> dict[str, tuple[float, float] | float | None]:
    """Sample-to-decision latency split into the parts the monitor can see, in ms.

    total: last sample stamped by the amplifier -> decision received (p50, p99); worker: model time in the worker
    process (p50, p99); dsp: mean DSP time per window; transport: what remains of the median (LSL, queues, ZeroMQ)."""
    state = pipeline.state
    with state.lock:
        total = list(state.latencies_s)
        worker = state.decisions.recent_columns(len(total), ("worker_s",))["worker_s"].tolist()
    stats = pipeline.engine.stats
    dsp_ms = stats.dsp_seconds_total / stats.windows * 1000.0 if stats.windows else None
    total_pct, worker_pct = _percentiles_ms(total), _percentiles_ms(worker)
    transport = None
    if total_pct is not None and worker_pct is not None:
        transport = max(0.0, total_pct[0] - worker_pct[0] - (dsp_ms or 0.0))
    return {"total": total_pct, "worker": worker_pct, "dsp": dsp_ms, "transport": transport}


def resource_line(pipeline: Any) -> str:
    """CPU % of the monitor's process over the last few seconds, its memory, and each stage's mean time per window:
    the DSP engine's own stages (``dsp.resources.StageProfiler``) and the model's median time in the worker."""
    profiler = getattr(pipeline.engine, "profiler", None)
    if profiler is None:
        return "—"
    state = pipeline.state
    with state.lock:
        worker = state.decisions.recent_columns(200, ("worker_s",))["worker_s"]
    extra = {"model (worker)": float(np.median(worker)) * 1000.0} if len(worker) else None
    return profiler.status_line(extra, recent_cpu=True)


def filter_text(settings: Any, fs: float) -> str:
    """The engine's filter as ``dsp.filters.default_chain`` builds it from ``settings``: a needle stream is only
    high-passed (its spikes carry energy to 1-2 kHz), a surface stream band-passed with the high edge kept below
    Nyquist."""
    from dsp.filters import NYQUIST_MARGIN  # the clip default_chain applies: the text says what really runs

    if getattr(settings, "mode", "surface") == "needle":
        return f"high-pass {settings.low_hz:g} Hz"
    return f"band-pass {settings.low_hz:g}-{min(settings.high_hz, NYQUIST_MARGIN * fs / 2):g} Hz"


def _pair(value: tuple[float, float] | None) -> str:
    return "—" if value is None else f"p50 {value[0]:.1f}  p99 {value[1]:.1f} ms"


class StatusView(QtWidgets.QWidget):
    recording_toggled = QtCore.pyqtSignal(bool)
    marker_requested = QtCore.pyqtSignal(str)

    def __init__(self, pipeline: Any, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.pipeline = pipeline
        self.recording_state = NOT_RECORDING
        state, settings = pipeline.state, pipeline.engine.settings
        nyquist = state.fs / 2.0

        self.fields: dict[str, QtWidgets.QLabel] = {}
        form = QtWidgets.QFormLayout()
        form.setVerticalSpacing(1)
        for key, caption in ROWS:
            label = QtWidgets.QLabel("—")
            label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
            self.fields[key] = label
            form.addRow(caption, label)
        self.fields["stream"].setText(f"{state.stream_name}  {state.fs:g} Hz  "
                                     f"{channel_count_text(state.n_channels, getattr(state, 'emg_channels', None))}")
        self.fields["resources"].setWordWrap(True)  # one line of figures; wraps in a narrow column

        self.mains_box = QtWidgets.QComboBox()
        for text, _ in MAINS_CHOICES:
            self.mains_box.addItem(text)
        choices = [value for _, value in MAINS_CHOICES]
        self.mains_box.setCurrentIndex(choices.index(settings.mains_hz) if settings.mains_hz in choices else 1)
        self.window_box = self._spin(50, 1000, settings.window_ms, " ms", 10)
        self.hop_box = self._spin(5, 500, settings.hop_ms, " ms", 5)
        self.low_box = self._spin(0.5, nyquist - 2, settings.low_hz, " Hz", 5)
        self.high_box = self._spin(2, nyquist - 1, settings.high_hz, " Hz", 10)
        self.error_label = QtWidgets.QLabel("")
        self.error_label.setStyleSheet("color: rgb(220, 60, 60);")
        # each control sends only what it sets: a value the spin box clamped on a slow stream is not imposed
        self.mains_box.currentIndexChanged.connect(lambda: self.apply_settings(("mains_hz",)))
        # a needle stream is only high-passed (dsp.filters.default_chain): its high edge does nothing, so it is
        # neither shown nor sent, and the low edge is not held under it
        self.needle_filter = getattr(settings, "mode", "surface") == "needle"
        edges = ("low_hz",) if self.needle_filter else ("low_hz", "high_hz")
        for box in (self.low_box, self.high_box):
            box.editingFinished.connect(lambda: self.apply_settings(edges))
        self.high_box.setVisible(not self.needle_filter)
        self.filter_label = QtWidgets.QLabel(filter_text(settings, state.fs))
        for box in (self.window_box, self.hop_box):
            box.editingFinished.connect(lambda: self.apply_settings(("window_ms", "hop_ms")))

        controls = QtWidgets.QGridLayout()
        controls.addWidget(QtWidgets.QLabel("mains notch"), 0, 0)
        controls.addWidget(self.mains_box, 0, 1)
        controls.addWidget(self.filter_label, 1, 0)
        band = QtWidgets.QHBoxLayout()
        band.addWidget(self.low_box)
        band.addWidget(self.high_box)
        controls.addLayout(band, 1, 1)
        controls.addWidget(QtWidgets.QLabel("window / hop"), 2, 0)
        windows = QtWidgets.QHBoxLayout()
        windows.addWidget(self.window_box)
        windows.addWidget(self.hop_box)
        controls.addLayout(windows, 2, 1)

        self.marker_edit = QtWidgets.QLineEdit()
        self.marker_edit.setPlaceholderText("annotation (e.g. 'start 50% MVC')")
        self.marker_edit.returnPressed.connect(self.add_marker)
        self.marker_button = QtWidgets.QPushButton("add marker")
        self.marker_button.clicked.connect(self.add_marker)
        self.record_button = QtWidgets.QPushButton("start recording")
        self.record_button.setCheckable(True)
        self.record_button.toggled.connect(self._record_toggled)
        if getattr(state, "recording", None):  # started by the session (--record) before the window opened
            self.show_recording(True)
        actions = QtWidgets.QHBoxLayout()
        actions.addWidget(self.marker_edit, 1)
        actions.addWidget(self.marker_button)
        actions.addWidget(self.record_button)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addWidget(QtWidgets.QLabel("<b>Status</b>"))
        layout.addLayout(form)
        layout.addLayout(controls)
        layout.addWidget(self.error_label)
        layout.addLayout(actions)
        layout.addStretch(1)

    @staticmethod
    def _spin(low: float, high: float, value: float, suffix: str, step: float) -> QtWidgets.QDoubleSpinBox:
        box = QtWidgets.QDoubleSpinBox()
        box.setRange(low, high)
        box.setDecimals(1 if step < 1 else 0)
        box.setSingleStep(step)
        box.setValue(value)
        box.setSuffix(suffix)
        box.setKeyboardTracking(False)
        return box

    def requested_settings(self) -> dict[str, Any]:
        return {
            "mains_hz": MAINS_CHOICES[self.mains_box.currentIndex()][1],
            "low_hz": float(self.low_box.value()),
            "high_hz": float(self.high_box.value()),
            "window_ms": float(self.window_box.value()),
            "hop_ms": float(self.hop_box.value()),
        }

    def apply_settings(self, keys: tuple[str, ...] | None = None) -> bool:
        """Validates the controls and hands the changed ones (among ``keys``, default all) to the DSP engine.

        A bad combination is refused with a message and nothing changes."""
        wanted = self.requested_settings()
        touched = wanted.keys() if keys is None else keys
        if not self.needle_filter and {"low_hz", "high_hz"} & set(touched) and wanted["low_hz"] >= wanted["high_hz"]:
            self.error_label.setText(f"band-pass low edge {wanted['low_hz']:g} Hz must be under the high edge "
                                     f"{wanted['high_hz']:g} Hz")
            return False
        if {"window_ms", "hop_ms"} & set(touched) and wanted["hop_ms"] > wanted["window_ms"]:
            self.error_label.setText(
                f"hop {wanted['hop_ms']:g} ms must not exceed the window {wanted['window_ms']:g} ms"
            )
            return False
        settings = self.pipeline.engine.settings
        changes = {key: wanted[key] for key in touched if getattr(settings, key) != wanted[key]}
        self.error_label.setText("")
        if changes:
            try:
                self.pipeline.engine.update_settings(**changes)
            except (ValueError, AttributeError) as error:
                self.error_label.setText(f"not applied: {error}")
                return False
            self.filter_label.setText(filter_text(settings, self.pipeline.state.fs))
        return True

    def add_marker(self) -> None:
        text = self.marker_edit.text().strip() or "marker"
        self.marker_edit.clear()
        self.marker_requested.emit(text)

    def _record_toggled(self, on: bool) -> None:
        self.record_button.setText("stop recording" if on else "start recording")
        self.recording_toggled.emit(on)

    def show_recording(self, on: bool) -> None:
        """Sets the button without asking for anything (the recorder refused, or the session changed it)."""
        self.record_button.blockSignals(True)
        self.record_button.setChecked(on)
        self.record_button.setText("stop recording" if on else "start recording")
        self.record_button.blockSignals(False)

    def set_recording_state(self, text: str) -> None:
        self.recording_state = text

    def recording_text(self) -> str:
        """What the session said last; else the file the pipeline records into (``--record``), if any."""
        if self.recording_state != NOT_RECORDING:
            return self.recording_state
        path = getattr(self.pipeline.state, "recording", None)
        return f"recording to {path}" if path else NOT_RECORDING

    def refresh(self) -> None:
        pipeline, state = self.pipeline, self.pipeline.state
        acquisition, engine = pipeline.acquisition, pipeline.engine
        signal = signal_status(acquisition)
        colour = SIGNAL_COLOURS.get(signal.state, (220, 60, 60))
        self.fields["signal"].setText(
            f"<span style='color: rgb{colour}'><b>{html.escape(signal.phrase)}</b></span>"
            f"  (lost {acquisition.signal_lost_events}x)"
        )
        self.fields["samples"].setText(
            f"{acquisition.buffer.total_written}  {dropped_figure(engine.reader.dropped, signal)}"
            f"  gaps {engine.stats.gaps}"
        )
        with state.lock:
            n_decisions = len(state.decisions)
            windows_seen, windows_sent = state.windows_seen, state.windows_sent
        self.fields["windows"].setText(f"{windows_seen} seen  {windows_sent} sent  {n_decisions} decisions")
        breakdown = latency_breakdown(pipeline)
        self.fields["latency"].setText(_pair(breakdown["total"]))
        self.fields["latency_worker"].setText(_pair(breakdown["worker"]))
        dsp = breakdown["dsp"]
        self.fields["latency_dsp"].setText("—" if dsp is None else f"{dsp:.2f} ms per window")
        transport = breakdown["transport"]
        self.fields["latency_transport"].setText(
            "—" if transport is None else f"p50 {transport:.1f} ms (LSL, queues, ZeroMQ)"
        )
        client = pipeline.client
        if client is None:
            worker = state.model_status or "none (DSP only)"
        else:
            stats = getattr(client, "stats", {}) or {}
            worker = f"{stats.get('state', getattr(client, 'state', '?'))}  answered {stats.get('answered', '—')}  " \
                     f"late/dropped {stats.get('dropped_deadline', '—')}"
        self.fields["worker"].setText(worker)
        self.fields["resources"].setText(resource_line(pipeline))
        self.fields["recording"].setText(self.recording_text())
