"""Motor-unit panel for high-density grids: calibrate on demand, then each unit's discharges (raster), rates and
MUAP map on the grid, live.

The panel draws what a ``monitor.decomposition_service.LiveDecomposition`` recorded (discharges are found in the
DSP thread and published on ``<stream>-discharges`` as they are decided). In a view of a monitor core that service
runs in the core (``monitor --decompose``, or started by this panel's first Calibrate over the control channel), so
closing or losing the view loses no discharge; in the in-process window the panel starts one itself. Calibrate
decomposes the newest N s of the raw buffer in a background thread: the GUI never waits for it and the new unit set
takes over between two chunks.

Save units… writes the running unit set (separation filters, unit numbers, MUAP maps) to an .npz; Load units…
applies a saved one from the next chunk on, its units keeping their numbers, and the next Calibrate finds them again
(``dsp.decomposition_tracking``: the file and the rules of ``monitor --motor-units`` / ``--save-motor-units``). In a
view of a core both go over the control channel like Calibrate, the core reading and writing the file. A file that
is refused (malformed, another grid) is said in one line and the running set is kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtWidgets

WINDOW_S = 10.0  # raster and rate history shown
MUAP_HALF_S = 0.025
MIN_CHANNELS = 16
UNITS_FILTER = "Motor-unit sets (*.npz)"


def wanted(state: Any) -> bool:
    """Whether a stream can be decomposed into motor units: a grid, or at least 16 EMG channels."""
    layout = state.layout or {}
    return layout.get("kind") == "grid" or len(getattr(state, "emg_channels", [])) >= MIN_CHANNELS


def service_of(pipeline: Any, publish: bool = True) -> Any:
    """The motor-unit service the panel draws: the session's (``pipeline.decomposition``: the core's, or its view's
    stand-in), the core's through the control channel in a view of a core, else a new one in this process."""
    from monitor.decomposition_service import RemoteDecomposition, start_live_decomposition

    service = getattr(pipeline, "decomposition", None)
    if service is not None:
        return service
    host = getattr(pipeline, "decomposition_host", None)
    if host is not None:  # the session's (monitor/decomposition_service.CoreDecomposition): its outlet exists already
        return host.start()
    if getattr(pipeline, "control", None) is not None:  # a view: the core decomposes, this view asks and draws
        pipeline.decomposition = RemoteDecomposition(pipeline.control)
        return pipeline.decomposition
    return start_live_decomposition(pipeline, publish=publish)


def _colour(unit: int) -> tuple[int, int, int]:
    return pg.intColor(unit, hues=12).getRgb()[:3]


class DecompositionPanel(QtWidgets.QWidget):
    def __init__(self, pipeline: Any, parent: QtWidgets.QWidget | None = None, publish: bool = True) -> None:
        super().__init__(parent)
        self.pipeline = pipeline
        state = pipeline.state
        self.fs = float(state.fs)
        channels = np.asarray(getattr(state, "emg_channels", np.arange(state.n_channels)))
        force = force_channel(list(state.channel_labels), channels)
        self.service = service_of(pipeline, publish)
        self.layout_positions = _grid_cells(state.layout, len(channels))

        self.calibrate_button = QtWidgets.QPushButton("Calibrate")
        self.calibrate_button.setToolTip("decompose the newest seconds of the signal (hold a steady contraction)")
        self.calibrate_button.clicked.connect(self.calibrate)
        self.seconds_box = QtWidgets.QSpinBox()
        self.seconds_box.setRange(5, 30)
        self.seconds_box.setValue(20)
        self.seconds_box.setSuffix(" s")
        self.save_button = QtWidgets.QPushButton("Save units…")
        self.save_button.setToolTip("write the running unit set (filters, numbers, MUAP maps) for a later session")
        self.save_button.clicked.connect(self.choose_save_path)
        self.load_button = QtWidgets.QPushButton("Load units…")
        self.load_button.setToolTip("apply a saved unit set (its numbers kept); Calibrate then finds its units again")
        self.load_button.clicked.connect(self.choose_load_path)
        self.units_file_label = QtWidgets.QLabel("")  # the last save/load: what was written, applied or refused
        self.found_again_label = QtWidgets.QLabel("")
        self.status_label = QtWidgets.QLabel(self.service.status.message)
        self.rates_label = QtWidgets.QLabel("")
        self.thresholds_label = QtWidgets.QLabel("" if force is None else "recruitment thresholds: none yet")
        self.unit_box = QtWidgets.QSpinBox()
        self.unit_box.setPrefix("MUAP of unit ")
        self.unit_box.setRange(0, 0)

        self.raster = pg.PlotWidget()
        self.raster.setLabel("left", "unit")
        # rows are units, named by the number each keeps: without fixed ticks one unit's row (-0.5..0.5) was labelled
        # in thousandths with an SI prefix ("unit (x0.001)", -500 to 500)
        self.raster.getAxis("left").enableAutoSIPrefix(False)
        self._raster_ticks: list[tuple[int, str]] = []
        self.raster.setLabel("bottom", "time (s)")
        self.raster.setXRange(-WINDOW_S, 0)
        self.raster_points = pg.ScatterPlotItem(symbol="s", size=4, pen=None)
        self.raster.addItem(self.raster_points)
        self.rates = pg.PlotWidget()
        self.rates.setLabel("left", "rate (Hz)")
        self.rates.setLabel("bottom", "time (s)")
        self.rates.setXRange(-WINDOW_S, 0)
        self.rates.setYRange(0, 40)
        self.rate_curves: list[pg.PlotDataItem] = []
        self.muap = pg.PlotWidget()
        self.muap.setAspectLocked(True)
        self.muap.hideAxis("left")
        self.muap.hideAxis("bottom")
        self.muap_image = pg.ImageItem()
        self.muap_image.setColorMap(pg.colormap.get("viridis"))
        self.muap.addItem(self.muap_image)
        self.muap_label = QtWidgets.QLabel("")

        controls = QtWidgets.QHBoxLayout()
        controls.addWidget(QtWidgets.QLabel("<b>Motor units</b>"))
        controls.addWidget(self.calibrate_button)
        controls.addWidget(self.seconds_box)
        controls.addWidget(self.save_button)
        controls.addWidget(self.load_button)
        controls.addWidget(self.status_label, 1)
        plots = QtWidgets.QVBoxLayout()
        plots.addWidget(self.raster, 1)
        plots.addWidget(self.rates, 1)
        side = QtWidgets.QVBoxLayout()
        side.addWidget(self.unit_box)
        side.addWidget(self.muap, 1)
        side.addWidget(self.muap_label)
        body = QtWidgets.QHBoxLayout()
        body.addLayout(plots, 3)
        body.addLayout(side, 1)
        column = QtWidgets.QVBoxLayout(self)
        column.setContentsMargins(2, 2, 2, 2)
        column.addLayout(controls)
        column.addWidget(self.units_file_label)
        column.addWidget(self.found_again_label)
        column.addWidget(self.rates_label)
        column.addWidget(self.thresholds_label)
        column.addLayout(body, 1)

    def calibrate(self) -> None:
        self.service.calibrate(float(self.seconds_box.value()))
        self.status_label.setText(self.service.status.message)

    # ----- unit sets in files -------------------------------------------------------------------------------------
    def choose_save_path(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save motor units", "motor_units.npz", UNITS_FILTER)
        if path:
            self.save_units(path if path.lower().endswith(".npz") else f"{path}.npz")

    def choose_load_path(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Load motor units", "", UNITS_FILTER)
        if path:
            self.load_units(path)

    def save_units(self, path: str | Path) -> bool:
        """Writes the running unit set to ``path`` (the file dialog's choice; tests call it directly). False, with
        the reason in one line, when nothing was written."""
        path = Path(path).expanduser().absolute()
        try:
            self.service.save_units(path)
        except ValueError as error:
            return self._say(f"not saved: {error}", ok=False)
        ids = " ".join(f"U{i}" for i in self.service.unit_ids)
        return self._say(f"saved {len(self.service.unit_ids)} units ({ids}) to {path}", ok=True)

    def load_units(self, path: str | Path) -> bool:
        """Applies the unit set saved in ``path`` (the file dialog's choice; tests call it directly). A refused file
        leaves the running set as it was: False, with the reason in one line."""
        path = Path(path).expanduser().absolute()
        try:
            self.service.load_units(path)
        except ValueError as error:
            return self._say(f"not loaded (running units kept): {error}", ok=False)
        self.status_label.setText(self.service.status.message)
        return self._say(f"loaded {path.name}: its units keep their numbers; Calibrate to find them again", ok=True)

    def _say(self, text: str, ok: bool) -> bool:
        """One line in the panel and in the window's status bar (a dock's window has one)."""
        line = " ".join(str(text).split())  # never more than one line, whatever the refusal said
        self.units_file_label.setText(line)
        self.units_file_label.setVisible(True)
        self.units_file_label.setStyleSheet("" if ok else "color: #c0392b")
        window = self.window()
        if isinstance(window, QtWidgets.QMainWindow):
            window.statusBar().showMessage(line, 10_000)
        return ok

    # ----- drawing ------------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        self.status_label.setText(self.service.status.message)
        self.found_again_label.setText(found_again_text(self.service.found_again_units))
        # an empty line still takes its height: shown only when it says something (the plots get the room)
        for label in (self.units_file_label, self.found_again_label, self.rates_label, self.thresholds_label):
            label.setVisible(bool(label.text()))
        n_units = self.service.n_units
        self.unit_box.setRange(0, max(0, n_units - 1))
        latest = self.pipeline.acquisition.buffer.latest(1)
        if n_units == 0 or len(latest.timestamps) == 0:
            self.raster_points.setData([], [])
            return
        now = float(latest.timestamps[-1])
        rows = self.service.recent(now - WINDOW_S)
        units = np.array([row[1] for row in rows], dtype=int)
        times = np.array([row[3] for row in rows]) - now
        rates = np.array([row[4] for row in rows])
        self.raster_points.setData(times, units, brush=[pg.mkBrush(*_colour(u)) for u in units])
        self.raster.setYRange(-0.5, n_units - 0.5)
        while len(self.rate_curves) < n_units:
            self.rate_curves.append(self.rates.plot(pen=pg.mkPen(_colour(len(self.rate_curves)), width=1)))
        for unit, curve in enumerate(self.rate_curves):
            mine = units == unit
            curve.setData(times[mine], rates[mine], connect="finite")
        smoothed = self.service.smoothed_rates()
        ids = self.service.unit_ids  # the number a unit keeps across recalibrations (a swap may land mid-frame)
        ticks = [(row, f"U{i}") for row, i in enumerate(list(ids)[:n_units])]
        if ticks != self._raster_ticks:
            self.raster.getAxis("left").setTicks([ticks])
            self._raster_ticks = ticks
        # each unit's name in its raster and rate colour: the plots have no other key
        shown = [f'<span style="color: rgb{_colour(row)};">&#9632;</span> U{i} {rate:.0f} Hz'
                 for row, (i, rate) in enumerate(zip(ids, smoothed, strict=False))]
        self.rates_label.setText("rates (last 1 s): " + "  ".join(shown))
        if self.service.recruitment is not None:
            pairs = zip(ids, self.service.recruitment.thresholds(), strict=False)
            text = "  ".join(f"U{i} {up:.1f}/{down:.1f}" for i, (up, down) in pairs)
            self.thresholds_label.setText(f"recruited/de-recruited at (%MVC): {text}")
        self._draw_muap(self.unit_box.value(), [row[2] for row in rows if row[1] == self.unit_box.value()])

    def _draw_muap(self, unit: int, counters: list[int]) -> None:
        amplitudes = self.muap_map(counters)
        if amplitudes is None or self.layout_positions is None:
            return
        rows, cols, cells = self.layout_positions
        image = np.full((rows, cols), np.nan)
        image[cells[:, 0], cells[:, 1]] = amplitudes
        self.muap_image.setImage(np.nan_to_num(image.T[:, ::-1]), autoLevels=True)
        # the map is scaled to its own range (autoLevels): the label gives the range, as a colour bar would
        self.muap_label.setText(f"unit {unit}: peak-to-peak {np.nanmin(amplitudes):.0f} µV (dark) to "
                                f"{np.nanmax(amplitudes):.0f} µV (bright)")

    def muap_map(self, counters: list[int]) -> np.ndarray | None:
        """(C,) peak-to-peak µV of the spike-triggered average of the engine's filtered signal at ``counters``."""
        if len(counters) < 3:
            return None
        half = int(MUAP_HALF_S * self.fs)
        first = min(counters) - half
        block = self.pipeline.engine.filtered.read_from(first, max(counters) + half + 1 - first)
        offsets = np.asarray(counters) - block.first_counter
        inside = offsets[(offsets >= half) & (offsets + half < len(block.timestamps))]
        if inside.size < 3:
            return None
        data = block.data[:, self.service.channels]
        average = data[inside[:, None] + np.arange(-half, half + 1)[None, :]].mean(axis=0)
        return average.max(axis=0) - average.min(axis=0)


def found_again_text(found: list[tuple[int, float, str]]) -> str:
    """The units of the newest set found again in the previous or the loaded set: number, MUAP similarity, and
    "by discharges" where the previous filters fired with the unit (``dsp.decomposition_tracking.find_again``)."""
    if not found:
        return ""
    shown = [f"U{unit_id} {value:.2f}" + (" by discharges" if evidence == "discharges" else "")
             for unit_id, value, evidence in sorted(found)]  # fmt: skip
    return "found again (MUAP similarity): " + ", ".join(shown)


def force_channel(labels: list[str], emg_channels: np.ndarray) -> int | None:
    """The stream's force channel (``monitor.decomposition_service.force_channel``)."""
    from monitor.decomposition_service import force_channel as find

    return find(labels, emg_channels)


def _grid_cells(layout: dict[str, Any] | None, n_channels: int) -> tuple[int, int, np.ndarray] | None:
    """(rows, cols, (C, 2) row/col of each channel) from a grid layout's positions; None without a grid."""
    if not layout or layout.get("kind") != "grid":
        return None
    positions = np.asarray(layout.get("positions_mm", []), dtype=float)
    if positions.shape != (n_channels, 2):
        return None
    xs, ys = np.unique(positions[:, 0]), np.unique(positions[:, 1])
    cells = np.column_stack([np.searchsorted(ys, positions[:, 1]), np.searchsorted(xs, positions[:, 0])])
    return len(ys), len(xs), cells
