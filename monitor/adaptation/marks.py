"""Labelled spans of a live session ("marks"): what the patient did from one LSL time to another.

A mark comes from a label button (pressed when the patient starts, again when they stop), a span selected in the
trace view, an LSL marker stream (scripted demos) or a JSON file. Marks are kept as the session's annotations and
pushed on an LSL marker outlet, so LabRecorder stores them in the XDF beside the EMG they describe.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from monitor.errors import UserError

log = logging.getLogger(__name__)

IGNORE_LABEL = "ignore"  # "artifact: ignore": kept as an annotation, never trained on
SOURCES = ("button", "selection", "lsl", "file")
MAX_LABEL = 64


@dataclass(frozen=True)
class Mark:
    label: str
    start: float  # LSL time, seconds
    end: float
    source: str = "button"

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not 0 < len(self.label.strip()) <= MAX_LABEL:
            raise ValueError(f"a mark's label must be 1 to {MAX_LABEL} characters, not {self.label!r}")
        if not (math.isfinite(self.start) and math.isfinite(self.end)) or self.end <= self.start:
            raise ValueError(f"a mark must end after it starts (got {self.start} to {self.end})")
        if self.source not in SOURCES:
            raise ValueError(f"a mark's source is one of {', '.join(SOURCES)}, not {self.source!r}")

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str | None = None) -> Mark:
        """ValueError (one line) unless ``data`` is {"label", "start", "end"[, "source"]}."""
        if not isinstance(data, dict):
            raise ValueError(f"a mark is an object with label, start and end, not {str(data)[:60]!r}")
        try:
            label, start, end = data["label"], data["start"], data["end"]
        except KeyError as missing:
            raise ValueError(f"a mark needs {missing}") from None
        if any(isinstance(value, bool) or not isinstance(value, (int, float)) for value in (start, end)):
            raise ValueError(f"a mark's start and end are numbers (LSL seconds), got {start!r} and {end!r}")
        return cls(label, float(start), float(end), source or data.get("source", "file"))


class MarkOutlet:
    """An LSL ``Markers`` stream of marks, one JSON string each, time-stamped at the mark's end."""

    def __init__(self, stream_name: str, source_id: str) -> None:
        from monitor.lslenv import use_lsl_config

        use_lsl_config()
        import pylsl

        info = pylsl.StreamInfo(f"{stream_name}-marks", "Markers", 1, pylsl.IRREGULAR_RATE, "string",
                                f"{source_id}-marks")
        self._outlet = pylsl.StreamOutlet(info)

    def push(self, mark: Mark) -> None:
        self._outlet.push_sample([json.dumps(mark.to_dict())], mark.end)


class MarkLog:
    """The session's marks, thread-safe. Listeners (the outlet, the span store) hear of every finished mark."""

    def __init__(self) -> None:
        self._marks: list[Mark] = []
        self._open: tuple[str, float, str] | None = None
        self._listeners: list[Callable[[Mark], None]] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Callable[[Mark], None]) -> None:
        self._listeners.append(listener)

    def add(self, mark: Mark) -> Mark:
        with self._lock:
            self._marks.append(mark)
        for listener in self._listeners:
            listener(mark)
        return mark

    def begin(self, label: str, timestamp: float, source: str = "button") -> Mark | None:
        """A label button pressed: the span opens now. A span still open is closed first (and returned)."""
        closed = self.finish(timestamp)
        with self._lock:
            self._open = (label, float(timestamp), source)
        return closed

    def finish(self, timestamp: float) -> Mark | None:
        """The open span ends now; None when none was open (or it lasted no time)."""
        with self._lock:
            opened, self._open = self._open, None
        if opened is None or timestamp <= opened[1]:
            return None
        return self.add(Mark(opened[0], opened[1], float(timestamp), opened[2]))

    @property
    def open_label(self) -> str | None:
        with self._lock:
            return None if self._open is None else self._open[0]

    def marks(self) -> list[Mark]:
        with self._lock:
            return list(self._marks)

    def seconds_per_label(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for mark in self.marks():
            totals[mark.label] = totals.get(mark.label, 0.0) + mark.duration
        return totals

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps({"marks": [mark.to_dict() for mark in self.marks()]}, indent=1) + "\n")
        return path


def load_marks(path: str | Path) -> list[Mark]:
    """Marks from a JSON file ({"marks": [...]} or a bare list); UserError naming the first problem."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UserError(f"cannot read marks from {path}: {str(error)[:120]}") from None
    items = data.get("marks") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise UserError(f"{path} holds no marks (expected {{\"marks\": [{{\"label\", \"start\", \"end\"}}, ...]}})")
    marks = []
    for index, item in enumerate(items):
        try:
            marks.append(Mark.from_dict(item, source="file"))
        except ValueError as error:
            raise UserError(f"{path}, mark {index + 1}: {error}") from None
    return marks


def parse_marker(text: str, timestamp: float, log_: MarkLog) -> Mark | None:
    """One sample of a marker stream: a JSON mark, or ``begin <label>`` / ``end`` at the sample's time."""
    text = text.strip()
    if text.startswith("{"):
        try:
            return log_.add(Mark.from_dict(json.loads(text), source="lsl"))
        except ValueError as error:
            log.warning("marker ignored: %s", error)
            return None
    word, _, label = text.partition(" ")
    if word == "begin" and label.strip():
        return log_.begin(label.strip(), timestamp, source="lsl")
    if word == "end":
        return log_.finish(timestamp)
    log.warning("marker ignored (expected a JSON mark, 'begin <label>' or 'end'): %r", text[:60])
    return None


class MarkListener(threading.Thread):
    """Reads marks from an LSL marker stream (by name) into a MarkLog until stopped."""

    def __init__(self, stream_name: str, marks: MarkLog, timeout_s: float = 10.0,
                 commands: dict[str, Callable[[float], None]] | None = None) -> None:
        """``commands``: marker words (e.g. "adapt") that call their function with the sample's time instead."""
        super().__init__(name="mark-listener", daemon=True)
        self.commands = dict(commands or {})
        from monitor.lslenv import use_lsl_config

        use_lsl_config()
        import pylsl

        found = pylsl.resolve_byprop("name", stream_name, 1, timeout_s)
        if not found:
            raise UserError(f"no LSL marker stream named {stream_name!r} found within {timeout_s:g} s")
        self._inlet = pylsl.StreamInlet(found[0], processing_flags=pylsl.proc_clocksync)
        self.marks = marks
        self._stop_requested = threading.Event()

    def stop(self) -> None:
        self._stop_requested.set()

    def run(self) -> None:
        while not self._stop_requested.is_set():
            sample, timestamp = self._inlet.pull_sample(timeout=0.1)
            if not sample:
                continue
            command = self.commands.get(str(sample[0]).strip())
            if command is not None:
                command(float(timestamp))
            else:
                parse_marker(str(sample[0]), float(timestamp), self.marks)
