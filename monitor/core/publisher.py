"""Copies a running pipeline's state into shared memory for views in other processes.

One thread, woken once the DSP thread's step has handed its windows on (by new filtered samples where the DSP thread
steps per chunk; at most every ``period_s``, at least every ``status_period_s``): raw and filtered traces, each new
window's features and each new decision go into rings; the rest of what the views show (signal, worker, fatigue,
quality, settings, events) into a JSON status document five times a second (the status and trend views redraw at
~4 Hz).
It never waits for a view: a view that stalls or dies costs the core nothing, and the acquisition, DSP and decision
threads never touch shared memory themselves.

Why after the step and not at the filtered write: the DSP thread writes its filtered samples first and only then
checks quality, computes features and submits the window to the worker. Woken at the write, this thread ran its
copies (GIL, the state lock, CPU on two cores) in the middle of the step that carries the decision; woken after the
windows are submitted, it copies while the worker computes, and the step's features go out in the same publish.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from dsp.ringbuffer import RingReader
from monitor.core.shared_state import RingSpec, SharedStateWriter
from monitor.decision_history import LATENCY_FIELDS, MUSCLE_CODES, DecisionRecord
from monitor.pipeline import HISTORY_WINDOWS, MonitorPipeline

log = logging.getLogger(__name__)

MAX_CLASSES = 16  # probability columns in a decision entry; a model with more classes is cut (logged once)
# a decision entry: these, then MAX_CLASSES probabilities, then one attention value per model channel
DECISION_COLUMNS = ("sequence", "label", "classes", "model_id", "muscle", "n_classes", "attention_width",
                    *LATENCY_FIELDS)  # fmt: skip
STATUS_BYTES = 4 << 20
RESOURCES_PERIOD_S = 0.5  # CPU and memory figures (psutil) in the status: the status view shows them at ~4 Hz
EVENTS_SHOWN = 200


def fatigue_document(report: Any) -> dict[str, object]:
    """``FatigueReport.to_dict()`` (NaN -> None in 1-D float arrays and the overall figures), with the NaN test done
    once per array instead of once per element: at 256 channels to_dict's per-element ``np.isnan`` was the largest
    part of the 5 Hz status document (tests/core/test_publisher_documents.py holds the two equal)."""
    out: dict[str, object] = {}
    for name, value in report.__dict__.items():
        if isinstance(value, dict):
            out[name] = {k: None if np.isnan(v) else v for k, v in value.items()}
        elif isinstance(value, np.ndarray):
            items = value.tolist()
            if value.ndim == 1 and value.dtype.kind == "f":
                for index in np.flatnonzero(np.isnan(value)).tolist():
                    items[index] = None
            out[name] = items
        else:
            out[name] = list(value) if isinstance(value, tuple) else value
    return out


def feature_names(fs: float, n_channels: int) -> list[str]:
    """The engine's per-window feature names, in the order it computes them (from one quiet test window)."""
    from dsp.engine import ENGINE_FEATURES
    from dsp.features import compute_features

    window = np.random.default_rng(0).normal(size=(1, n_channels, max(64, int(fs * 0.2)))).astype(np.float32)
    return list(compute_features(window, fs, ENGINE_FEATURES))


class _Strings:
    """Labels, class lists and model ids as small integers, the tables travelling in the status document."""

    def __init__(self) -> None:
        self.tables: dict[str, list[Any]] = {"labels": [], "class_sets": [], "model_ids": []}
        self._codes: dict[str, dict[Any, int]] = {name: {} for name in self.tables}

    def code(self, table: str, value: Any) -> int:
        codes = self._codes[table]
        if value not in codes:
            codes[value] = len(self.tables[table])
            self.tables[table].append(list(value) if isinstance(value, tuple) else value)
        return codes[value]

    def size(self) -> int:
        return sum(len(table) for table in self.tables.values())


class StatePublisher(threading.Thread):
    def __init__(self, pipeline: MonitorPipeline, describe_views: Callable[[], str] = lambda: "",
                 period_s: float = 0.01, status_period_s: float = 0.2, history_windows: int = HISTORY_WINDOWS,
                 extra_status: Callable[[], dict[str, Any]] | None = None) -> None:  # fmt: skip
        super().__init__(name="core-publisher", daemon=True)
        self.pipeline = pipeline
        self.describe_views = describe_views
        self.extra_status = extra_status  # more for the status document (the adaptation panel's session)
        self.period_s, self.status_period_s = period_s, status_period_s
        state, engine = pipeline.state, pipeline.engine
        self.n_channels = state.n_channels
        self.features = feature_names(state.fs, state.n_channels)
        self.attention_width = len(pipeline.model_channels)
        stream = pipeline.acquisition.stream
        meta = {
            "stream_name": state.stream_name, "source_id": stream.source_id, "fs": state.fs,
            "n_channels": state.n_channels, "channel_labels": list(state.channel_labels), "layout": state.layout,
            "channel_types": list(stream.channel_types), "emg_channels": [int(c) for c in pipeline.model_channels],
            "features": self.features, "decision_columns": list(DECISION_COLUMNS), "max_classes": MAX_CLASSES,
            "has_client": pipeline.client is not None,
            # the needle MUP panel's reference values (`monitor --muscle/--age`), [None, None] without
            "needle_reference": list(getattr(pipeline, "needle_reference", None) or (None, None)),
        }  # fmt: skip
        self.writer = SharedStateWriter(
            {
                "raw": RingSpec(pipeline.acquisition.buffer.capacity, state.n_channels),
                "filtered": RingSpec(engine.filtered.capacity, state.n_channels),
                # each window: every feature's value per channel, then the channels' usable flags
                "features": RingSpec(history_windows, (len(self.features) + 1) * state.n_channels),
                "decisions": RingSpec(history_windows, len(DECISION_COLUMNS) + MAX_CLASSES + self.attention_width,
                                      "<f8"),
            },
            {"status": STATUS_BYTES},
            meta,
        )
        self.name_in_shm = self.writer.name
        self._raw = RingReader(pipeline.acquisition.buffer, 0)
        self._filtered = RingReader(engine.filtered, 0)
        self._windows_published = 0
        self._decisions_published = 0
        self._strings = _Strings()
        self._halt = threading.Event()
        self._next_status = 0.0
        self._resources: tuple[float, Any, Any] = (0.0, None, None)  # (when, report, line): psutil reads, 2 Hz
        self.failures = 0
        # set by the DSP thread after its other subscribers have run (the pipeline's: features, muscle states, outlets;
        # the windows went to the worker earlier in the step, DspEngine.send_windows_first)
        self._stepped = threading.Event()
        subscribe = getattr(engine, "subscribe", None)
        if subscribe is not None:
            subscribe(lambda results: self._stepped.set())

    def _steps_per_hop(self) -> bool:
        """Whether every DSP step that filters also finishes a window (the engine's default wake per 50 ms hop);
        with sample listeners (motor units) or ``wake_per_chunk`` it steps per chunk, mostly without a window."""
        engine = self.pipeline.engine
        return not (getattr(engine, "wake_per_chunk", True) or getattr(engine, "_sample_listeners", True))

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout=2.0)
        self.writer.close()

    def run(self) -> None:
        filtered = self.pipeline.engine.filtered
        while not self._halt.is_set():
            if self._steps_per_hop():
                # steps without a window (start-up, a stalled stream) are published within status_period_s
                self._stepped.wait(self.status_period_s)
                self._stepped.clear()
            else:
                filtered.wait_for_data(self._filtered.next_counter, self.status_period_s)
            try:
                self.publish_once()
            except Exception:  # a view's copy must never end the core: say it once, keep the core running
                if not self.failures:
                    log.exception("publishing the core's state for views failed")
                self.failures += 1
            self._halt.wait(self.period_s)

    def publish_once(self) -> None:
        """Everything new since the last call (tests call this directly)."""
        for reader, ring in ((self._raw, "raw"), (self._filtered, "filtered")):
            block = reader.read()
            if len(block.timestamps):
                self.writer.write_ring(ring, block.data, block.timestamps)
        self._publish_features()
        tables = self._strings.size()
        decisions = self._new_decisions()
        now = time.monotonic()
        # a new label, class list or model id reaches the views (in the status document) before any decision using it
        if now >= self._next_status or self._strings.size() != tables:
            self._next_status = now + self.status_period_s
            self.writer.write_blob("status", self.status())
        if decisions is not None:
            self.writer.write_ring("decisions", *decisions)
        self.writer.beat()

    def _publish_features(self) -> None:
        state = self.pipeline.state
        with state.lock:
            new = state.windows_seen - self._windows_published
            self._windows_published = state.windows_seen
            if new <= 0:
                return
            times, values = state.features.recent(new, self.features)
            usable = state.usable
        n = len(times)
        entry = np.full((n, len(self.features) + 1, self.n_channels), np.nan, dtype=np.float32)
        for i, name in enumerate(self.features):
            if name in values:
                entry[:, i] = values[name].reshape(n, -1)[:, :self.n_channels]
        # usable is the newest window's (the state keeps no history of it): the views only draw the newest
        entry[:, -1] = 1.0 if usable is None else np.asarray(usable, dtype=np.float32)
        self.writer.write_ring("features", entry.reshape(n, -1), times)

    def _new_decisions(self) -> tuple[np.ndarray, np.ndarray] | None:
        state = self.pipeline.state
        with state.lock:
            new = state.decisions_published - self._decisions_published
            self._decisions_published = state.decisions_published
            if new <= 0:
                return None
            records = state.decisions.recent(new)
        return np.array([self._encode(record) for record in records]), np.array([r.last_timestamp for r in records])

    def _encode(self, record: DecisionRecord) -> np.ndarray:
        classes = tuple(str(name) for name in record.classes)[:MAX_CLASSES]
        attention = record.channel_attention
        width = -1 if attention is None else min(len(attention), self.attention_width)
        entry = np.full(len(DECISION_COLUMNS) + MAX_CLASSES + self.attention_width, np.nan)
        latency = [np.nan if (value := getattr(record, name)) is None else value for name in LATENCY_FIELDS]
        entry[:len(DECISION_COLUMNS)] = [
            record.sequence, self._strings.code("labels", str(record.label)),
            self._strings.code("class_sets", classes), self._strings.code("model_ids", str(record.model_id)),
            MUSCLE_CODES[record.muscle], len(classes), width, *latency,
        ]  # fmt: skip
        start = len(DECISION_COLUMNS)
        entry[start:start + len(classes)] = np.asarray(record.probabilities).ravel()[:len(classes)]
        if attention is not None:
            entry[start + MAX_CLASSES:start + MAX_CLASSES + width] = np.asarray(attention).ravel()[:width]
        return entry

    def status(self) -> dict[str, Any]:
        """What the views show besides the rings, as JSON (NaN allowed: both ends are Python's json)."""
        pipeline = self.pipeline
        acquisition, engine, state, client = pipeline.acquisition, pipeline.engine, pipeline.state, pipeline.client
        # the DSP thread takes this lock to hand on each window: hold it only to take references (the reports are
        # replaced per window, never changed in place) and convert them to JSON after
        with state.lock:
            worker = state.decisions.recent_columns(200, ("worker_s",))["worker_s"]
            usable, fatigue, quality = state.usable, state.fatigue, state.quality
            events = list(state.events)[-EVENTS_SHOWN:]
            document = {
                "recording": state.recording, "model_status": state.model_status,
                "windows_seen": state.windows_seen, "windows_sent": state.windows_sent,
                "decisions_published": state.decisions_published,
            }  # fmt: skip
        document = {
            "usable": None if usable is None else np.asarray(usable).tolist(),
            "fatigue": None if fatigue is None else fatigue_document(fatigue),
            "quality": None if quality is None else quality.to_dict(),
            "events": [[float(t), str(text)] for t, text in events],
            **document,
        }
        extra = {"model (worker)": float(np.median(worker)) * 1000.0} if len(worker) else None
        profiler = getattr(engine, "profiler", None)
        now = time.monotonic()
        if profiler is not None and now - self._resources[0] >= RESOURCES_PERIOD_S:
            self._resources = (now, profiler.report(), profiler.status_line(extra, recent_cpu=True))
        document.update({
            "monotonic": time.monotonic(),
            "signal": {
                "signal_lost": bool(acquisition.signal_lost), "held_samples": int(acquisition.held_samples),
                "unconfirmed_dropped": int(acquisition.unconfirmed_dropped),
                "incompatible": acquisition.incompatible,
                "signal_lost_events": int(acquisition.signal_lost_events),
            },
            "samples": int(acquisition.buffer.total_written),
            "reader_dropped": int(engine.reader.dropped),
            "stats": dataclasses.asdict(engine.stats),
            "settings": dataclasses.asdict(engine.settings),
            "profiler": self._resources[1],
            "profiler_line": self._resources[2],
            "client": None if client is None else {"state": client.state, "stats": getattr(client, "stats", {})},
            "strings": self._strings.tables,
            "views": self.describe_views(),
        })
        if self.extra_status is not None:
            document.update(self.extra_status())
        return document
