"""Fatigue: MNF/MDF and RMS trends over minutes, the fitted slope, % change from baseline, FInsm5 and a state badge.

The trends come from the per-window features the DSP engine computes (mean over usable EMG channels, averaged into
one-second bins). The fitted slope, % change, state and state come from the fatigue tracker's latest report
(``state.fatigue``, a ``dsp.fatigue.FatigueReport``); whatever it does not know yet reads "—". Contractions are the
seconds whose RMS exceeds the tracker's release level (``release_ratio`` x its learned rest RMS): shaded, and the
only part of the MNF/MDF trend drawn bright, since at rest the spectrum is the noise floor's. FInsm5 is drawn as
the tracker's % change from its steady baseline (``relative_to_baseline``): nothing from a contraction's first
``settle_s``, nothing where the tracker would not assess a change. The badge reads "not assessed" (its reason on
hover) wherever the tracker judged no MDF change: never "fresh".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtWidgets

from dsp.fatigue import NOT_ASSESSED, FatigueSettings
from models.prognosis import EPOCH_S
from monitor.gui.endurance import EnduranceForecast
from monitor.gui.painting import settle_ranges
from monitor.number_text import dash_number
from monitor.outlets import emg_mean

TREND_BIN_S = 1.0
#: how far past the newest data the MDF forecast is drawn, as a share of the session shown (at least FORECAST_MIN_S):
#: drawn to its 2-minute horizon from the first minute, it squeezed the measured trends into a fifth of the width
FORECAST_SHARE = 0.5
FORECAST_MIN_S = 30.0
MNF_COLOUR, MDF_COLOUR, FIT_COLOUR = (255, 200, 60), (120, 220, 255), (255, 90, 90)
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
    reason: str | None = None  # why the state is "not assessed"
    # the tracker's steady baseline of the current contraction (channel means; None: none yet) and when that
    # contraction began: the FInsm5 trend is drawn against it, never against the contraction's onset
    fins_baseline: float | None = None
    rms_baseline: float | None = None
    baseline_start: float | None = None


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
    fins_baseline = _mean(getattr(report, "fins_baseline", None), emg)
    starts = np.asarray(getattr(report, "contraction_start", np.empty(0)), dtype=np.float64)
    starts = starts[emg] if emg is not None and len(starts) else starts
    # the tracker's clock (dsp.engine: the sample counter's) onto the LSL time the trends are drawn in
    clock = _number(getattr(report, "clock_s", None))
    starts = starts[np.isfinite(starts)] + (0.0 if clock is None or timestamp is None else timestamp - clock)
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
        reason=(getattr(report, "reason", "") or None) if report.state == NOT_ASSESSED else None,
        fins_baseline=fins_baseline,
        rms_baseline=_mean(getattr(report, "rms_baseline", None), emg),
        baseline_start=float(np.median(starts)) if fins_baseline is not None and len(starts) else None,
    )


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def emg_means(values: np.ndarray, usable: np.ndarray | None, emg_channels: np.ndarray | None) -> np.ndarray:
    """``emg_mean`` of each row of ``values`` (windows, C) in one pass: a refresh after a pause (or the first one,
    over the whole 20-minute history) would otherwise call it tens of thousands of times."""
    selected = np.zeros(values.shape[1], dtype=bool)
    selected[emg_channels if emg_channels is not None else slice(None)] = True
    if usable is not None and (selected & usable).any():
        selected &= usable
    chosen = np.asarray(values[:, selected], dtype=np.float64)
    finite = np.isfinite(chosen)
    counts = finite.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, np.where(finite, chosen, 0.0).sum(axis=1) / counts, np.nan)


class FeatureHistory:
    """Means over usable EMG channels of the engine features, averaged into ``bin_s`` bins as windows arrive.

    Binning as the windows come keeps a whole day of trend at one row a second, and each refresh touches only the
    windows that arrived since the last one."""

    def __init__(self, bin_s: float = TREND_BIN_S) -> None:
        self.bin_s = bin_s
        self.windows = 0
        self.last_time = -np.inf
        self.latest = np.full(len(FEATURES), np.nan)  # the newest window's row
        self._origin: float | None = None
        self._ids = np.empty(0, dtype=np.int64)
        self._sums = np.empty((0, len(FEATURES)))
        self._counts = np.empty((0, len(FEATURES)))

    def collect(self, state: Any) -> int:
        with state.lock:
            usable = state.usable
            emg = getattr(state, "emg_channels", None)
            times, features = state.features.since(self.last_time, names=FEATURES, inclusive=False)
        if not len(times):
            return 0
        rows = np.full((len(times), len(FEATURES)), np.nan)
        for column, name in enumerate(FEATURES):
            if name in features:
                rows[:, column] = emg_means(features[name], usable, emg)
        self._add(times, rows)
        self.windows += len(times)
        self.last_time, self.latest = float(times[-1]), rows[-1]
        return len(times)

    def _add(self, times: np.ndarray, rows: np.ndarray) -> None:
        if self._origin is None:
            self._origin = float(times[0])
        ids = np.floor((times - self._origin) / self.bin_s).astype(np.int64)
        finite = np.isfinite(rows)
        values = np.where(finite, rows, 0.0)
        starts = np.flatnonzero(np.diff(ids, prepend=ids[0] - 1))  # windows come in time order: runs of one bin
        ids, sums, counts = ids[starts], np.add.reduceat(values, starts), np.add.reduceat(finite, starts)
        if len(self._ids) and ids[0] == self._ids[-1]:  # the first run continues the open bin
            self._sums[-1] += sums[0]
            self._counts[-1] += counts[0]
            ids, sums, counts = ids[1:], sums[1:], counts[1:]
        self._ids = np.concatenate([self._ids, ids])
        self._sums = np.concatenate([self._sums, sums])
        self._counts = np.concatenate([self._counts, counts])

    def binned(self) -> tuple[np.ndarray, np.ndarray]:
        """(bin centres in LSL time (B,), mean of each feature in each bin (B, 4); NaN where nothing was finite)."""
        if self._origin is None:
            return np.empty(0), np.empty((0, len(FEATURES)))
        with np.errstate(invalid="ignore", divide="ignore"):
            means = self._sums / self._counts
        return self._origin + (self._ids + 0.5) * self.bin_s, means


def relative_to_baseline(centres: np.ndarray, values: np.ndarray, rms: np.ndarray, contracting: np.ndarray,
                         baselines: list[tuple[float, float, float]], settings: FatigueSettings,
                         bin_s: float = TREND_BIN_S) -> np.ndarray:  # fmt: skip
    """FInsm5 bins (centres ``centres``) in % change from the fatigue tracker's steady baseline, the figure its
    readout gives; NaN (a gap) wherever the tracker would not assess one.

    ``baselines`` holds (contraction start, FInsm5 baseline, RMS baseline) of each contraction the tracker found a
    steady baseline for. A bin is drawn only inside the run of contracting bins that holds that contraction's
    settled part, from ``settle_s`` after its start (the onset never enters a baseline), and only while its RMS lies
    within ``same_force_ratio`` of the baseline's (another force is another contraction: not assessed). Drawn
    against the first bins of each contraction instead, the trend spiked ~230 % at a neuropathy demo's onset."""
    out = np.full(len(values), np.nan)
    if not len(values):
        return out
    edges = np.diff(np.concatenate([[0], contracting.astype(np.int8), [0]]))
    run_starts, run_ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    begins = centres - bin_s / 2
    # each contraction touches only its own bins (searchsorted): a day-long session holds hundreds of contractions
    # and 86400 bins, redrawn every refresh
    for start, fins_baseline, rms_baseline in baselines:
        if not (fins_baseline > 0 and rms_baseline > 0):
            continue
        first = int(np.searchsorted(begins, start + settings.settle_s - 1e-9))
        run = int(np.searchsorted(run_starts, first, side="right")) - 1
        if first >= len(values) or run < 0 or run_ends[run] <= first:
            continue
        part = slice(first, int(run_ends[run]))
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = rms[part] / rms_baseline
            at_force = (ratio <= settings.same_force_ratio) & (ratio >= 1.0 / settings.same_force_ratio)
            out[part] = np.where(at_force, (values[part] / fins_baseline - 1.0) * 100.0, np.nan)
    return out


def contraction_spans(centres: np.ndarray, contracting: np.ndarray, bin_s: float) -> list[tuple[float, float]]:
    """(start, end) of each run of contracting bins (bin centres ``centres``, each ``bin_s`` long)."""
    edges = np.diff(np.concatenate([[0], contracting.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return [(centres[a] - bin_s / 2, centres[b] + bin_s / 2) for a, b in zip(starts, ends, strict=True)]


def frequency_key_html() -> str:
    """The frequency plot's key as a line of text above it: a legend inside the plot covered the trends."""
    def swatch(colour: tuple[int, int, int], mark: str, name: str) -> str:
        return f'<span style="color: rgb{colour};">{mark} {name}</span>'
    return "  ".join([swatch(MNF_COLOUR, "━", "MNF"), swatch(MDF_COLOUR, "━", "MDF"),
                      swatch(FIT_COLOUR, "╍", "MDF trend"), swatch(FIT_COLOUR, "┄", "MDF forecast (90 % band)"),
                      "<span style='color: gray;'>shaded: contraction</span>"])


def fit_left_label(plot: pg.PlotWidget, text: str) -> None:
    """A small left-axis label, and a plot at least as tall as it: in a needle window the three plots got ~50 px
    each and "frequency (kHz)", "FInsm5 (%)" were cut to "requency (" and "FInsm5 (". Hz stay Hz (no "kHz": the
    surface and needle trends read alike)."""
    axis = plot.getAxis("left")
    axis.enableAutoSIPrefix(False)
    # a style given replaces pyqtgraph's default one: the colour has to be named too (it came out near black)
    plot.setLabel("left", text, **{"font-size": "8pt", "color": "#c8c8c8"})
    # the bottom axis and the margins take ~40 px of the widget's height
    plot.setMinimumHeight(int(np.ceil(axis.label.boundingRect().width())) + 44)


class FatigueView(QtWidgets.QWidget):
    def __init__(self, pipeline: Any, origin: Callable[[], float], parent: QtWidgets.QWidget | None = None,
                 forecast: EnduranceForecast | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self.pipeline = pipeline
        self.origin = origin
        self.history = FeatureHistory()
        # the LSTM's "endurance left" (models/prognosis.py), loaded in the background unless given
        self.forecast = forecast or EnduranceForecast()
        self.status = FatigueStatus()
        self.contractions: list[tuple[float, float]] = []
        self._shades: list[pg.LinearRegionItem] = []
        self._badge_state: str | None = None  # the state the badge's style sheet shows (restyling costs a re-polish)
        # (start, FInsm5 baseline, RMS baseline) of each contraction the tracker gave a steady baseline: the tracker
        # forgets a contraction's start after it ends, the trend keeps drawing it
        self.fins_baselines: list[tuple[float, float, float]] = []

        self.badge = QtWidgets.QLabel("—")
        self.badge.setMinimumWidth(90)
        self.badge.setStyleSheet(self._badge_style(None))
        self.readout = QtWidgets.QLabel("MDF slope —  change —")
        self.readout_more = QtWidgets.QLabel("FInsm5 —  RMS —")
        self.key_label = QtWidgets.QLabel(frequency_key_html())
        self.key_label.setStyleSheet("font-size: 8pt;")
        self.endurance_label = QtWidgets.QLabel(self.forecast.text())

        self.frequency_plot = pg.PlotWidget()
        self.rms_plot = pg.PlotWidget()
        self.fins_plot = pg.PlotWidget()
        for plot in (self.frequency_plot, self.rms_plot, self.fins_plot):
            plot.setMenuEnabled(False)
            plot.hideButtons()
            plot.getAxis("bottom").enableAutoSIPrefix(False)  # minutes stay minutes, never "mmin"
        for plot, label in ((self.frequency_plot, "MNF/MDF (Hz)"), (self.rms_plot, "RMS (µV)"),
                            (self.fins_plot, "FInsm5 Δ (%)")):
            fit_left_label(plot, label)
        self.rms_plot.setXLink(self.frequency_plot)
        self.fins_plot.setLabel("bottom", "session time (min)")
        self.fins_plot.setXLink(self.frequency_plot)
        # at rest the spectrum is the noise floor's: drawn dim; contraction bins drawn bright on top
        self.mnf_rest_curve = self.frequency_plot.plot(pen=pg.mkPen((255, 200, 60, 70), width=1))
        self.mdf_rest_curve = self.frequency_plot.plot(pen=pg.mkPen((120, 220, 255, 70), width=1))
        self.mnf_curve = self.frequency_plot.plot(pen=pg.mkPen(MNF_COLOUR, width=2), name="MNF")
        self.mdf_curve = self.frequency_plot.plot(pen=pg.mkPen(MDF_COLOUR, width=2), name="MDF")
        self.fit_curve = self.frequency_plot.plot(
            pen=pg.mkPen(FIT_COLOUR, width=2, style=pg.QtCore.Qt.PenStyle.DashLine), name="MDF trend"
        )
        # the forecast MDF over the next minutes with its 90 % band, after the last complete epoch
        forecast_pen = pg.mkPen(FIT_COLOUR, width=1.5, style=pg.QtCore.Qt.PenStyle.DotLine)
        self.forecast_curve = self.frequency_plot.plot(pen=forecast_pen, name="MDF forecast")
        self.forecast_low = self.frequency_plot.plot(pen=pg.mkPen(None))
        self.forecast_high = self.frequency_plot.plot(pen=pg.mkPen(None))
        self.frequency_plot.addItem(pg.FillBetweenItem(self.forecast_low, self.forecast_high,
                                                       brush=pg.mkBrush(255, 90, 90, 40)))  # fmt: skip
        self.rms_curve = self.rms_plot.plot(pen=pg.mkPen((200, 200, 200), width=1.5))
        # FInsm5 (Dimitrov's most sensitive index) in its own plot: its units have nothing to do with µV (a second
        # ViewBox sharing the RMS plot crashed Qt on teardown)
        self.fins_curve = self.fins_plot.plot(pen=pg.mkPen((192, 128, 255), width=1.5))

        header = QtWidgets.QHBoxLayout()
        header.addWidget(QtWidgets.QLabel("<b>Fatigue</b>"))
        header.addWidget(self.badge)
        header.addWidget(self.readout, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(header)
        layout.addWidget(self.readout_more)
        layout.addWidget(self.endurance_label)
        layout.addWidget(self.key_label)
        layout.addWidget(self.frequency_plot, 3)
        layout.addWidget(self.rms_plot, 2)
        layout.addWidget(self.fins_plot, 2)

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
        centres, means = self.history.binned()
        origin = self.origin()
        if len(centres):
            minutes = (centres - origin) / 60.0
            threshold = status.contraction_rms
            contracting = means[:, 2] > threshold if threshold is not None else np.zeros(len(means), dtype=bool)
            self.mnf_rest_curve.setData(minutes, means[:, 0], connect="finite")
            self.mdf_rest_curve.setData(minutes, means[:, 1], connect="finite")
            self.mnf_curve.setData(minutes, np.where(contracting, means[:, 0], np.nan), connect="finite")
            self.mdf_curve.setData(minutes, np.where(contracting, means[:, 1], np.nan), connect="finite")
            self.rms_curve.setData(minutes, means[:, 2], connect="finite")
            self._remember_baseline(status, settings)
            fins = relative_to_baseline(centres, means[:, 3], means[:, 2], contracting, self.fins_baselines, settings)
            self.fins_curve.setData(minutes, fins, connect="finite")
            self.contractions = contraction_spans(centres, contracting, TREND_BIN_S)
            self.forecast.update(means[:, 1], contracting, TREND_BIN_S)
        self._draw_forecast(centres, origin)
        self.endurance_label.setText(self.forecast.text())
        self._draw_fit(origin)
        self._shade_contractions(origin)
        badge = "learning rest" if status.learning else (status.state or "—")
        self.badge.setText(badge)
        # "not assessed" (no contraction, no steady baseline, another force): the reason on hover
        self.badge.setToolTip(status.reason or "")
        badge_state = None if status.learning else status.state
        if badge_state != self._badge_state:
            self._badge_state = badge_state
            self.badge.setStyleSheet(self._badge_style(badge_state))
        self.readout.setText(
            f"MDF slope {dash_number(status.slope_hz_per_min, '+.1f', ' Hz/min')}   "  # 0.01 Hz/min is noise
            f"change {dash_number(status.percent_change, '+.1f', ' %')}   "
            f"baseline {dash_number(status.baseline_hz, '.0f', ' Hz')}"
        )
        latest = self.history.latest
        latest_rms = float(latest[2]) if np.isfinite(latest[2]) else None
        # FInsm5's absolute value (~1e-15 in SI units) means nothing at the bedside: only its change is shown
        self.readout_more.setText(
            f"FInsm5 change {dash_number(status.fins_change_pct, '+.0f', ' %')}   "
            f"RMS {dash_number(latest_rms, '.0f', ' µV')} ({dash_number(status.rms_change_pct, '+.0f', ' %')})   "
            f"{'contracting' if status.active else 'at rest'}"
        )
        settle_ranges(self.frequency_plot, self.rms_plot, self.fins_plot)

    def _remember_baseline(self, status: FatigueStatus, settings: FatigueSettings) -> None:
        if None in (status.fins_baseline, status.rms_baseline, status.baseline_start):
            return
        entry = (float(status.baseline_start), float(status.fins_baseline), float(status.rms_baseline))
        # the same contraction (its start known to an epoch) replaces its entry: the baseline is set once per
        # contraction, but the channel mean may gain channels
        if self.fins_baselines and abs(self.fins_baselines[-1][0] - entry[0]) <= settings.epoch_s + 1e-6:
            self.fins_baselines[-1] = entry
        else:
            self.fins_baselines.append(entry)

    def _draw_forecast(self, centres: np.ndarray, origin: float) -> None:
        estimate, start = self.forecast.estimate, self.forecast.start
        if estimate is None or start is None or self.forecast.state != "forecast":
            for curve in (self.forecast_curve, self.forecast_low, self.forecast_high):
                curve.setData([], [])
            return
        mean = np.asarray(estimate["forecast_hz"])
        spread = 1.645 * np.asarray(estimate["forecast_std_hz"])  # the 90 % band endurance_left uses
        # epoch k of the forecast ends (k + 1) epochs after the last complete epoch of the contraction
        last_end = centres[start] - TREND_BIN_S / 2 + len(self.forecast.epochs) * EPOCH_S
        seconds = last_end + EPOCH_S * np.arange(1, len(mean) + 1)
        shown_s = max(FORECAST_MIN_S, FORECAST_SHARE * (centres[-1] - centres[0]))
        keep = seconds <= centres[-1] + shown_s  # the endurance readout gives the rest of it
        minutes = (seconds[keep] - origin) / 60.0
        mean, spread = mean[keep], spread[keep]
        self.forecast_curve.setData(minutes, mean)
        self.forecast_low.setData(minutes, mean - spread)
        self.forecast_high.setData(minutes, mean + spread)

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
