"""A view's stand-in for the core's ``MonitorPipeline``: the same attributes the window and the terminal dashboard
read, filled from the core's shared memory by a background thread, and the actions they take sent over the control
channel. The views themselves are unchanged: they cannot tell the core runs in another process.

What the views read live (traces) comes straight from the shared rings; the histories (features, decisions) are
copied into this process's own ``MonitorState`` as they arrive, so a view opened late still draws the session's
trends, and a view that stalls only falls behind in its own copy.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np

from dsp.engine import EngineSettings, EngineStats
from dsp.fatigue import FatigueReport
from dsp.quality import QualityReport
from dsp.ringbuffer import Block
from monitor.core.control import HEARTBEAT_S, ControlClient
from monitor.core.shared_state import RingCursor, SharedStateReader
from monitor.decision_history import LATENCY_FIELDS, MUSCLE_STATES, OPTIONAL_LATENCY_FIELDS, DecisionRecord
from monitor.pipeline import MonitorState

log = logging.getLogger(__name__)

CORE_SILENT_AFTER_S = 5.0  # the core's heartbeat older than this (and its process gone): the core has ended
SYNC_PERIOD_S = 0.03


class SharedTrace:
    """A trace ring of the core (raw or filtered) with the reading side of ``dsp.RingBuffer``."""

    def __init__(self, reader: SharedStateReader, name: str) -> None:
        self.reader, self.name = reader, name
        ring = reader.rings[name]
        self.capacity, self.n_channels = ring.capacity, ring.width

    @property
    def total_written(self) -> int:
        return self.reader.committed(self.name)

    def latest(self, n_samples: int) -> Block:
        entries = self.reader.latest(self.name, n_samples)
        return Block(entries.values, entries.timestamps, entries.first_counter)

    def read_from(self, counter: int, max_samples: int | None = None) -> Block:
        entries = self.reader.read_ring(self.name, counter, max_samples)
        return Block(entries.values, entries.timestamps, entries.first_counter)


def _floats(values: Any) -> np.ndarray:
    return np.array(values, dtype=np.float64)  # JSON null (a NaN) becomes NaN


def fatigue_report(document: dict[str, Any]) -> FatigueReport:
    values: dict[str, Any] = {}
    for item in dataclasses.fields(FatigueReport):
        value = document[item.name]
        if item.name == "active":
            value = np.array(value, dtype=bool)
        elif item.name in ("states", "reasons"):  # per channel text, not numbers
            value = tuple(value)
        elif item.name == "overall":
            value = {key: float("nan") if v is None else v for key, v in value.items()}
        elif isinstance(value, list):
            value = _floats(value)
        values[item.name] = value
    return FatigueReport(**values)


def quality_report(document: dict[str, Any]) -> QualityReport:
    return QualityReport(
        timestamp=document["timestamp"], flags={k: np.array(v, dtype=bool) for k, v in document["flags"].items()},
        usable=np.array(document["usable"], dtype=bool), stale=document["stale"], rms_uv=_floats(document["rms_uv"]),
        mains_rms_uv=_floats(document["mains_rms_uv"]), reasons=tuple(document["reasons"]),
    )  # fmt: skip


class RemoteAcquisition:
    """What ``monitor.acquisition.signal_status`` and the views read of an Acquisition."""

    def __init__(self, reader: SharedStateReader, meta: dict[str, Any]) -> None:
        self.buffer = SharedTrace(reader, "raw")
        self.stream = SimpleNamespace(
            name=meta["stream_name"], source_id=meta["source_id"], fs=meta["fs"], n_channels=meta["n_channels"],
            channel_labels=meta["channel_labels"], layout=meta["layout"], channel_types=meta["channel_types"],
            emg_channels=meta["emg_channels"],
        )  # fmt: skip
        self.signal_lost = False
        self.held_samples = 0
        self.unconfirmed_dropped = 0
        self.incompatible: str | None = None
        self.signal_lost_events = 0


class RemoteProfiler:
    def __init__(self) -> None:
        self.document: dict[str, Any] | None = None
        self.line = "—"

    def report(self) -> dict[str, Any] | None:
        return self.document

    def status_line(self, extra_ms_per_window: Any = None, recent_cpu: bool = False) -> str:
        return self.line  # the core's own line, the worker's median model time already in it


class RemoteEngine:
    def __init__(self, reader: SharedStateReader, control: ControlClient | None) -> None:
        self.filtered = SharedTrace(reader, "filtered")
        self.settings = EngineSettings()
        self.stats = EngineStats()
        self.reader = SimpleNamespace(dropped=0)
        self.profiler = RemoteProfiler()
        self._control = control
        # per-sample consumers in this view (the motor-unit panel decomposes here, on the core's raw samples)
        self.sample_listeners: list[Callable[[np.ndarray, np.ndarray, int], None]] = []
        self.raw_cursor = RingCursor(reader, "raw")

    def add_sample_listener(self, callback: Callable[[np.ndarray, np.ndarray, int], None]) -> None:
        self.raw_cursor.next_counter = self.raw_cursor.reader.committed("raw")
        self.sample_listeners.append(callback)

    def update_settings(self, **changes: object) -> None:
        """The status panel's filter and window settings, applied by the core (ValueError when it refuses)."""
        if self._control is None:
            raise ValueError("this view is read-only (no control channel)")
        reply = self._control.request("settings", changes=changes)
        if not reply.get("ok"):
            raise ValueError(reply.get("error", "refused"))
        self.settings = EngineSettings(**reply["settings"])


class RemoteClient:
    def __init__(self) -> None:
        self.state = "connecting"
        self.stats: dict[str, Any] = {}


class RemotePipeline:
    """Attach with ``RemotePipeline.attach(core)`` (a ``monitor.core.control.find_core`` description)."""

    def __init__(self, reader: SharedStateReader, control: ControlClient | None, kind: str = "window") -> None:
        meta = reader.meta
        self.reader, self.control, self.kind = reader, control, kind
        self.meta = meta
        self.model_channels = np.asarray(meta["emg_channels"])
        self.state = MonitorState(
            stream_name=meta["stream_name"], fs=meta["fs"], n_channels=meta["n_channels"],
            channel_labels=list(meta["channel_labels"]), layout=meta["layout"], emg_channels=self.model_channels,
        )  # fmt: skip
        self.acquisition = RemoteAcquisition(reader, meta)
        self.engine = RemoteEngine(reader, control)
        self.client = RemoteClient() if meta["has_client"] else None
        self.features = list(meta["features"])
        self.columns = {name: i for i, name in enumerate(meta["decision_columns"])}
        self.max_classes = int(meta["max_classes"])
        self._feature_cursor = RingCursor(reader, "features", start=0)
        self._decision_cursor = RingCursor(reader, "decisions", start=0)
        self._strings: dict[str, list[Any]] = {"labels": [], "class_sets": [], "model_ids": []}
        self.view_id = uuid.uuid4().hex[:8]
        self.core_ended: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="view-sync", daemon=True)
        self._next_heartbeat = 0.0
        self._last_status: dict[str, Any] | None = None
        self.adaptation: Any = None  # the core's live-adaptation session, when it runs one (adaptation_proxy)
        self.decomposition: Any = None  # the core's motor units, once it runs them (decomposition_service)
        self.needle_reference = tuple(meta.get("needle_reference") or (None, None))  # read by the needle panel
        self.core: dict[str, Any] | None = None  # the core's description (monitor.core.control.find_core), if known

    @classmethod
    def attach(cls, core: dict[str, Any], kind: str = "window") -> RemotePipeline:
        reader = SharedStateReader(core["shm"])
        control = ControlClient(core["control"])
        pipeline = cls(reader, control, kind)
        pipeline.core = core
        pipeline.sync()
        return pipeline

    def find_successor(self) -> dict[str, Any] | None:
        """A core running now on the stream this view's core read, other than that core: the one to reattach to
        once this one has ended (a restarted `neurofusion monitor`). Lists the runtime folder: a few ms."""
        from monitor.core.control import running_cores

        if self.core is None:
            return None
        for core in running_cores():
            if core.get("stream") == self.core.get("stream") and core.get("shm") != self.core.get("shm"):
                return core
        return None

    # -- what the session's callbacks become -----------------------------------------------------------------------

    def annotate(self, timestamp: float, text: str) -> None:
        if self.control is not None:
            self.control.request("marker", timestamp=timestamp, text=text)

    def toggle_recording(self, on: bool) -> str | None:
        from monitor.errors import UserError

        if self.control is None:
            raise UserError("this view is read-only (no control channel)")
        reply = self.control.request("record", on=on)
        if not reply.get("ok"):
            raise UserError(reply.get("error", "refused"))
        return reply.get("text")

    # -- the copy from shared memory -------------------------------------------------------------------------------

    def start(self) -> RemotePipeline:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        if self.control is not None:
            self.control.request("bye", view=self.view_id)
            self.control.close()

    def _run(self) -> None:
        while not self._stop.is_set() and self.core_ended is None:
            try:
                self.sync()
            except Exception:
                log.exception("reading the core's state failed")
            self._stop.wait(SYNC_PERIOD_S)

    def sync(self) -> None:
        """Copies what is new from the core; says hello/heartbeat on the control channel every HEARTBEAT_S."""
        status = self.reader.read_blob("status")
        if status is not None and status is not self._last_status:  # written 10 times a second, read every 30 ms
            self._last_status = status
            self._apply_status(status)
        self._sync_features()
        self._sync_decisions()
        if self.engine.sample_listeners:
            block = self.engine.raw_cursor.read()
            if len(block.timestamps):
                for listener in list(self.engine.sample_listeners):
                    listener(block.values, block.timestamps, block.first_counter)
        now = time.monotonic()
        if self.control is not None and now >= self._next_heartbeat:
            self._next_heartbeat = now + HEARTBEAT_S
            self.control.request("hello", view=self.view_id, pid=os.getpid(), kind=self.kind)
        self._check_core()

    def _check_core(self) -> None:
        from monitor.core.control import pid_alive

        if self.reader.closed:
            self.core_ended = "the monitor core ended"
        elif self.reader.heartbeat_age_s() > CORE_SILENT_AFTER_S and not pid_alive(self.reader.writer_pid):
            self.core_ended = "the monitor core died"
        if self.core_ended is not None:
            self.acquisition.incompatible = self.core_ended  # the views end with this one line, as for a refusal

    def _apply_status(self, status: dict[str, Any]) -> None:
        if status.get("adaptation") is not None and self.control is not None:
            from monitor.core.adaptation_proxy import RemoteAdaptation

            if self.adaptation is None:
                self.adaptation = RemoteAdaptation(self.control, status["adaptation"])
            else:
                self.adaptation.update(status["adaptation"])
        if status.get("decomposition") is not None:
            from monitor.decomposition_service import RemoteDecomposition

            if self.decomposition is None:
                self.decomposition = RemoteDecomposition(self.control, status["decomposition"])
            else:
                self.decomposition.update(status["decomposition"])
        for key, value in status["strings"].items():
            self._strings[key] = [tuple(v) for v in value] if key == "class_sets" else value
        signal = status["signal"]
        acquisition = self.acquisition
        acquisition.signal_lost, acquisition.held_samples = signal["signal_lost"], signal["held_samples"]
        acquisition.unconfirmed_dropped = signal["unconfirmed_dropped"]
        acquisition.incompatible = signal["incompatible"]
        acquisition.signal_lost_events = signal["signal_lost_events"]
        engine = self.engine
        engine.reader.dropped = status["reader_dropped"]
        stats = dict(status["stats"])
        stats["last_gap"] = tuple(stats["last_gap"])
        engine.stats = EngineStats(**stats)
        engine.settings = EngineSettings(**status["settings"])
        engine.profiler.document, engine.profiler.line = status["profiler"], status["profiler_line"] or "—"
        if self.client is not None and status["client"] is not None:
            self.client.state, self.client.stats = status["client"]["state"], status["client"]["stats"]
        state = self.state
        fatigue = None if status["fatigue"] is None else fatigue_report(status["fatigue"])
        quality = None if status["quality"] is None else quality_report(status["quality"])
        with state.lock:
            state.usable = None if status["usable"] is None else np.array(status["usable"], dtype=bool)
            state.fatigue, state.quality = fatigue, quality
            state.recording, state.model_status = status["recording"], status["model_status"]
            state.windows_seen, state.windows_sent = status["windows_seen"], status["windows_sent"]
            state.events.clear()
            state.events.extend((t, text) for t, text in status["events"])

    def _sync_features(self) -> None:
        block = self._feature_cursor.read()
        if not len(block.timestamps):
            return
        values = block.values.reshape(len(block.timestamps), len(self.features) + 1, -1)
        with self.state.lock:
            for i, timestamp in enumerate(block.timestamps):
                self.state.features.append(float(timestamp), dict(zip(self.features, values[i, :-1], strict=True)))

    def _sync_decisions(self) -> None:
        block = self._decision_cursor.read()
        if not len(block.timestamps):
            return
        records = [self._decision(entry, float(t)) for entry, t in zip(block.values, block.timestamps, strict=True)]
        with self.state.lock:
            for record in records:
                self.state.decisions.append(record)
                self.state.latencies_s.append(record.latency_s)

    def _decision(self, entry: np.ndarray, timestamp: float) -> DecisionRecord:
        column = self.columns
        n_classes, width = int(entry[column["n_classes"]]), int(entry[column["attention_width"]])
        start = len(column)
        latency: dict[str, float | None] = {name: float(entry[column[name]]) for name in LATENCY_FIELDS}
        for name in OPTIONAL_LATENCY_FIELDS:
            if np.isnan(latency[name]):  # type: ignore[arg-type]
                latency[name] = None
        return DecisionRecord(
            sequence=int(entry[column["sequence"]]), last_timestamp=timestamp,
            label=self._strings["labels"][int(entry[column["label"]])],
            probabilities=entry[start:start + n_classes].astype(np.float32),
            classes=list(self._strings["class_sets"][int(entry[column["classes"]])]),
            channel_attention=None if width < 0 else entry[start + self.max_classes:start + self.max_classes + width]
            .astype(np.float32),
            model_id=self._strings["model_ids"][int(entry[column["model_id"]])],
            muscle=MUSCLE_STATES[int(entry[column["muscle"]])],
            **latency,  # type: ignore[arg-type]
        )  # fmt: skip

    @property
    def dropped_history(self) -> int:
        """Feature and decision entries this view lost (it fell more than the core's history behind, or torn)."""
        return self._feature_cursor.dropped + self._decision_cursor.dropped
