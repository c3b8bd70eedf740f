"""Classification trend: class probabilities over the session, and the current call after smoothing and rejection.

A decision whose top probability is under the user's rejection threshold counts as "uncertain"; the label shown is
the majority vote over the last N decisions (LibEMG's post-processing), with the mean probability of that class as
its confidence. Nothing here changes what the model publishes: it is how the clinician chooses to read it.
A decision the pipeline gave no condition (relaxed muscle: "rest"; rest level not known yet: "learning rest level")
votes for that verdict instead of a class, and the trend leaves a gap there: the model also classifies a relaxed
muscle, often with high confidence, and a band of "myopathy 100 %" under a call of "rest" reads as a diagnosis.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtGui, QtWidgets

from monitor.decision_history import MUSCLE_CODES
from monitor.gui.painting import settle_ranges
from monitor.pipeline import REST_LABEL, SPONTANEOUS_LABEL, MuscleState

#: why a verdict that is no condition was shown instead of one (anything else: the rest level is still being learnt)
WITHHELD_BECAUSE = {
    REST_LABEL: "no contraction",
    SPONTANEOUS_LABEL: "no condition: spontaneous potentials at rest, or a very weak contraction",
}

UNCERTAIN = "uncertain"
#: the call label while there is no call (no decision yet, or no model for the layout)
NO_CALL_STYLE = "font-size: 11pt; color: rgb(160, 160, 160);"
#: beside a needle model's verdict (its card's intended use): the surface model's caveat comes from its card
NEEDLE_NOTE = "needle model: decision support for the electromyographer reading the MUPs, not a diagnosis"
#: under the key of the trend: why it has gaps
GAPS_NOTE = "gaps: no contraction or learning the rest level (no condition)"
CLASS_COLOURS = {"healthy": (80, 190, 110), "myopathy": (240, 150, 50), "neuropathy": (170, 110, 230)}
SPARE_COLOURS = [(80, 160, 240), (230, 90, 90), (200, 200, 80), (90, 210, 210), (200, 120, 180)]
MAX_POINTS = 4000
MAX_VOTES = 41
#: points per polygon of a stacked band (pyqtgraph fills a curve down to its level in chunks of 50 for the same reason)
BAND_CHUNK_POINTS = 50


def class_colour(name: str, index: int) -> tuple[int, int, int]:
    return CLASS_COLOURS.get(name.lower(), SPARE_COLOURS[index % len(SPARE_COLOURS)])


def model_note(model_id: str | None) -> str | None:
    """What a clinician must read beside this model's verdict: the bundled surface model learnt simulated patients
    only (its card says so); a needle model (bundled, or calibrated from it: its id names the needle) is decision
    support, not a diagnosis. None for any other model."""
    from models.model_card import simulated_only_note

    note = simulated_only_note(model_id)
    if note is None and model_id and "needle" in model_id.lower():
        return NEEDLE_NOTE
    return note


def _aside(reason: str) -> str:
    """Why the call is no condition, in normal type after it: in the call's 20 pt bold the reason for "rest:
    potentials present" took three lines of the condition view."""
    return f'<span style="font-size: 10pt; font-weight: normal;">({reason})</span>'


def class_key_html(classes: Sequence[str]) -> str:
    """The classes' colours as a line of text above the trend: a legend inside the plot covered the bands."""
    return "  ".join(f'<span style="color: rgb{class_colour(name, index)};">&#9632; {name}</span>'
                     for index, name in enumerate(classes))


def smoothed_call(
    probabilities: np.ndarray, classes: Sequence[str], votes: int, threshold: float,
    withheld: Sequence[str | None] | None = None,
) -> tuple[str, float]:
    """(label, confidence) from the last ``votes`` rows of ``probabilities`` (n, K).

    Each row votes for its top class, or for "uncertain" when that class's probability is under ``threshold``;
    a row whose ``withheld`` entry is a verdict without a condition ("rest", "learning rest level") votes for that
    verdict instead. The most frequent vote wins (ties go to the most recent). Confidence is the winner's mean
    probability over those rows that were not withheld (for "uncertain", the mean of each row's top probability; NaN
    for a withheld verdict, which has no probability)."""
    recent = np.asarray(probabilities)[-max(1, votes) :]
    if len(recent) == 0:
        return UNCERTAIN, float("nan")
    reasons = [None] * len(recent) if withheld is None else list(withheld)[-len(recent) :]
    tops = recent.argmax(axis=1)
    top_values = recent[np.arange(len(recent)), tops]
    ballots = [
        reason if reason is not None else classes[t] if p >= threshold else UNCERTAIN
        for t, p, reason in zip(tops, top_values, reasons, strict=True)
    ]
    counts = Counter(ballots)
    best = max(counts.values())
    label = next(b for b in reversed(ballots) if counts[b] == best)
    if label in reasons:
        return label, float("nan")
    # rows without a condition have probabilities the clinician is not shown: they make no confidence either
    judged = np.array([reason is None for reason in reasons])
    if label == UNCERTAIN:
        return label, float(top_values[judged].mean())
    return label, float(recent[judged, list(classes).index(label)].mean())


def band_polygons(x: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                  chunk: int = BAND_CHUNK_POINTS) -> list[QtGui.QPolygonF]:
    """The area between ``lower`` and ``upper`` over ``x`` as polygons of at most ``chunk`` points a side.

    Each run of finite points is cut into pieces that share their end columns. Qt fills one polygon with thousands of
    jagged edges very slowly (a session's stacked band: ~30 ms a paint); small pieces fill the same pixels quickly,
    since a pixel is filled when its centre lies inside and a shared edge gives each centre to one piece only."""
    finite = np.isfinite(x) & np.isfinite(lower) & np.isfinite(upper)
    edges = np.diff(np.concatenate([[0], finite.astype(np.int8), [0]]))
    polygons = []
    for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        for first in range(start, stop - 1, chunk - 1):
            last = min(first + chunk, stop)
            xs = np.concatenate([x[first:last], x[first:last][::-1]])
            ys = np.concatenate([lower[first:last], upper[first:last][::-1]])
            polygons.append(pg.functions.arrayToQPolygonF(xs, ys))
    return polygons


class BandFill(pg.GraphicsObject):
    """Fills between two curves, like ``pg.FillBetweenItem``, but in pieces (``band_polygons``); drawn below them."""

    def __init__(self, lower: pg.PlotDataItem, upper: pg.PlotDataItem, brush: QtGui.QBrush) -> None:
        super().__init__()
        self.curves = (lower, upper)
        self.brush = brush
        self._polygons: list[QtGui.QPolygonF] | None = None  # None: to be cut from ``_data`` at the next paint
        self._data: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._bounds = QtCore.QRectF()
        for curve in self.curves:
            curve.sigPlotChanged.connect(self._curves_changed)
        self.setZValue(min(lower.zValue(), upper.zValue()) - 1)
        self._curves_changed()

    def _curves_changed(self, *_: Any) -> None:
        # each refresh changes both curves one after the other: the pieces are cut once, at the next paint
        (x, lower), (_, upper) = (curve.getData() for curve in self.curves)
        self.prepareGeometryChange()
        self._polygons, self._bounds = None, QtCore.QRectF()
        if x is not None and upper is not None and len(x) == len(upper) and len(x) >= 2:
            self._data = tuple(np.asarray(values, dtype=float) for values in (x, lower, upper))
            finite = np.isfinite(self._data[0]) & np.isfinite(self._data[1]) & np.isfinite(self._data[2])
            if finite.any():
                xs, ys = self._data[0][finite], np.concatenate([self._data[1][finite], self._data[2][finite]])
                self._bounds = QtCore.QRectF(xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min())
        else:
            self._data = None
        self.update()

    def boundingRect(self) -> QtCore.QRectF:  # noqa: N802 - Qt's name
        return self._bounds

    def paint(self, painter: QtGui.QPainter, *_: Any) -> None:
        if self._polygons is None:
            self._polygons = [] if self._data is None else band_polygons(*self._data)
        painter.setPen(QtCore.Qt.PenStyle.NoPen)
        painter.setBrush(self.brush)
        for polygon in self._polygons:
            painter.drawPolygon(polygon)


class SessionTrend:
    """Timestamped rows appended to arrays that double when full: a whole session stays cheap to append and read."""

    def __init__(self, width: int, capacity: int = 4096) -> None:
        self._times = np.empty(capacity)
        self._rows = np.empty((capacity, width))
        self.size = 0

    def extend(self, times: np.ndarray, rows: np.ndarray) -> None:
        needed = self.size + len(times)
        if needed > len(self._times):
            capacity = max(needed, 2 * len(self._times))
            self._times = np.resize(self._times, capacity)
            self._rows = np.resize(self._rows, (capacity, self._rows.shape[1]))
        self._times[self.size : needed] = times
        self._rows[self.size : needed] = rows
        self.size = needed

    @property
    def times(self) -> np.ndarray:
        return self._times[: self.size]

    @property
    def rows(self) -> np.ndarray:
        return self._rows[: self.size]


class ClassificationView(QtWidgets.QWidget):
    def __init__(self, pipeline: Any, origin: Callable[[], float], parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.pipeline = pipeline
        self.origin = origin  # callable -> LSL time of the session's start, shared by the trend views
        self.classes: list[str] = []
        self.trend = SessionTrend(0)
        self.no_condition = SessionTrend(1)  # 1 where the decision gave no condition (rest, learning the rest level)
        # the verdicts without a condition of the latest decisions (None: a condition), as many as the vote can use
        self.withheld: deque[str | None] = deque(maxlen=MAX_VOTES)
        self.last_published = 0  # MonitorState.decisions_published when this view last read the decisions
        self.last_sequence = -1  # the newest decision drawn
        self.label = UNCERTAIN
        self.confidence = float("nan")
        self._items: list[Any] = []
        self._call_style = ""  # the call label's style sheet now (restyling costs a re-polish: only on change)

        self.call_label = QtWidgets.QLabel("—")
        self.call_label.setWordWrap(True)
        # where the deciding model learnt: the bundled surface model saw simulated patients only (issue 18)
        self.model_id: str | None = None
        self.provenance_label = QtWidgets.QLabel("")
        self.provenance_label.setStyleSheet("color: rgb(200, 160, 60); font-size: 8pt;")
        self.provenance_label.setWordWrap(True)
        self.provenance_label.setVisible(False)
        self.key_label = QtWidgets.QLabel("")
        self.key_label.setStyleSheet("font-size: 8pt;")
        self.votes_box = QtWidgets.QSpinBox()
        self.votes_box.setRange(1, MAX_VOTES)
        self.votes_box.setValue(9)
        self.votes_box.setToolTip("majority vote over this many decisions")
        self.threshold_box = QtWidgets.QDoubleSpinBox()
        self.threshold_box.setRange(0.0, 0.99)
        self.threshold_box.setSingleStep(0.05)
        self.threshold_box.setValue(0.6)
        self.threshold_box.setToolTip("decisions whose top probability is below this count as uncertain")
        self.style_box = QtWidgets.QComboBox()
        self.style_box.addItems(["stacked", "lines"])
        self.style_box.currentIndexChanged.connect(self._rebuild_items)
        for box in (self.votes_box, self.threshold_box):
            box.valueChanged.connect(self._update_call)

        self.plot = pg.PlotWidget()
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.setLabel("bottom", "session time (min)")
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.plot.setLabel("left", "probability")
        self.plot.setYRange(0, 1, padding=0.02)
        dotted = pg.mkPen((200, 200, 200), style=pg.QtCore.Qt.PenStyle.DotLine)
        self.threshold_line = pg.InfiniteLine(angle=0, pen=dotted)
        self.threshold_line.setVisible(False)  # the default style is stacked, where no line is drawn
        self.plot.addItem(self.threshold_line)

        controls = QtWidgets.QHBoxLayout()
        controls.addWidget(QtWidgets.QLabel("<b>Condition</b>"))
        controls.addWidget(QtWidgets.QLabel("vote"))
        controls.addWidget(self.votes_box)
        controls.addWidget(QtWidgets.QLabel("reject <"))
        controls.addWidget(self.threshold_box)
        controls.addWidget(self.style_box)
        controls.addStretch(1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(controls)
        layout.addWidget(self.call_label)
        layout.addWidget(self.provenance_label)
        layout.addWidget(self.key_label)
        layout.addWidget(self.plot, 1)

    @property
    def probabilities(self) -> np.ndarray:
        """(decisions, classes) since the session started (or since the model's classes last changed)."""
        return self.trend.rows

    def _collect(self) -> bool:
        state = self.pipeline.state
        with state.lock:
            # by the published count, not by sequence: two workers answer out of sequence order
            fresh = state.decisions.recent_columns(
                state.decisions_published - self.last_published,
                ("sequence", "last_timestamp", "probabilities", "classes", "label", "muscle", "model_id"),
            )
            self.last_published = state.decisions_published
            class_sets, labels = state.decisions.class_sets, state.decisions.labels
            model_ids = state.decisions.model_ids
        if not len(fresh["sequence"]):
            return False
        model_id = model_ids[fresh["model_id"][-1]]
        if model_id != self.model_id:  # the card is read once per model, not per refresh
            self.model_id = model_id
            note = model_note(model_id)
            self.provenance_label.setText(note or "")
            self.provenance_label.setVisible(note is not None)
        changes = np.flatnonzero(fresh["classes"][1:] != fresh["classes"][:-1])
        start = int(changes[-1]) + 1 if len(changes) else 0
        classes = list(class_sets[fresh["classes"][-1]])
        if start > 0 or classes != self.classes:
            # another model (or its first decision): its probabilities are not comparable with the old ones
            fresh = {name: column[start:] for name, column in fresh.items()}
            self.classes = classes
            self.trend = SessionTrend(len(classes))
            self.no_condition = SessionTrend(1)
            self.withheld.clear()
            self._rebuild_items()
        times, muscle = fresh["last_timestamp"], fresh["muscle"]
        self.trend.extend(times, fresh["probabilities"][:, : len(classes)].astype(np.float64))
        contracting = MUSCLE_CODES[MuscleState.CONTRACTING]
        self.no_condition.extend(times, (muscle != contracting)[:, None].astype(np.float64))
        self.withheld.extend(None if code == contracting else labels[label]
                             for code, label in zip(muscle.tolist(), fresh["label"].tolist(), strict=True))  # fmt: skip
        self.last_sequence = int(fresh["sequence"][-1])
        return True

    def _rebuild_items(self) -> None:
        for item in self._items:
            self.plot.removeItem(item)
        self._items = []
        self.key_label.setText(f"{class_key_html(self.classes)}  <span style='color: gray;'>{GAPS_NOTE}</span>")
        stacked = self.style_box.currentText() == "stacked"
        self.threshold_line.setVisible(not stacked)
        previous = None
        for index, name in enumerate(self.classes):
            colour = class_colour(name, index)
            curve = pg.PlotDataItem(pen=pg.mkPen(colour, width=1 if stacked else 2), name=name)
            self.plot.addItem(curve)
            self._items.append(curve)
            if stacked and previous is None:
                # the first band fills down to zero; each next one fills between its curve and the one below
                curve.setFillLevel(0.0)
                curve.setFillBrush(pg.mkBrush(*colour, 150))
            elif stacked:
                band = BandFill(previous, curve, pg.mkBrush(*colour, 150))
                self.plot.addItem(band)
                self._items.append(band)
            previous = curve
        self._redraw()

    def _curves(self) -> list[pg.PlotDataItem]:
        return [item for item in self._items if isinstance(item, pg.PlotDataItem)]

    def _redraw(self) -> None:
        if not self.trend.size:
            return
        origin = self.origin()
        times = (self.trend.times - origin) / 60.0
        step = max(1, len(times) // MAX_POINTS)  # a whole session stays a few thousand points on screen
        times, values = times[::step], self.probabilities[::step].copy()
        # at rest or before the rest level is known the model's probabilities are no condition: a gap, not a band
        values[self.no_condition.rows[::step, 0] > 0] = np.nan
        stacked = self.style_box.currentText() == "stacked"
        if stacked:
            values = np.cumsum(values, axis=1)
        for curve, column in zip(self._curves(), values.T, strict=False):
            curve.setData(times, column, connect="finite")

    def _update_call(self) -> None:
        self.threshold_line.setValue(self.threshold_box.value())
        if not self.trend.size:
            # a session running no model (none fits this layout) says so rather than waiting for decisions, in
            # plain type: in the call's 20 pt bold it is no call, and at 256 channels it pushed the fatigue view aside
            self._set_call_style(NO_CALL_STYLE)
            status = getattr(self.pipeline.state, "model_status", None)
            if status is None and hasattr(self.pipeline, "client") and self.pipeline.client is None:
                status = "no condition model running (--no-inference: filters, features and fatigue only)"
            self.call_label.setText(status or "— (no decision yet)")
            return
        self.label, self.confidence = smoothed_call(
            self.probabilities, self.classes, self.votes_box.value(), self.threshold_box.value(), self.withheld
        )
        if self.label in self.withheld:
            colour = (160, 160, 160)
            why = WITHHELD_BECAUSE.get(self.label, "no condition until the rest level is known")
            text = f"{self.label}  {_aside(why)}"
        elif self.label == UNCERTAIN:
            colour = (160, 160, 160)
            text = f"uncertain  {_aside(f'top class {self.confidence:.0%} < {self.threshold_box.value():.0%}')}"
        else:
            colour = class_colour(self.label, self.classes.index(self.label))
            text = f"{self.label}  {self.confidence:.0%}"
        self._set_call_style(f"font-size: 20pt; font-weight: bold; color: rgb{colour};")
        self.call_label.setText(text)

    def _set_call_style(self, style: str) -> None:
        if style != self._call_style:
            self._call_style = style
            self.call_label.setStyleSheet(style)

    def refresh(self) -> None:
        if self._collect():
            self._redraw()
            settle_ranges(self.plot)
        self._update_call()
