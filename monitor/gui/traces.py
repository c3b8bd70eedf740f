"""Live traces: every channel stacked with its label, scrolling, min/max decimated, with the RMS envelope on top.

All channels are drawn as ONE curve item: each channel is reduced to a (min, max) pair per pixel column (so a
one-sample spike still shows), and every pair is drawn as one vertical segment in a single QPainter.drawLines call.
Only the samples that arrived since the last frame are reduced (bins are cached). Together this is what keeps
64 channels x 10 s at 2048 Hz well above 30 frames/s; a polyline path through the same points paints ~6x slower.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtWidgets

SPANS_S = (1.0, 2.0, 5.0, 10.0, 20.0)
FIXED_SCALES_UV = (20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0)
MAX_LABELLED_CHANNELS = 32
#: the height one lane label needs (8-9 pt text): fewer labels when the lanes are thinner, e.g. under the motor-unit
#: dock, where 32 labels in 180 px ran into one black smear
LABEL_PIXELS = 14
#: more channels than this are shown a page at a time by default (lanes under ~12 px cannot be read), and drawn as
#: one image instead of line segments when all are shown
LANES_PER_PAGE = 64
#: up to this many lanes line segments paint faster than an image (64 lanes: 77-85 vs 57-70 frames/s measured)
RASTER_ABOVE_LANES = 64
#: one (min, max) segment per pixel column: the most the screen can show
PIXELS_PER_BIN = 1
TRACE_COLOUR = (120, 200, 255)
TRACE_PEN = pg.mkPen(TRACE_COLOUR, width=1)
RASTER_LUT = np.array([[0, 0, 0, 0], [*TRACE_COLOUR, 255]], dtype=np.uint8)
ENVELOPE_PEN = pg.mkPen((190, 150, 40), width=1)  # wide or translucent pens cost Qt several ms per frame
MARKER_PEN = pg.mkPen((255, 80, 80), width=1)


class MinMaxDecimator:
    """Per-channel (low, high) of each bin of ``bin_length`` samples, bins fixed to the buffer's sample counters.

    Each bin also covers the sample just before it, so drawing every bin as one vertical segment from low to high
    joins up exactly like the polyline through all samples would (at one bin per pixel column the two pictures are
    the same). Bins are fixed to absolute counters and cached, so each frame reduces only the samples that arrived
    since the last one, and the picture does not shimmer as the window scrolls.
    """

    def __init__(self, n_channels: int, columns: np.ndarray | None = None) -> None:
        self.columns = None if columns is None else np.asarray(columns, dtype=int)
        self.n_channels = n_channels if columns is None else len(self.columns)
        self.bin_length = 0
        self._span = 0
        self._complete_until = 0  # bins below this index are final

    def _reset(self, bin_length: int, span_samples: int) -> None:
        self.bin_length, self._span = bin_length, span_samples
        slots = span_samples // bin_length + 3
        self._low = np.zeros((slots, self.n_channels), dtype=np.float32)
        self._high = np.zeros((slots, self.n_channels), dtype=np.float32)
        self._times = np.zeros(slots)
        self._complete_until = 0

    def update(self, buffer: Any, span_samples: int, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(low (B, C), high (B, C), time of each bin's last sample (B,)) for the newest ``span_samples``."""
        bin_length = max(1, span_samples // max(1, n_bins))
        if bin_length != self.bin_length or span_samples != self._span:
            self._reset(bin_length, span_samples)
        total = buffer.total_written
        oldest = max(0, total - buffer.capacity, total - span_samples)
        first_bin = -(-oldest // bin_length)  # the oldest whole bin still on screen
        last_bin = (total - 1) // bin_length
        if total == 0 or last_bin < first_bin:
            empty = np.empty((0, self.n_channels), dtype=np.float32)
            return empty, empty, np.empty(0)
        start_bin = max(self._complete_until, first_bin)
        start = start_bin * bin_length
        block = buffer.read_from(max(oldest, start - 1))
        data = block.data if self.columns is None else block.data[:, self.columns]
        self._reduce(data, block.timestamps, start - block.first_counter, start_bin)
        self._complete_until = total // bin_length
        slots = np.arange(first_bin, last_bin + 1) % len(self._times)
        return self._low[slots], self._high[slots], self._times[slots]

    def _reduce(self, data: np.ndarray, timestamps: np.ndarray, offset: int, start_bin: int) -> None:
        length = self.bin_length
        body = data[offset:]
        n_full = len(body) // length
        full = body[: n_full * length].reshape(n_full, length, data.shape[1])
        low, high = full.min(axis=1), full.max(axis=1)
        times = timestamps[offset + length - 1 : offset + n_full * length : length]
        if len(body) % length:  # the newest bin is still filling: reduce what it has, redo it next frame
            rest = body[n_full * length :]
            low = np.vstack([low, rest.min(axis=0)])
            high = np.vstack([high, rest.max(axis=0)])
            times = np.append(times, timestamps[-1])
        before = offset - 1 + np.arange(len(low)) * length  # index of the sample preceding each bin
        joined = before >= 0
        low[joined] = np.minimum(low[joined], data[before[joined]])
        high[joined] = np.maximum(high[joined], data[before[joined]])
        slots = np.arange(start_bin, start_bin + len(low)) % len(self._times)
        self._low[slots], self._high[slots], self._times[slots] = low, high, times


def raster_lanes(low: np.ndarray, high: np.ndarray, height: int) -> np.ndarray:
    """(bins, height) bool image of the segments [low, high] (in lane units, lane k centred on -k; rows from the
    bottom, covering -n_lanes .. 1): what the segments would light on screen, computed in numpy.

    Drawing hundreds of thousands of segments costs Qt ~0.1 µs each; above 64 lanes one image is cheaper."""
    n_bins, n_lanes = low.shape
    rows_per_unit = height / (n_lanes + 1.0)
    bottom = np.clip(np.floor((low + n_lanes) * rows_per_unit), 0, height - 1).astype(np.int64)
    top = np.clip(np.floor((high + n_lanes) * rows_per_unit), 0, height - 1).astype(np.int64)
    top = np.maximum(top, bottom)
    columns = np.repeat(np.arange(n_bins)[:, None], n_lanes, axis=1)
    stride = height + 1
    # +1 where a segment starts, -1 just past where it ends; a running sum along each column fills the segments
    edges = np.bincount((columns * stride + bottom).ravel(), minlength=n_bins * stride)
    edges -= np.bincount((columns * stride + top + 1).ravel(), minlength=n_bins * stride)
    return np.cumsum(edges.reshape(n_bins, stride), axis=1)[:, :height] > 0


def autoscale_spacing(low: np.ndarray, high: np.ndarray) -> float:
    """Vertical distance between channels (µV) so that a typical channel fills its lane without overlapping."""
    peak_to_peak = np.nanmax(high, axis=0) - np.nanmin(low, axis=0)
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
        self.labels = list(pipeline.state.channel_labels)
        self.lanes = np.arange(self.n_channels)
        self.decimator = MinMaxDecimator(self.n_channels)
        self._marker_lines: dict[int, pg.InfiniteLine] = {}  # by index in ``markers``, those in view
        self._masked: tuple[int, ...] = ()  # channels masked out of inference, marked in the lane labels
        self._labelled_height = 0  # the plot height (px) the lane labels were spaced for

        self.plot = pg.PlotWidget()
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setLabel("bottom", "time", units="s")
        self.plot.setXRange(-self.span_s_default(), 0, padding=0)
        self.curve = pg.PlotCurveItem(pen=TRACE_PEN, skipFiniteCheck=True, antialias=False)
        self.curve.setSegmentedLineMode("on")
        self.envelope = pg.PlotDataItem(pen=ENVELOPE_PEN, skipFiniteCheck=True, antialias=False)
        self.raster = pg.ImageItem(axisOrder="col-major")
        self.raster.setLookupTable(RASTER_LUT)
        self.plot.addItem(self.curve)
        self.plot.addItem(self.raster)
        self.plot.addItem(self.envelope)

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
        self.page_box = QtWidgets.QComboBox()
        self.pages = [np.arange(self.n_channels)]
        self.page_box.addItem(f"all {self.n_channels}")
        for first in range(0, self.n_channels, LANES_PER_PAGE) if self.n_channels > LANES_PER_PAGE else ():
            last = min(first + LANES_PER_PAGE, self.n_channels)
            self.pages.append(np.arange(first, last))
            self.page_box.addItem(f"{first + 1}–{last}")
        self.page_box.setVisible(len(self.pages) > 1)
        self.page_box.currentIndexChanged.connect(self._page_changed)

        controls = QtWidgets.QHBoxLayout()
        controls.addWidget(QtWidgets.QLabel("<b>Traces</b>"))
        controls.addWidget(QtWidgets.QLabel("span"))
        controls.addWidget(self.span_box)
        controls.addWidget(self.page_box)
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
        self.page_box.setCurrentIndex(1 if len(self.pages) > 1 else 0)
        self._page_changed()

    def _page_changed(self) -> None:
        self.lanes = self.pages[max(0, self.page_box.currentIndex())]
        raster = len(self.lanes) > RASTER_ABOVE_LANES
        self.raster.setVisible(raster)
        self.curve.setVisible(not raster)
        columns = None if len(self.lanes) == self.n_channels else self.lanes
        self.decimator = MinMaxDecimator(self.n_channels, columns)
        self._label_channels(self._lane_names())
        self.plot.setYRange(-len(self.lanes), 1, padding=0)

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

    def _lane_names(self) -> list[str]:
        # a flat or saturated electrode's lane is a straight line that looks like a quiet muscle: its label says it
        # is masked out of inference, as the electrode map crosses it out
        masked = set(self._masked)
        return [f"✕ {self.labels[i]}" if i in masked else self.labels[i] for i in self.lanes]

    def _mark_masked(self) -> None:
        state = self.pipeline.state
        with state.lock:
            usable = None if state.usable is None else np.asarray(state.usable)
        masked = () if usable is None or len(usable) != self.n_channels else tuple(np.flatnonzero(~usable).tolist())
        height = int(self.plot.plotItem.vb.height())
        if masked != self._masked or abs(height - self._labelled_height) > LABEL_PIXELS:
            self._masked = masked
            self._label_channels(self._lane_names())

    def labels_that_fit(self) -> int:
        """How many lane labels the plot's height can show without them running into each other."""
        height = int(self.plot.plotItem.vb.height())
        return MAX_LABELLED_CHANNELS if height <= 0 else max(1, min(MAX_LABELLED_CHANNELS, height // LABEL_PIXELS))

    def _label_channels(self, labels: list[str]) -> None:
        # more lanes than labels fit: label every k-th channel, the rest get unlabelled ticks
        self.lane_labels = list(labels)
        self._labelled_height = int(self.plot.plotItem.vb.height())
        step = max(1, int(np.ceil(len(labels) / self.labels_that_fit())))
        major = [(-i, label) for i, label in enumerate(labels) if i % step == 0]
        minor = [(-i, "") for i in range(len(labels)) if i % step]
        self.plot.getAxis("left").setTicks([major, minor])

    def _span_changed(self) -> None:
        self.plot.setXRange(-self.span_s, 0, padding=0)

    def _set_frozen(self, frozen: bool) -> None:
        self.frozen = frozen

    def refresh(self) -> None:
        if self.frozen:
            return
        self._mark_masked()
        n_bins = int(max(100, (self.plot.plotItem.vb.width() or 1000) / PIXELS_PER_BIN))
        low, high, times = self.decimator.update(self.pipeline.engine.filtered, int(self.span_s * self.fs), n_bins)
        if len(times) < 2:
            return
        newest = times[-1]
        scale = self.fixed_scale_uv
        if scale is None:
            # smooth the automatic scale so the traces do not pump with every burst
            target = autoscale_spacing(low, high)
            self.spacing_uv = target if self.spacing_uv <= 0 else 0.8 * self.spacing_uv + 0.2 * target
        else:
            self.spacing_uv = scale
        self.scale_label.setText(f"{self.spacing_uv:.0f} µV / lane")
        offsets = -np.arange(len(self.lanes), dtype=np.float32)[:, None]
        if len(self.lanes) > RASTER_ABOVE_LANES:
            self._draw_raster(low, high, times - newest)
        else:
            y = np.empty((len(self.lanes), 2 * len(times)), dtype=np.float32)
            y[:, 0::2], y[:, 1::2] = low.T, high.T
            y = np.nan_to_num(y, copy=False) / np.float32(self.spacing_uv) + offsets
            x = np.broadcast_to(np.repeat(times - newest, 2), y.shape)
            # one vertical segment per bin and channel: drawn by QPainter.drawLines, ~6x faster than a polyline path
            self.curve.setData(x.ravel(), y.ravel(), connect="pairs")
        self._draw_envelope(newest, offsets)
        self._draw_markers(newest)

    def _draw_raster(self, low: np.ndarray, high: np.ndarray, times: np.ndarray) -> None:
        lanes = -np.arange(len(self.lanes), dtype=np.float32)
        scale = np.float32(self.spacing_uv)
        low = np.nan_to_num(low) / scale + lanes
        high = np.nan_to_num(high) / scale + lanes
        height = int(max(50, self.plot.plotItem.vb.height() or 800))
        self.raster.setImage(raster_lanes(low, high, height).astype(np.uint8), levels=(0, 1), autoLevels=False)
        step = (times[-1] - times[0]) / max(1, len(times) - 1)
        self.raster.setRect(QtCore.QRectF(times[0] - step, -len(self.lanes), times[-1] - times[0] + step,
                                          len(self.lanes) + 1.0))

    def _draw_envelope(self, newest: float, offsets: np.ndarray) -> None:
        # over 64 lanes a line per lane would paint over the lanes themselves
        if not self.envelope_check.isChecked() or len(self.lanes) > LANES_PER_PAGE:
            self.envelope.setData([], [])
            return
        times, rms = recent_feature(self.pipeline.state, "RMS", newest - self.span_s)
        if len(times) < 2:
            self.envelope.setData([], [])
            return
        # RMS of a zero-mean signal sits below its peaks; drawn upward from each lane's baseline
        y = rms[:, self.lanes].T / np.float32(self.spacing_uv) + offsets
        x = np.broadcast_to(times - newest, y.shape)
        connect = np.ones(y.shape, dtype=bool)
        connect[:, -1] = False
        self.envelope.setData(x.ravel(), y.ravel(), connect=connect.ravel())

    def _draw_markers(self, newest: float) -> None:
        # a marker's line (and its text label) is made once when it scrolls into view and only moved every frame
        # after that: building them anew cost a text layout per marker per frame
        shown = {index for index, (timestamp, _) in enumerate(self.markers)
                 if newest - self.span_s <= timestamp <= newest}
        for index in set(self._marker_lines) - shown:
            self.plot.removeItem(self._marker_lines.pop(index))
        for index in sorted(shown):
            timestamp, text = self.markers[index]
            line = self._marker_lines.get(index)
            if line is None:
                line = pg.InfiniteLine(timestamp - newest, angle=90, pen=MARKER_PEN, label=text,
                                       labelOpts={"position": 0.97, "color": (255, 120, 120)})
                self.plot.addItem(line)
                self._marker_lines[index] = line
            else:
                line.setValue(timestamp - newest)

    def add_marker(self, timestamp: float, text: str) -> None:
        self.markers.append((timestamp, text))


def recent_feature(state: Any, name: str, since: float) -> tuple[np.ndarray, np.ndarray]:
    """(times (n,), values (n, C)) of one feature for the windows ending after ``since``, oldest first."""
    with state.lock:
        times, values = state.features.since(since, names=(name,))
    if name not in values:
        return np.empty(0), np.empty((0, state.n_channels))
    return times, values[name]
