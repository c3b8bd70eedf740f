"""The adaptation panel: label buttons, "Adapt", progress, cancel, before/after figures and switching back.

It drives a ``monitor.adaptation.session.AdaptationSession``; its timer only calls ``session.step()``, which never
blocks (fine-tuning runs in its own process, the worker request in a short-lived thread).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PyQt6 import QtCore, QtWidgets

from monitor.adaptation.marks import IGNORE_LABEL, Mark
from monitor.errors import UserError

STEP_INTERVAL_MS = 200


def _lsl_clock() -> Callable[[], float]:
    import pylsl

    return pylsl.local_clock


class AdaptationPanel(QtWidgets.QGroupBox):
    def __init__(self, session: Any, clock: Callable[[], float] | None = None,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(f"Adapt to patient {session.patient_id}", parent)
        self.session = session
        self.clock = clock or _lsl_clock()
        layout = QtWidgets.QVBoxLayout(self)

        buttons = QtWidgets.QHBoxLayout()
        self.label_buttons: dict[str, QtWidgets.QPushButton] = {}
        for label in [*session.card.classes, IGNORE_LABEL]:
            button = QtWidgets.QPushButton(label)
            button.setCheckable(True)
            button.setToolTip(f"press while the patient shows '{label}', press again when it ends")
            button.clicked.connect(lambda checked, name=label: self.toggle_label(name, checked))
            buttons.addWidget(button)
            self.label_buttons[label] = button
        layout.addLayout(buttons)
        self.marked = QtWidgets.QLabel("")
        layout.addWidget(self.marked)

        actions = QtWidgets.QHBoxLayout()
        self.adapt_button = QtWidgets.QPushButton("Adapt")
        self.adapt_button.clicked.connect(self.adapt)
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 1)
        actions.addWidget(self.adapt_button)
        actions.addWidget(self.progress, 1)
        actions.addWidget(self.cancel_button)
        layout.addLayout(actions)

        self.figures = QtWidgets.QLabel("")
        self.status = QtWidgets.QLabel(session.status)
        self.status.setWordWrap(True)
        layout.addWidget(self.figures)
        layout.addWidget(self.status)

        switch = QtWidgets.QHBoxLayout()
        self.models = QtWidgets.QComboBox()
        self.switch_button = QtWidgets.QPushButton("Switch to")
        self.switch_button.clicked.connect(self.switch)
        switch.addWidget(self.switch_button)
        switch.addWidget(self.models, 1)
        layout.addLayout(switch)

        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(STEP_INTERVAL_MS)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()
        self.refresh()

    # ------------------------------------------------------------ actions

    def toggle_label(self, label: str, pressed: bool) -> None:
        now = self.clock()
        if pressed:
            for other, button in self.label_buttons.items():
                if other != label:
                    button.setChecked(False)
            self.session.marks.begin(label, now, source="button")
        else:
            self.session.marks.finish(now)
        self.refresh()

    def mark_selection(self, label: str, start: float, end: float) -> None:
        """A span selected in the trace view (LSL times), labelled afterwards."""
        try:
            self.session.marks.add(Mark(label, start, end, "selection"))
        except ValueError as error:
            self.session.status = str(error)
        self.refresh()

    def adapt(self) -> None:
        open_label = self.session.marks.open_label
        if open_label is not None:  # the span being marked ends when adapting starts
            self.label_buttons[open_label].setChecked(False)
            self.session.marks.finish(self.clock())
        try:
            self.session.start()
        except UserError as error:
            self.session.status = str(error)
        self.refresh()

    def cancel(self) -> None:
        self.session.cancel()
        self.refresh()

    def switch(self) -> None:
        model_id = self.models.currentData()
        if model_id:
            try:
                self.session.switch_to(model_id)
            except UserError as error:
                self.session.status = str(error)
        self.refresh()

    # ------------------------------------------------------------ view

    def refresh(self) -> None:
        session = self.session
        session.step()
        seconds = session.marks.seconds_per_label()
        self.marked.setText("marked: " + (", ".join(f"{label} {value:.0f} s" for label, value in seconds.items())
                                          or "nothing yet"))
        job = session.job
        running = job is not None and not job.finished
        self.adapt_button.setEnabled(not session.busy)
        self.cancel_button.setEnabled(running)
        if running and job.epochs:
            self.progress.setRange(0, job.epochs)
            self.progress.setValue(job.epoch)
        elif running:
            self.progress.setRange(0, 0)  # busy: loading, measuring the base model
        else:
            self.progress.setRange(0, 1)
            self.progress.setValue(1 if job is not None and job.state == "done" else 0)
        figures = session.last_figures
        if "after" in figures:
            self.figures.setText(f"held-out accuracy: {figures['before']:.0%} before, {figures['after']:.0%} after "
                                 f"({figures.get('held_out_windows', 0)} windows)")
        self.status.setText(session.status)
        ids = [entry.model_id for entry in session.models if entry is not session.active]
        if ids != [self.models.itemData(index) for index in range(self.models.count())]:
            self.models.clear()
            for model_id in ids:
                self.models.addItem(model_id.rsplit("+", 1)[-1], model_id)
        self.switch_button.setEnabled(bool(ids) and not session.busy)
