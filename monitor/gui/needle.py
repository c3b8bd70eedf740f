"""Needle-EMG view: motor-unit potentials of the last seconds, their measures against the reference ranges, and the
rule-based reading beside the network's class probabilities, with the agreement between the two.

The analysis runs in ``monitor.needle_live`` (a background thread); this view only draws its latest snapshot, so a
slow analysis never stalls the traces. The network's side is the mean of the verdicts the pipeline received whose
newest sample lies in the same span; each verdict reads the newest ``MODEL_STRETCH_S`` (5 s) of signal, as the model
was trained on whole 5 s recordings, so the network's side also covers up to 5 s before the span.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtGui, QtWidgets

from dsp.mup_measures import INDIVIDUAL_REFERENCE, MEAN_REFERENCE
from dsp.mup_reading import NETWORK_CLASSES, READING_TO_CONDITION, agreement
from monitor.decision_history import MUSCLE_CODES
from monitor.gui.classification import class_colour
from monitor.needle_live import (
    DEFAULT_INTERVAL_S,
    DEFAULT_WINDOW_S,
    MODEL_STRETCH_S,
    LiveNeedleAnalysis,
    NeedleSnapshot,
)
from monitor.pipeline import MuscleState

#: under both readings, always: neither the rules nor the network diagnose (the needle model card's intended use)
CAVEAT = "decision support for the electromyographer reading the MUPs, not a diagnosis"

# (header, MupMeasures attribute or None for the firing rate, decimals)
COLUMNS = (
    ("rate (Hz)", None, 1),
    ("amplitude (µV)", "amplitude_uv", 0),
    ("duration (ms)", "duration_ms", 1),
    ("phases", "phases", 1),
    ("turns", "turns", 1),
    ("area (µV·ms)", "area_uv_ms", 0),
    ("satellites", "satellites", 0),
)
# a short MUP points to myopathy, a long one to neuropathy: flags take the colours of those classes
FLAG_COLOURS = {"low": class_colour("myopathy", 1), "high": class_colour("neuropathy", 2)}
FLAG_MARKS = {"low": " ↓", "high": " ↑", "normal": ""}
READING_COLOURS = {"normal": class_colour("healthy", 0), **{k: class_colour(v, 0) for k, v in
                                                              READING_TO_CONDITION.items() if k != "normal"}}
UNIT_COLOURS = [(80, 160, 240), (240, 200, 80), (90, 210, 150), (230, 90, 90), (200, 120, 230), (90, 210, 210),
                (240, 150, 50), (170, 170, 170)]


def _count(n: int, noun: str) -> str:
    """"1 motor unit", "3 motor units" ("1 motor units" read as a slip in a clinical panel)."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def wanted(state: Any, engine_mode: str | None = None) -> bool:
    """Whether a stream is needle EMG: a needle layout, a single channel, or the DSP in needle mode."""
    layout = state.layout or {}
    return layout.get("kind") == "needle" or state.n_channels == 1 or engine_mode == "needle"


class NeedleView(QtWidgets.QWidget):
    """Live MUP panel for one channel of ``pipeline``'s stream (started at once, ``stop()`` when closing)."""

    def __init__(
        self,
        pipeline: Any,
        window_s: float = DEFAULT_WINDOW_S,
        interval_s: float = DEFAULT_INTERVAL_S,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.pipeline = pipeline
        state = pipeline.state
        self.fs = float(state.fs)
        # `monitor --muscle/--age` (a session attribute; None: the generic reference)
        muscle, age = getattr(pipeline, "needle_reference", None) or (None, None)
        self.analysis = LiveNeedleAnalysis(pipeline.acquisition.buffer, self.fs, 0, window_s, interval_s,
                                           muscle=muscle, age=age).start()  # fmt: skip
        self.shown_sequence = -1
        self.snapshot: NeedleSnapshot | None = None
        self.flags: list[dict[str, str]] = []  # per table row (units, then the mean): measure -> low/high/normal
        self.agreement: dict[str, object] | None = None
        self.model_id: str | None = None  # the model whose decisions the network side shows
        self.resting_windows = 0  # decisions of the analysed span left out: published as rest / learning rest level
        self._curves: list[pg.PlotDataItem] = []

        self.channel_box = QtWidgets.QComboBox()
        self.channel_box.addItems(list(state.channel_labels) or [f"ch{i + 1}" for i in range(state.n_channels)])
        self.channel_box.currentIndexChanged.connect(self._select_channel)
        self.status_label = QtWidgets.QLabel(f"waiting for {window_s:g} s of signal")
        self.reading_label = QtWidgets.QLabel("—")
        self.reading_label.setStyleSheet("font-size: 14pt; font-weight: bold;")
        self.network_label = QtWidgets.QLabel("network: no decision yet")
        self.network_label.setWordWrap(True)  # the model's name and the window counts ran off the panel
        self.agreement_label = QtWidgets.QLabel("")
        self.agreement_label.setStyleSheet("font-weight: bold;")
        self.caveat_label = QtWidgets.QLabel(CAVEAT)
        self.caveat_label.setStyleSheet("color: rgb(200, 160, 60); font-size: 8pt;")
        self.evidence_label = QtWidgets.QLabel("")
        self.evidence_label.setWordWrap(True)
        self.summary_label = QtWidgets.QLabel("")
        self.summary_label.setWordWrap(True)

        self.plot = pg.PlotWidget()
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.setLabel("bottom", "time from the MUP's trigger (ms)")
        self.plot.setLabel("left", "µV")
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.plot.getAxis("left").enableAutoSIPrefix(False)

        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([header for header, _, _ in COLUMNS])
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.table.setToolTip(
            "↑/↓: outside the reference range (single MUPs: working limits; mean row: tibialis anterior controls "
            "mean ± 2 SD, docs/needle-emg.md)"
        )

        controls = QtWidgets.QHBoxLayout()
        controls.addWidget(QtWidgets.QLabel("<b>Needle EMG</b>"))
        controls.addWidget(self.channel_box)
        controls.addWidget(self.status_label, 1)
        verdicts = QtWidgets.QGridLayout()
        verdicts.addWidget(QtWidgets.QLabel("rule-based reading"), 0, 0)
        verdicts.addWidget(self.reading_label, 1, 0)
        verdicts.addWidget(QtWidgets.QLabel("network"), 0, 1)
        verdicts.addWidget(self.network_label, 1, 1)
        verdicts.addWidget(self.agreement_label, 2, 0, 1, 2)
        verdicts.addWidget(self.caveat_label, 3, 0, 1, 2)
        splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        splitter.addWidget(self.plot)
        splitter.addWidget(self.table)
        splitter.setSizes([450, 650])  # the table's eight columns need the room more than the overlay does
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(controls)
        layout.addLayout(verdicts)
        layout.addWidget(self.evidence_label)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.summary_label)

    # ----- what tests and snapshots read ------------------------------------------------------------------------
    @property
    def n_units(self) -> int:
        return 0 if self.snapshot is None or self.snapshot.report is None else len(self.snapshot.report.units)

    @property
    def reading(self) -> str | None:
        return None if self.snapshot is None or self.snapshot.report is None else self.snapshot.report.reading.label

    # ----- drawing ----------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        snapshot = self.analysis.latest
        if snapshot is not None and snapshot.sequence != self.shown_sequence:
            self.snapshot, self.shown_sequence = snapshot, snapshot.sequence
            self._show_analysis(snapshot)
        self._show_network()

    def _select_channel(self, channel: int) -> None:
        if channel >= 0:
            self.analysis.select_channel(channel)
            self.status_label.setText(f"analysing {self.channel_box.itemText(channel)}…")

    def _show_analysis(self, snapshot: NeedleSnapshot) -> None:
        for curve in self._curves:
            self.plot.removeItem(curve)
        self._curves = []
        report = snapshot.report
        label = self.channel_box.itemText(snapshot.channel)
        if report is None:
            self.status_label.setText(f"{label}: not analysed ({snapshot.error})")
            self.reading_label.setText("—")
            self.table.setRowCount(0)
            self.flags = []
            return
        self.status_label.setText(
            f"{label}: last {report.duration_s:.1f} s, {_count(len(report.units), 'motor unit')} "
            f"(analysed in {snapshot.elapsed_s:.2f} s, every {self.analysis.interval_s:g} s)"
        )
        for index, unit in enumerate(report.units):
            times_ms = (np.arange(unit.template.size) - unit.peak_index) / unit.fs * 1e3
            pen = pg.mkPen(UNIT_COLOURS[index % len(UNIT_COLOURS)], width=2)
            curve = pg.PlotDataItem(times_ms, unit.template, pen=pen, name=f"MU{index + 1}")
            self.plot.addItem(curve)
            self._curves.append(curve)
        reading = report.reading
        colour = READING_COLOURS.get(reading.label, (170, 170, 170))
        self.reading_label.setStyleSheet(f"font-size: 14pt; font-weight: bold; color: rgb{colour};")
        scores = f"  (myopathic {reading.myopathic_score} · neurogenic {reading.neurogenic_score})"
        # nothing was scored when nothing was assessed: "(myopathic 0 · neurogenic 0)" would read as a normal finding
        self.reading_label.setText(reading.label + ("" if reading.label == "not assessed" else scores))
        self.evidence_label.setText("; ".join(reading.evidence))
        self._fill_table(report)
        summary = report.summary
        recruitment = report.recruitment[0] if report.recruitment else None
        pattern = report.interference[0] if report.interference else None
        parts = [f"polyphasic {summary.polyphasic_percent:.0f} % "
                 f"({'high' if summary.mean_flags.get('polyphasic_percent') == 'high' else 'normal'})"]
        if recruitment is not None:
            parts.append(f"recruitment {recruitment.pattern} ({_count(recruitment.n_active_units, 'unit')}, "
                         f"highest {recruitment.highest_rate_hz:.0f} Hz)")
        if pattern is not None:
            parts.append(f"interference {pattern.median_turns_per_s:.0f} turns/s, "
                         f"{pattern.median_amplitude_uv:.0f} µV per turn")
        self.summary_label.setText(" · ".join(parts))

    def _fill_table(self, report: Any) -> None:
        rows = len(report.units) + (1 if report.units else 0)
        self.table.setRowCount(rows)
        self.flags = []
        headers = []
        for row, (unit, measures) in enumerate(zip(report.units, report.measures, strict=True)):
            values = {name: getattr(measures, name) for _, name, _ in COLUMNS if name is not None}
            flags = {name: INDIVIDUAL_REFERENCE[name].flag(value) for name, value in values.items()
                     if name in INDIVIDUAL_REFERENCE}
            self._fill_row(row, unit.firing_rate_hz, values, flags, INDIVIDUAL_REFERENCE)
            headers.append(f"MU{row + 1}")
        if report.units:
            summary = report.summary
            values = {name: summary.mean[name] for _, name, _ in COLUMNS if name in summary.mean}
            rate = float(np.mean([u.firing_rate_hz for u in report.units]))
            flags = {name: flag for name, flag in summary.mean_flags.items() if name in values}
            self._fill_row(len(report.units), rate, values, flags, MEAN_REFERENCE)
            headers.append("mean")
        self.table.setVerticalHeaderLabels(headers)

    def _fill_row(
        self, row: int, rate: float, values: dict[str, float], flags: dict[str, str], references: dict[str, Any]
    ) -> None:
        self.flags.append(dict(flags))
        for column, (_, name, digits) in enumerate(COLUMNS):
            value = rate if name is None else values.get(name, float("nan"))
            flag = flags.get(name or "", "normal")
            text = "—" if not np.isfinite(value) else f"{value:.{digits}f}{FLAG_MARKS[flag]}"
            item = QtWidgets.QTableWidgetItem(text)
            item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
            if flag in FLAG_COLOURS:
                item.setBackground(QtGui.QColor(*FLAG_COLOURS[flag], 120))
                reference = references.get(name or "")
                if reference is not None:
                    item.setToolTip(f"{flag}: range {reference.low}-{reference.high} {reference.unit}")
            self.table.setItem(row, column, item)

    def _network_probabilities(self, snapshot: NeedleSnapshot) -> tuple[dict[str, float] | None, int]:
        """Mean probabilities of the contracting decisions over the analysed samples, by class name, and how many
        there were (``self.model_id``: the model that gave them: the needle model on a needle stream;
        ``self.resting_windows``: the decisions of the span left out, published as "rest" or "learning rest level")."""
        state = self.pipeline.state
        with state.lock:
            decided = state.decisions.since_columns(
                snapshot.first_timestamp, ("last_timestamp", "probabilities", "classes", "muscle", "model_id"))
            class_sets = state.decisions.class_sets
            model_ids = state.decisions.model_ids
        in_span = decided["last_timestamp"] <= snapshot.last_timestamp
        # the model was trained on contractions: only windows whose verdict is a condition are its answer; a window
        # published as "rest" (or while the rest level was learned) would pull the mean towards its resting guess
        over = in_span & (decided["muscle"] == MUSCLE_CODES[MuscleState.CONTRACTING])
        self.resting_windows = int(in_span.sum() - over.sum())
        if not over.any():
            return None, 0
        # the newest model's decisions only: another model's probabilities are in other classes
        newest = decided["classes"][over][-1]
        self.model_id = model_ids[decided["model_id"][over][-1]]
        classes = list(class_sets[newest])
        rows = decided["probabilities"][over & (decided["classes"] == newest), : len(classes)]
        if not set(NETWORK_CLASSES) <= set(classes):
            return None, len(rows)
        mean = rows.astype(np.float64).mean(axis=0)
        return dict(zip(classes, (float(p) for p in mean), strict=True)), len(rows)

    def _show_network(self) -> None:
        snapshot = self.snapshot
        if snapshot is None or snapshot.report is None:
            return
        probabilities, count = self._network_probabilities(snapshot)
        if probabilities is None:
            self.agreement = None
            if count:
                text = "the model's classes are not healthy / myopathy / neuropathy"
            elif self.resting_windows:
                text = f"no contraction yet ({self.resting_windows} windows at rest or learning the rest level)"
            else:
                text = "no decision for these samples"
            self.network_label.setText(text)
            self.agreement_label.setText("")
            return
        left_out = f", {self.resting_windows} at rest left out" if self.resting_windows else ""
        self.network_label.setText(
            " · ".join(f"{name} {probabilities[name]:.0%}" for name in NETWORK_CLASSES)
            # each needle verdict reads the newest MODEL_STRETCH_S of signal (monitor.needle_live), so the mean covers
            # up to that much before the panel's span too: the text says so rather than "windows"
            + f"  (mean of {count} verdicts on the newest {MODEL_STRETCH_S:g} s each{left_out}; {self.model_id})"
        )
        self.agreement = agreement(snapshot.report.reading, probabilities)
        agree = self.agreement["agree"]
        if agree is None:
            text, colour = f"no comparison: the reading is {snapshot.report.reading.label}", (170, 170, 170)
        elif agree:
            text, colour = f"agree: both say {self.agreement['network_class']}", (80, 190, 110)
        else:
            text = (f"disagree: rules say {self.agreement['rule_class']}, network says "
                    f"{self.agreement['network_class']} ({self.agreement['network_probability']:.0%}; "
                    f"{self.agreement['network_probability_of_rule_class']:.0%} for {self.agreement['rule_class']})")
            colour = (230, 90, 90)
        self.agreement_label.setStyleSheet(f"font-weight: bold; color: rgb{colour};")
        self.agreement_label.setText(text)

    def stop(self) -> None:
        self.analysis.stop()

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        self.stop()
        super().closeEvent(event)
