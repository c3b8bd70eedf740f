"""Live traces: every channel stacked with its label, scrolling, min/max decimated, with the RMS envelope on top.

All channels are drawn as ONE PlotDataItem whose ``connect`` array breaks the line between channels: one
QPainterPath per frame instead of one per channel, which is what keeps 64 x 10 s at 2048 Hz above 30 frames/s.
Each channel is reduced to a (min, max) pair per screen column first, so a one-sample spike still shows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtWidgets

SPANS_S = (1.0, 2.0, 5.0, 10.0, 20.0)
FIXED_SCALES_UV = (20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0)
MAX_LABELLED_CHANNELS = 32
TRACE_PEN = pg.mkPen((120, 200, 255), width=1)
ENVELOPE_PEN = pg.mkPen((255, 200, 60, 200), width=2)


def minmax_decimate(data: np.ndarray, n_bins: int) -> tuple[np.ndarray, int]:
    """(n, C) -> (2 * bins, C): each bin of consecutive samples becomes its minimum then its maximum.

    Bins are aligned to the newest sample (the oldest partial bin is dropped) so the picture does not shimmer as
    samples arrive. Returns the reduced array and the bin length in samples (1 = no reduction, data returned as is).
    """
    n = data.shape[0]
    if n_bins <= 0 or n <= 2 * n_bins:
        return data, 1
    bin_length = n // n_bins
    usable = data[n - n_bins * bin_length :].reshape(n_bins, bin_length, data.shape[1])
    reduced = np.empty((2 * n_bins, data.shape[1]), dtype=data.dtype)
    reduced[0::2] = usable.min(axis=1)
    reduced[1::2] = usable.max(axis=1)
    return reduced, bin_length


def autoscale_spacing(reduced: np.ndarray) -> float:
    """Vertical distance between channels (µV) so that a typical channel fills its lane without overlapping."""
    peak_to_peak = np.nanmax(reduced, axis=0) - np.nanmin(reduced, axis=0)
    finite = peak_to_peak[np.isfinite(peak_to_peak) & (peak_to_peak > 0)]
    return float(np.median(finite)) if len(finite) else 1.0


class TracesView(QtWidgets.QWidget):
    """Scrolling stacked traces of the filtered signal; reads ``pipeline.engine.filtered`` at the frame rate."""

    def __init__(self, pipeline: Any, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.pipeline = pipeline
        self.n_channels = pipeline.state.n_channels
        self.fs = pipeline.state.fs
        self.spacing_uv = 100.0
        self.frozen = False
        self.markers: list[tuple[float, str]] = []
        self._connect: np.ndarray | None = None
        self._marker_lines: list[pg.InfiniteLine] = []

        self.plot = pg.PlotWidget()
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setLabel("bottom", "time", units="s")
        self.plot.setXRange(-self.span_s_default(), 0, padding=0)
        self.plot.setYRange(-self.n_channels, 1, padding=0)
        self.curve = pg.PlotDataItem(pen=TRACE_PEN, skipFiniteCheck=True, antialias=False)
        self.envelope = pg.PlotDataItem(pen=ENVELOPE_PEN, skipFiniteCheck=True, antialias=False)
        self.plot.addItem(self.curve)
        self.plot.addItem(self.envelope)
        self._label_channels(pipeline.state.channel_labels)

        self.span_box = QtWidgets.QComboBox()
        self.span_box.addItems([f"{span:g} s" for span in SPANS_S])
        self.span_box.setCurrentIndex(SPANS_S.index(self.span_s_default()))
        self.span_box.currentIndexChanged.connect(self._span_changed)
        self.scale_box = QtWidgets.QComboBox()
        self.scale_box.addItem("autoscale")
        self.scale_box.addItems([f"{scale:g} µV" for scale in FIXED_SCALES_UV])
        self.envelope_check = QtWidgets.QCheckBox("RMS envelope")
        self.envelope_check.setChecked(True)
        self.freeze_check = QtWidgets.QCheckBox("freeze")
        self.freeze_check.toggled.connect(self._set_frozen)
        self.scale_label = QtWidgets.QLabel("")

        controls = QtWidgets.QHBoxLayout()
        controls.addWidget(QtWidgets.QLabel("<b>Traces</b>"))
        controls.addWidget(QtWidgets.QLabel("span"))
        controls.addWidget(self.span_box)
        controls.addWidget(QtWidgets.QLabel("scale"))
        controls.addWidget(self.scale_box)
        controls.addWidget(self.envelope_check)
        controls.addWidget(self.freeze_check)
        controls.addStretch(1)
        controls.addWidget(self.scale_label)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(controls)
        layout.addWidget(self.plot, 1)

    @staticmethod
    def span_s_default() -> float:
        return 10.0

    @property
    def span_s(self) -> float:
        return SPANS_S[self.span_box.currentIndex()]

    @property
    def fixed_scale_uv(self) -> float | None:
        index = self.scale_box.currentIndex()
        return None if index == 0 else FIXED_SCALES_UV[index - 1]

    def _label_channels(self, labels: list[str]) -> None:
        # beyond ~32 lanes the labels overlap: label every k-th channel, the rest get unlabelled ticks
        step = max(1, int(np.ceil(len(labels) / MAX_LABELLED_CHANNELS)))
        major = [(-i, label) for i, label in enumerate(labels) if i % step == 0]
        minor = [(-i, "") for i in range(len(labels)) if i % step]
        self.plot.getAxis("left").setTicks([major, minor])

    def _span_changed(self) -> None:
        self.plot.setXRange(-self.span_s, 0, padding=0)

    def _set_frozen(self, frozen: bool) -> None:
        self.frozen = frozen

    def _connect_for(self, points_per_channel: int) -> np.ndarray:
        if self._connect is None or len(self._connect) != points_per_channel * self.n_channels:
            connect = np.ones((self.n_channels, points_per_channel), dtype=bool)
            connect[:, -1] = False  # no line from the end of one lane to the start of the next
            self._connect = connect.ravel()
        return self._connect

    def refresh(self) -> None:
        if self.frozen:
            return
        n_wanted = int(self.span_s * self.fs)
        block = self.pipeline.engine.filtered.latest(n_wanted)
        if len(block.timestamps) < 2:
            return
        n_bins = max(100, self.plot.plotItem.vb.width() or 1000)
        reduced, bin_length = minmax_decimate(block.data, int(n_bins))
        newest = block.timestamps[-1]
        if bin_length == 1:
            times = block.timestamps - newest
        else:
            kept = block.timestamps[len(block.timestamps) - (len(reduced) // 2) * bin_length :]
            times = np.repeat(kept[bin_length - 1 :: bin_length] - newest, 2)
        np.nan_to_num(reduced, copy=False)
        scale = self.fixed_scale_uv
        if scale is None:
            # smooth the automatic scale so the traces do not pump with every burst
            target = autoscale_spacing(reduced)
            self.spacing_uv = target if self.spacing_uv <= 0 else 0.8 * self.spacing_uv + 0.2 * target
        else:
            self.spacing_uv = scale
        self.scale_label.setText(f"{self.spacing_uv:.0f} µV / lane")
        offsets = -np.arange(self.n_channels, dtype=np.float32)[:, None]
        y = reduced.T / np.float32(self.spacing_uv) + offsets
        x = np.broadcast_to(times, y.shape)
        self.curve.setData(x.ravel(), y.ravel(), connect=self._connect_for(len(times)))
        self._draw_envelope(newest, offsets)
        self._draw_markers(newest)

    def _draw_envelope(self, newest: float, offsets: np.ndarray) -> None:
        if not self.envelope_check.isChecked():
            self.envelope.setData([], [])
            return
        times, rms = recent_feature(self.pipeline.state, "RMS", newest - self.span_s)
        if len(times) < 2:
            self.envelope.setData([], [])
            return
        # RMS of a zero-mean signal sits below its peaks; drawn upward from each lane's baseline
        y = rms.T / np.float32(self.spacing_uv) + offsets
        x = np.broadcast_to(times - newest, y.shape)
        connect = np.ones(y.shape, dtype=bool)
        connect[:, -1] = False
        self.envelope.setData(x.ravel(), y.ravel(), connect=connect.ravel())

    def _draw_markers(self, newest: float) -> None:
        for line in self._marker_lines:
            self.plot.removeItem(line)
        self._marker_lines = []
        for timestamp, text in self.markers:
            if newest - self.span_s <= timestamp <= newest:
                line = pg.InfiniteLine(timestamp - newest, angle=90, pen=pg.mkPen((255, 80, 80), width=1), label=text,
                                       labelOpts={"position": 0.97, "color": (255, 120, 120)})
                self.plot.addItem(line)
                self._marker_lines.append(line)

    def add_marker(self, timestamp: float, text: str) -> None:
        self.markers.append((timestamp, text))


def recent_feature(state: Any, name: str, since: float) -> tuple[np.ndarray, np.ndarray]:
    """(times (n,), values (n, C)) of one feature for the windows ending after ``since``, oldest first."""
    rows: list[tuple[float, np.ndarray]] = []
    with state.lock:
        for timestamp, features in reversed(state.features):
            if timestamp < since:
                break
            if name in features:
                rows.append((timestamp, features[name]))
    if not rows:
        return np.empty(0), np.empty((0, state.n_channels))
    rows.reverse()
    return np.array([t for t, _ in rows]), np.stack([v for _, v in rows]).astype(np.float32)
