"""Live power spectrum (Welch) of one channel or the mean over usable channels, with MNF and MDF marked."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtWidgets

from dsp.spectral import welch

SPECTRUM_SECONDS = 2.0
MEAN_ENTRY = "mean of usable EMG channels"


def mean_and_median_frequency(frequencies: np.ndarray, psd: np.ndarray) -> tuple[float, float]:
    """MNF (power-weighted mean frequency) and MDF (frequency splitting the power in two halves) of a PSD."""
    total = float(np.sum(psd))
    if not np.isfinite(total) or total <= 0:
        return float("nan"), float("nan")
    mean_frequency = float(np.sum(frequencies * psd) / total)
    cumulative = np.cumsum(psd)
    median_frequency = float(np.interp(total / 2.0, cumulative, frequencies))
    return mean_frequency, median_frequency


def welch_psd(data: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel Welch PSD of (n, C) samples, ~4 Hz resolution, Hann windows with 50 % overlap.

    ``scipy.signal.welch(data, fs, nperseg, axis=0, detrend="constant")`` computed in one pass of numpy
    (``dsp.spectral.welch``): scipy 1.17's version detrends segment by segment through its ShortTimeFFT and took
    ~3.5x the CPU (256 channels x 2 s: 25 -> 7 ms in a loop, 146 ms a frame in the window at load 10, a third of the
    view's CPU). Equal to scipy's to ~2e-7 of the peak (tests/gui/test_view_computations.py)."""
    segment = int(min(len(data), 2 ** int(np.round(np.log2(max(fs / 4.0, 16.0))))))
    return welch(data, fs, segment, axis=0)


#: MDF's name left of its line (MNF's is right of its own), or right of it where the left has no room: MDF below
#: this share of the shown frequencies
MDF_ANCHOR_LEFT, MDF_ANCHOR_RIGHT, MDF_LABEL_ROOM = (1.05, 0.5), (-0.05, 0.5), 0.06


class SpectrumView(QtWidgets.QWidget):
    def __init__(self, pipeline: Any, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.pipeline = pipeline
        self.fs = pipeline.state.fs
        self.mnf_hz = float("nan")
        self.mdf_hz = float("nan")

        self.channel_box = QtWidgets.QComboBox()
        self.channel_box.addItem(MEAN_ENTRY)
        self.channel_box.addItems(list(pipeline.state.channel_labels))
        self.readout = QtWidgets.QLabel("MNF —  MDF —")
        self.plot = pg.PlotWidget()
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.setLogMode(x=False, y=True)
        self.plot.setLabel("bottom", "frequency", units="Hz")
        self.plot.setLabel("left", "PSD (µV²/Hz)")
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self._x_high = 0.0
        self.curve = self.plot.plot(pen=pg.mkPen((120, 200, 255), width=1.5))
        # MDF lies below MNF on an EMG spectrum, often a few Hz apart: its name goes left of its line and MNF's
        # right of its own, so the two names never sit on each other or on the other line
        self.mnf_line = pg.InfiniteLine(angle=90, pen=pg.mkPen((255, 200, 60), width=2), label="MNF",
                                        labelOpts={"position": 0.92, "color": (255, 200, 60),
                                                   "anchors": [(-0.05, 0.5), (-0.05, 0.5)]})
        dashed = pg.mkPen((120, 255, 120), width=2, style=pg.QtCore.Qt.PenStyle.DashLine)
        self.mdf_line = pg.InfiniteLine(angle=90, pen=dashed, label="MDF",
                                        labelOpts={"position": 0.92, "color": (120, 255, 120),
                                                   "anchors": [MDF_ANCHOR_LEFT] * 2})
        for line in (self.mnf_line, self.mdf_line):
            line.setVisible(False)
            self.plot.addItem(line)

        header = QtWidgets.QHBoxLayout()
        header.addWidget(QtWidgets.QLabel("<b>Spectrum</b>"))
        header.addWidget(self.channel_box, 1)
        header.addWidget(self.readout)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(header)
        layout.addWidget(self.plot, 1)

    def _mean_channels(self) -> np.ndarray:
        """Usable EMG channels (all EMG channels when none is usable: a flat mean is better than a blank plot)."""
        state = self.pipeline.state
        with state.lock:
            usable = state.usable
            emg = getattr(state, "emg_channels", None)
        selected = np.zeros(state.n_channels, dtype=bool)
        selected[np.asarray(emg) if emg is not None else slice(None)] = True
        if usable is not None and len(usable) == len(selected) and (selected & usable).any():
            selected &= usable
        return np.flatnonzero(selected)

    def select_channel(self, channel: int) -> None:
        """Shows one stream channel (e.g. the electrode clicked on the map)."""
        self.channel_box.setCurrentIndex(channel + 1)
        self.refresh()

    def _fit_x_range(self) -> None:
        # surface EMG lives under the band-pass edge; needle EMG (high-pass only) reaches 1-2 kHz
        settings = self.pipeline.engine.settings
        top = self.fs / 2.0
        if getattr(settings, "mode", "surface") != "needle":
            top = min(top, max(100.0, 1.25 * float(getattr(settings, "high_hz", top))))
        if top != self._x_high:
            self._x_high = top
            self.plot.setXRange(0, top, padding=0)

    def refresh(self) -> None:
        self._fit_x_range()
        block = self.pipeline.engine.filtered.latest(int(SPECTRUM_SECONDS * self.fs))
        if len(block.timestamps) < 64:
            return
        index = self.channel_box.currentIndex()
        columns = self._mean_channels() if index == 0 else [index - 1]
        data = block.data
        # each channel's PSD is its own: with most channels selected, computing all and averaging the chosen ones
        # is cheaper than copying the columns out (a column gather of 2 s x 256 ch costs ~7 ms, the Welch ~8 ms)
        many = len(columns) > data.shape[1] // 2
        if not many:
            data = data[:, columns]
        if not np.isfinite(data).all():  # one pass instead of nan_to_num's four when nothing needs cleaning
            data = np.nan_to_num(data)
        frequencies, psd = welch_psd(data, self.fs)
        psd = (psd[:, columns] if many else psd).mean(axis=1)
        self.mnf_hz, self.mdf_hz = mean_and_median_frequency(frequencies, psd)
        shown = frequencies > 0  # the DC bin is zero after the high-pass and breaks the log axis
        peak = float(np.max(psd[shown])) if shown.any() else 0.0
        if peak > 0:
            # 60 dB below the peak is all a reader needs; the filters' stop bands would squash the plot otherwise
            floor = peak * 1e-6
            self.curve.setData(frequencies[shown], np.maximum(psd[shown], floor))
            self.plot.setYRange(np.log10(floor), np.log10(peak * 3.0), padding=0)
        for line, value in ((self.mnf_line, self.mnf_hz), (self.mdf_line, self.mdf_hz)):
            finite = bool(np.isfinite(value))
            line.setVisible(finite)
            if finite:
                line.setValue(value)
        self._place_mdf_name()
        self.readout.setText(f"MNF {self.mnf_hz:.0f} Hz  MDF {self.mdf_hz:.0f} Hz")

    def _place_mdf_name(self) -> None:
        """Near the left edge (a needle's kHz axis) MDF's name left of its line falls off the plot: it goes right of
        the line then, lower than MNF's."""
        if not np.isfinite(self.mdf_hz) or self._x_high <= 0:
            return
        cramped = self.mdf_hz < MDF_LABEL_ROOM * self._x_high
        self.mdf_line.label.setPosition(0.78 if cramped else 0.92)
        self.mdf_line.label.anchors = [MDF_ANCHOR_RIGHT] * 2 if cramped else [MDF_ANCHOR_LEFT] * 2
        self.mdf_line.label.updatePosition()
