"""Fatigue: MNF/MDF and RMS trends over minutes, the fitted slope, % change from baseline, FInsm5 and a state badge.

The trends come from the per-window features the DSP engine computes (mean over usable EMG channels, averaged into
one-second bins). The fitted slope, % change, state and state come from the fatigue tracker's latest report
(``state.fatigue``, a ``dsp.fatigue.FatigueReport``); whatever it does not know yet reads "—". Contractions are the
seconds whose RMS exceeds the tracker's release level (``release_ratio`` x its learned rest RMS): shaded, and the
only part of the MNF/MDF trend drawn bright, since at rest the spectrum is the noise floor's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtWidgets

from dsp.fatigue import FatigueSettings
from monitor.outlets import emg_mean

TREND_BIN_S = 1.0
MAX_WINDOWS = 4 * 3600 * 20  # four hours of 50 ms hops
STATE_COLOURS = {"fresh": (60, 170, 90), "fatiguing": (230, 160, 40), "fatigued": (210, 60, 60)}
FEATURES = ("MNF", "MDF", "RMS", "FInsm5")


@dataclass
class FatigueStatus:
    """What the view shows from the tracker's latest report; None where it has no value (shown as "—")."""

    state: str | None = None
    learning: bool = False
    slope_hz_per_min: float | None = None
    percent_change: float | None = None
    baseline_hz: float | None = None
    fins_change_pct: float | None = None
    rms_change_pct: float | None = None
    timestamp: float | None = None
    contraction_start: float | None = None  # LSL time the current (or last) contraction began
    active: bool = False
    contraction_rms: float | None = None  # channel-mean RMS above which a window counts as contraction


def _mean(values: Any, emg_channels: np.ndarray | None) -> float | None:
    if values is None:
        return None
    value = emg_mean(np.asarray(values, dtype=np.float64), None, emg_channels)
    return value if np.isfinite(value) else None


def fatigue_status(state: Any, release_ratio: float = FatigueSettings().release_ratio) -> FatigueStatus:
    """Channel means of the latest ``dsp.fatigue.FatigueReport`` in ``state.fatigue`` (None: nothing known yet)."""
    with state.lock:
        report = getattr(state, "fatigue", None)
        emg = getattr(state, "emg_channels", None)
    if report is None:
        return FatigueStatus()
    emg = None if emg is None else np.asarray(emg)
    slope_hz = np.asarray(report.mdf_slope_hz_per_min, dtype=np.float64)
    slope_pct = np.asarray(report.mdf_slope_pct_per_min, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        # the report gives the slope in Hz/min and in % of baseline per min: their ratio is the baseline
        baseline = np.where(slope_pct != 0, slope_hz / slope_pct * 100.0, np.nan)
    active = np.asarray(report.active, dtype=bool)
    if emg is not None:
        active = active[emg]
    durations = np.asarray(report.contraction_s, dtype=np.float64)
    durations = durations[emg] if emg is not None else durations
    timestamp = _number(report.timestamp)
    longest = float(np.max(durations)) if len(durations) else 0.0
    rest = _mean(report.rest_rms, emg)
    return FatigueStatus(
        state=str(report.state),
        learning=bool(report.learning),
        slope_hz_per_min=_mean(slope_hz, emg),
        percent_change=_mean(report.mdf_change_pct, emg),
        baseline_hz=_mean(baseline, emg),
        fins_change_pct=_mean(report.fins_change_pct, emg),
        rms_change_pct=_mean(report.rms_change_pct, emg),
        timestamp=timestamp,
        contraction_start=None if timestamp is None or longest <= 0 else timestamp - longest,
        active=bool(active.any()),
        contraction_rms=None if rest is None or report.learning else rest * release_ratio,
    )


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def binned_means(times: np.ndarray, values: np.ndarray, bin_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Means of ``values`` (n, F) in consecutive ``bin_s`` bins of ``times``; NaNs ignored, empty bins dropped."""
    if len(times) == 0:
        return np.empty(0), np.empty((0, values.shape[1]))
    index = np.floor((times - times[0]) / bin_s).astype(np.int64)
    n_bins = int(index[-1]) + 1
    finite = np.isfinite(values)
    sums = np.zeros((n_bins, values.shape[1]))
    counts = np.zeros((n_bins, values.shape[1]))
    np.add.at(sums, index, np.where(finite, values, 0.0))
    np.add.at(counts, index, finite)
    occupied = counts.max(axis=1) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    centres = times[0] + (np.arange(n_bins) + 0.5) * bin_s
    return centres[occupied], means[occupied]


class FeatureHistory:
    """Per-window means over usable EMG channels of the engine features, appended incrementally."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.values: list[np.ndarray] = []

    def collect(self, state: Any) -> int:
        last = self.times[-1] if self.times else -np.inf
        fresh = []
        with state.lock:
            usable = state.usable
            emg = getattr(state, "emg_channels", None)
            for timestamp, features in reversed(state.features):
                if timestamp <= last:
                    break
                fresh.append((timestamp, features))
        fresh.reverse()
        for timestamp, features in fresh:
            row = np.full(len(FEATURES), np.nan)
            for column, name in enumerate(FEATURES):
                if name in features:
                    row[column] = emg_mean(features[name], usable, emg)
            self.times.append(timestamp)
            self.values.append(row)
        if len(self.times) > MAX_WINDOWS:
            del self.times[: len(self.times) - MAX_WINDOWS]
            del self.values[: len(self.values) - MAX_WINDOWS]
        return len(fresh)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.times:
            return np.empty(0), np.empty((0, len(FEATURES)))
        return np.asarray(self.times), np.stack(self.values)


def contraction_spans(centres: np.ndarray, contracting: np.ndarray, bin_s: float) -> list[tuple[float, float]]:
    """(start, end) of each run of contracting bins (bin centres ``centres``, each ``bin_s`` long)."""
    edges = np.diff(np.concatenate([[0], contracting.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return [(centres[a] - bin_s / 2, centres[b] + bin_s / 2) for a, b in zip(starts, ends, strict=True)]


def _dash(value: float | None, fmt: str, suffix: str = "") -> str:
    return "—" if value is None else format(value, fmt) + suffix


class FatigueView(QtWidgets.QWidget):
    def __init__(self, pipeline: Any, origin: Callable[[], float], parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.pipeline = pipeline
        self.origin = origin
        self.history = FeatureHistory()
        self.status = FatigueStatus()
        self.contractions: list[tuple[float, float]] = []
        self._shades: list[pg.LinearRegionItem] = []

        self.badge = QtWidgets.QLabel("—")
        self.badge.setMinimumWidth(90)
        self.badge.setStyleSheet(self._badge_style(None))
        self.readout = QtWidgets.QLabel("MDF slope —  change —")
        self.readout_more = QtWidgets.QLabel("FInsm5 —  RMS —")

        self.frequency_plot = pg.PlotWidget()
        self.rms_plot = pg.PlotWidget()
        for plot in (self.frequency_plot, self.rms_plot):
            plot.setMenuEnabled(False)
            plot.hideButtons()
            plot.getAxis("bottom").enableAutoSIPrefix(False)  # minutes stay minutes, never "mmin"
        self.frequency_plot.setLabel("left", "frequency", units="Hz")
        self.frequency_plot.addLegend(offset=(5, 5), labelTextSize="8pt")
        self.rms_plot.setLabel("left", "RMS (µV)")
        self.rms_plot.setLabel("bottom", "session time (min)")
        self.rms_plot.setXLink(self.frequency_plot)
        # at rest the spectrum is the noise floor's: drawn dim; contraction bins drawn bright on top
        self.mnf_rest_curve = self.frequency_plot.plot(pen=pg.mkPen((255, 200, 60, 70), width=1))
        self.mdf_rest_curve = self.frequency_plot.plot(pen=pg.mkPen((120, 220, 255, 70), width=1))
        self.mnf_curve = self.frequency_plot.plot(pen=pg.mkPen((255, 200, 60), width=2), name="MNF")
        self.mdf_curve = self.frequency_plot.plot(pen=pg.mkPen((120, 220, 255), width=2), name="MDF")
        self.fit_curve = self.frequency_plot.plot(
            pen=pg.mkPen((255, 90, 90), width=2, style=pg.QtCore.Qt.PenStyle.DashLine), name="MDF trend"
        )
        self.rms_curve = self.rms_plot.plot(pen=pg.mkPen((200, 200, 200), width=1.5))

        header = QtWidgets.QHBoxLayout()
        header.addWidget(QtWidgets.QLabel("<b>Fatigue</b>"))
        header.addWidget(self.badge)
        header.addWidget(self.readout, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(header)
        layout.addWidget(self.readout_more)
        layout.addWidget(self.frequency_plot, 3)
        layout.addWidget(self.rms_plot, 2)

    @staticmethod
    def _badge_style(state: str | None) -> str:
        colour = STATE_COLOURS.get((state or "").lower(), (110, 110, 110))
        return (f"background: rgb{colour}; color: white; font-weight: bold; padding: 2px 8px; "
                "border-radius: 4px;")

    def refresh(self) -> None:
        self.history.collect(self.pipeline.state)
        tracker = getattr(self.pipeline.engine, "fatigue", None)
        settings = getattr(tracker, "settings", None) or FatigueSettings()
        self.status = status = fatigue_status(self.pipeline.state, settings.release_ratio)
        times, values = self.history.arrays()
        origin = self.origin()
        if len(times):
            centres, means = binned_means(times, values, TREND_BIN_S)
            minutes = (centres - origin) / 60.0
            threshold = status.contraction_rms
            contracting = means[:, 2] > threshold if threshold is not None else np.zeros(len(means), dtype=bool)
            self.mnf_rest_curve.setData(minutes, means[:, 0], connect="finite")
            self.mdf_rest_curve.setData(minutes, means[:, 1], connect="finite")
            self.mnf_curve.setData(minutes, np.where(contracting, means[:, 0], np.nan), connect="finite")
            self.mdf_curve.setData(minutes, np.where(contracting, means[:, 1], np.nan), connect="finite")
            self.rms_curve.setData(minutes, means[:, 2], connect="finite")
            self.contractions = contraction_spans(centres, contracting, TREND_BIN_S)
        self._draw_fit(origin)
        self._shade_contractions(origin)
        badge = "learning rest" if status.learning else (status.state or "—")
        self.badge.setText(badge)
        self.badge.setStyleSheet(self._badge_style(None if status.learning else status.state))
        self.readout.setText(
            f"MDF slope {_dash(status.slope_hz_per_min, '+.2f', ' Hz/min')}   "
            f"change {_dash(status.percent_change, '+.1f', ' %')}   "
            f"baseline {_dash(status.baseline_hz, '.0f', ' Hz')}"
        )
        latest_finsm5 = values[-1, 3] if len(values) and np.isfinite(values[-1, 3]) else None
        latest_rms = values[-1, 2] if len(values) and np.isfinite(values[-1, 2]) else None
        self.readout_more.setText(
            f"FInsm5 {_dash(latest_finsm5, '.3g')} ({_dash(status.fins_change_pct, '+.0f', ' %')})   "
            f"RMS {_dash(latest_rms, '.0f', ' µV')} ({_dash(status.rms_change_pct, '+.0f', ' %')})   "
            f"{'contracting' if status.active else 'at rest'}"
        )

    def _draw_fit(self, origin: float) -> None:
        status = self.status
        if None in (status.slope_hz_per_min, status.baseline_hz, status.contraction_start, status.timestamp):
            self.fit_curve.setData([], [])
            return
        # the tracker's robust line: its baseline at the contraction's onset, falling at the fitted slope
        ends = np.array([status.contraction_start, status.timestamp])
        elapsed_min = (ends - ends[0]) / 60.0
        self.fit_curve.setData((ends - origin) / 60.0, status.baseline_hz + status.slope_hz_per_min * elapsed_min)

    def _shade_contractions(self, origin: float) -> None:
        for shade in self._shades[len(self.contractions) :]:
            shade.setVisible(False)
        while len(self._shades) < len(self.contractions):
            shade = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(255, 255, 255, 28), pen=pg.mkPen(None))
            shade.setZValue(-10)
            self.frequency_plot.addItem(shade)
            self._shades.append(shade)
        for shade, (start, end) in zip(self._shades, self.contractions, strict=False):
            shade.setRegion(((start - origin) / 60.0, (end - origin) / 60.0))
            shade.setVisible(True)
