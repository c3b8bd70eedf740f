"""A bounded history of published decisions in preallocated arrays: what the views and the JSON lines read.

A deque of ``DecisionRecord`` dataclasses cost ~750 B a decision at 8 channels (~17 MiB for the 20-minute history),
almost all of it Python object headers. Here each numeric field is one (capacity, ...) array written in place and
each string field a small integer into a table of the strings seen, so the history costs its payload only.

Readers get ``DecisionRecord``s for a few decisions (``latest``, ``recent``, ``since``, indexing) and arrays for many
(``recent_columns``, ``since_columns``): trend views draw from the arrays without a Python loop.

Class lists. A model swapped in mid-session may answer with other classes. Every decision keeps its own class list
(an index into ``class_sets``) and its probabilities in that list's order; the probabilities array is as wide as the
widest list held, NaN past a decision's own classes. Nothing is reset: old decisions stay readable exactly as they
were, and a reader that must not mix two models compares the ``classes`` column.

Not thread-safe on its own: ``MonitorState.lock`` guards it, as it guards everything else in the state.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from monitor.timed_slots import TimedSlots


class MuscleState(enum.Enum):
    LEARNING = "learning"  # the rest level of these channels is not known yet
    RELAXED = "relaxed"
    CONTRACTING = "contracting"


@dataclass
class DecisionRecord:
    """One published decision, with the latency from the window's last sample to its publication (LSL clock)."""

    sequence: int
    last_timestamp: float
    label: str
    probabilities: np.ndarray
    classes: list[str]
    channel_attention: np.ndarray | None
    model_id: str
    latency_s: float  # window's last sample (amplifier time stamp) -> decision published on the LSL outlet
    worker_s: float  # the model's time in the worker
    acquisition_s: float | None = None  # sample time stamp -> arrived in the monitor (amplifier chunking + LSL)
    dsp_s: float | None = None  # arrived -> window filtered, analysed and submitted
    transport_s: float | None = None  # submitted -> reply received, less the worker's own time (ZeroMQ, queues)
    publication_s: float | None = None  # reply received -> decision handed to this thread and published
    muscle: MuscleState = MuscleState.CONTRACTING  # ``label`` is the model's condition only while contracting


# a decision's ``muscle`` column holds its state's index here
MUSCLE_STATES: tuple[MuscleState, ...] = tuple(MuscleState)
MUSCLE_CODES: dict[MuscleState, int] = {state: code for code, state in enumerate(MUSCLE_STATES)}
LATENCY_FIELDS = ("latency_s", "worker_s", "acquisition_s", "dsp_s", "transport_s", "publication_s")
# the parts a decision may lack (a window forgotten while in flight): NaN in the arrays, None in a record
OPTIONAL_LATENCY_FIELDS = LATENCY_FIELDS[2:]
# coded columns: an index into ``labels``, ``class_sets``, ``model_ids`` and MUSCLE_STATES respectively
CODED_FIELDS = ("label", "classes", "model_id", "muscle")
FIELDS = ("sequence", "last_timestamp", "probabilities", "channel_attention", *CODED_FIELDS, *LATENCY_FIELDS)

# float32 is what the worker sends (the ZeroMQ frames are float32): storing it loses nothing a live decision had
VALUE_DTYPE = np.float32


class _Interned:
    """Distinct values in first-seen order, each known by its index. Entries are never dropped: the label, class-list
    and model tables of a session hold a handful (class names, two verdicts, one model per swap)."""

    def __init__(self) -> None:
        self.values: list[Hashable] = []
        self._codes: dict[Hashable, int] = {}

    def code(self, value: Hashable) -> int:
        code = self._codes.get(value)
        if code is None:
            code = self._codes[value] = len(self.values)
            self.values.append(value)
        return code


class DecisionRing:
    """The last ``capacity`` decisions in the order they were appended (arrival order, which with several workers is
    not sequence order), oldest first on every read."""

    def __init__(self, capacity: int) -> None:
        self._slots = TimedSlots(capacity)
        self.capacity = capacity
        # np.empty leaves the pages untouched until written: memory grows as the history fills, by the payload only
        self._sequence = np.empty(capacity, dtype=np.int64)
        # seconds stay float64: a latency's microseconds are what the breakdown figures are made of
        self._latency = np.empty((capacity, len(LATENCY_FIELDS)), dtype=np.float64)
        self._label = np.empty(capacity, dtype=np.int32)
        self._classes = np.empty(capacity, dtype=np.int32)
        self._model = np.empty(capacity, dtype=np.int32)
        self._muscle = np.empty(capacity, dtype=np.int8)
        # widened when a decision brings more classes (or channels) than any before it
        self._probabilities = np.empty((capacity, 0), dtype=VALUE_DTYPE)
        self._attention = np.empty((capacity, 0), dtype=VALUE_DTYPE)
        # a decision's own number of attention values, -1 for none: padding and a NaN the model gave look alike
        self._attention_width = np.empty(capacity, dtype=np.int32)
        self._labels, self._class_sets, self._model_ids = _Interned(), _Interned(), _Interned()
        self.appended = 0  # every decision ever appended, the overwritten included

    def __len__(self) -> int:
        return self._slots.count

    @property
    def labels(self) -> tuple[str, ...]:
        """Decodes the ``label`` column. Codes never change, so a code read earlier decodes with a later table."""
        return tuple(self._labels.values)  # type: ignore[arg-type]

    @property
    def class_sets(self) -> tuple[tuple[str, ...], ...]:
        """Decodes the ``classes`` column: each decision's class list."""
        return tuple(self._class_sets.values)  # type: ignore[arg-type]

    @property
    def model_ids(self) -> tuple[str, ...]:
        """Decodes the ``model_id`` column."""
        return tuple(self._model_ids.values)  # type: ignore[arg-type]

    def append(self, record: DecisionRecord) -> None:
        """Stores one decision, overwriting the oldest once full."""
        probabilities = np.asarray(record.probabilities).ravel()
        classes = tuple(str(name) for name in record.classes)
        if len(probabilities) != len(classes):
            raise ValueError(f"{len(probabilities)} probabilities for {len(classes)} classes {list(classes)}")
        attention = None if record.channel_attention is None else np.asarray(record.channel_attention).ravel()
        # widened before anything is written: once full, the slot written holds the oldest decision, still readable
        self._probabilities = self._widened(self._probabilities, len(probabilities))
        if attention is not None:
            self._attention = self._widened(self._attention, len(attention))
        slot = self._slots.claim(record.last_timestamp)
        self._sequence[slot] = record.sequence
        self._latency[slot] = [np.nan if (value := getattr(record, name)) is None else value for name in LATENCY_FIELDS]
        self._label[slot] = self._labels.code(str(record.label))
        self._classes[slot] = self._class_sets.code(classes)
        self._model[slot] = self._model_ids.code(str(record.model_id))
        self._muscle[slot] = MUSCLE_CODES[record.muscle]
        self._probabilities[slot, : len(probabilities)] = probabilities
        self._probabilities[slot, len(probabilities) :] = np.nan
        self._attention[slot] = np.nan
        if attention is not None:
            self._attention[slot, : len(attention)] = attention
        self._attention_width[slot] = -1 if attention is None else len(attention)
        self.appended += 1

    def extend(self, records: Iterable[DecisionRecord]) -> None:
        for record in records:
            self.append(record)

    def _widened(self, values: np.ndarray, width: int) -> np.ndarray:
        if width <= values.shape[1]:
            return values
        wider = np.empty((self.capacity, width), dtype=values.dtype)
        # slots 0..count-1 are the filled ones, wrapped or not; the rest are written whole by their first append
        filled = len(self)
        wider[:filled, : values.shape[1]] = values[:filled]
        wider[:filled, values.shape[1] :] = np.nan
        return wider

    def oldest_timestamp(self) -> float | None:
        return self._slots.oldest_timestamp()

    # -- single decisions, as records -------------------------------------------------------------------------------

    def __getitem__(self, index: int) -> DecisionRecord:
        """The ``index``-th decision held, oldest first (negative from the newest)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"decision {index} of a history of {len(self)}")
        return self._record(int(self._slots.newest(len(self))[index]))

    def __iter__(self) -> Iterator[DecisionRecord]:
        """Every decision held, oldest first: one record each, so for tests and tools, not for a view's frame."""
        return iter(self.recent(len(self)))

    def latest(self) -> DecisionRecord | None:
        return self[-1] if len(self) else None

    def recent(self, n: int) -> list[DecisionRecord]:
        """The newest min(n, len) decisions, oldest first."""
        return [self._record(int(slot)) for slot in self._slots.newest(n)]

    def since(self, time: float, inclusive: bool = True) -> list[DecisionRecord]:
        """The newest run of decisions stamped at or after ``time`` (after it, if not ``inclusive``), oldest first."""
        return [self._record(int(slot)) for slot in self._slots.since(time, inclusive)]

    def _record(self, slot: int) -> DecisionRecord:
        classes = self._class_sets.values[self._classes[slot]]
        width = int(self._attention_width[slot])
        latency = dict(zip(LATENCY_FIELDS, self._latency[slot].tolist(), strict=True))
        for name in OPTIONAL_LATENCY_FIELDS:
            if np.isnan(latency[name]):
                latency[name] = None
        return DecisionRecord(
            sequence=int(self._sequence[slot]),
            last_timestamp=float(self._slots.times[slot]),
            label=self._labels.values[self._label[slot]],  # type: ignore[arg-type]
            probabilities=self._probabilities[slot, : len(classes)].copy(),  # type: ignore[arg-type]
            classes=list(classes),  # type: ignore[call-overload]
            channel_attention=None if width < 0 else self._attention[slot, :width].copy(),
            model_id=self._model_ids.values[self._model[slot]],  # type: ignore[arg-type]
            muscle=MUSCLE_STATES[self._muscle[slot]],
            **latency,
        )

    # -- many decisions, as arrays ----------------------------------------------------------------------------------

    def recent_columns(self, n: int, fields: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """{field: (k, ...)} of the newest k = min(n, len) decisions, oldest first, copies.

        ``fields`` (default: all of FIELDS) name DecisionRecord's fields. ``probabilities`` and ``channel_attention``
        are (k, widest held) float32, NaN where a decision had fewer classes or channels or no attention; the latency
        parts are float64, NaN for None; CODED_FIELDS are int indices into ``labels``, ``class_sets``, ``model_ids``
        and MUSCLE_STATES.
        """
        return self._columns(self._slots.newest(n), fields)

    def since_columns(
        self, time: float, fields: Iterable[str] | None = None, inclusive: bool = True
    ) -> dict[str, np.ndarray]:
        """Like ``recent_columns``, for the decisions ``since`` returns."""
        return self._columns(self._slots.since(time, inclusive), fields)

    def _columns(self, slots: np.ndarray, fields: Iterable[str] | None) -> dict[str, np.ndarray]:
        wanted = FIELDS if fields is None else tuple(fields)
        unknown = set(wanted) - set(FIELDS)
        if unknown:
            raise ValueError(f"no decision field {sorted(unknown)}; there are {list(FIELDS)}")
        sources = {
            "sequence": self._sequence, "last_timestamp": self._slots.times, "probabilities": self._probabilities,
            "channel_attention": self._attention, "label": self._label, "classes": self._classes,
            "model_id": self._model, "muscle": self._muscle,
        }  # fmt: skip
        columns = {}
        for name in wanted:
            if name in LATENCY_FIELDS:
                columns[name] = self._latency[slots, LATENCY_FIELDS.index(name)]
            else:
                columns[name] = sources[name][slots]
        return columns
