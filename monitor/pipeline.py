"""The monitor process wired together: acquisition -> DSP engine -> inference client -> state the views read.

Views (GUI or terminal) never touch the threads: they read ``MonitorState.snapshot()`` at their own frame rate.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dsp.engine import DspEngine, EngineSettings, ReadyWindow, WindowResult
from monitor.acquisition import Acquisition
from monitor.decision_history import DecisionRecord, DecisionRing, MuscleState  # still importable from here
from monitor.feature_history import FeatureRing
from monitor.outlets import LEARNING_INDEX, REST_INDEX, ResultOutlets

log = logging.getLogger(__name__)

HISTORY_WINDOWS = 20 * 60 * 20  # 20 minutes of decisions at a 50 ms hop
REST_LABEL = "rest"  # shown instead of a condition while no electrode sees a contraction
# shown instead of a condition until the rest level is known: before then "contracting" cannot be told from "relaxed"
LEARNING_LABEL = "learning rest level"
# the verdict of a needle's relaxed window that holds discrete potentials (monitor.needle_live, dsp.spontaneous):
# under the rest gate, so no condition (REST_INDEX on the outlet), but not the silent "rest" either. Spontaneous
# activity at true rest (fibrillations, positive sharp waves) or a very weak contraction: the trace tells, the
# detector does not (on the clinical recordings, all moderate contractions, the 39 windows under the gate were weak
# myopathic effort)
SPONTANEOUS_LABEL = "rest: potentials present"
NOT_A_CONDITION = (REST_LABEL, LEARNING_LABEL, SPONTANEOUS_LABEL)  # verdicts that say why there is no condition


def muscle_state(result: WindowResult, channels: np.ndarray | slice = slice(None)) -> MuscleState:
    """What ``channels`` do in this window, as far as the fatigue tracker can tell."""
    report = result.fatigue
    # a channel unusable throughout the learning phase learns its rest level later, at its first usable window:
    # a subset made only of such channels has no rest level to compare with yet
    if report.learning or not np.isfinite(np.asarray(report.rest_rms)[channels]).any():
        return MuscleState.LEARNING
    return MuscleState.CONTRACTING if bool(report.active[channels].any()) else MuscleState.RELAXED


def contracting(result: WindowResult, channels: np.ndarray | slice = slice(None)) -> bool:
    """Whether any of ``channels`` contracts in this window (never while their rest level is being learned)."""
    return muscle_state(result, channels) is MuscleState.CONTRACTING


def verdict(label: str, state: MuscleState) -> str:
    """The model was trained on contractions: a relaxed muscle, or one whose rest level is still unknown, gets no
    condition, live or offline alike."""
    if state is MuscleState.CONTRACTING:
        return label
    return LEARNING_LABEL if state is MuscleState.LEARNING else REST_LABEL


def label_index(probabilities: np.ndarray, state: MuscleState) -> int:
    """The verdict as the decisions outlet's ``label_index``: a class index only where the verdict is a class."""
    if state is MuscleState.CONTRACTING:
        return int(np.argmax(probabilities))
    return LEARNING_INDEX if state is MuscleState.LEARNING else REST_INDEX


@dataclass
class MonitorState:
    """Everything the views show, updated by the pipeline threads under one lock."""

    stream_name: str = ""
    fs: float = 0.0
    n_channels: int = 0
    channel_labels: list[str] = field(default_factory=list)
    layout: dict[str, Any] | None = None
    decisions: DecisionRing = field(default_factory=lambda: DecisionRing(HISTORY_WINDOWS))
    features: FeatureRing = field(default_factory=lambda: FeatureRing(HISTORY_WINDOWS))
    latencies_s: collections.deque = field(default_factory=lambda: collections.deque(maxlen=2000))
    usable: np.ndarray | None = None
    events: collections.deque = field(default_factory=lambda: collections.deque(maxlen=1000))  # (lsl time, text)
    emg_channels: np.ndarray | None = None  # the channels that are EMG (views average over these)
    fatigue: Any = None  # the latest dsp.fatigue.FatigueReport
    quality: Any = None  # the latest dsp.quality.QualityReport
    recording: str | None = None  # the XDF file being recorded, if any
    model_status: str | None = None  # why no condition model runs, when the session chose to run none
    windows_seen: int = 0
    windows_sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def decisions_published(self) -> int:
        """Every decision ever appended: with several workers they arrive out of sequence order, so readers of the
        bounded ``decisions`` history find what is new by this count, not by sequence number. The ring counts its
        own appends, so the count and the history's contents never disagree."""
        return self.decisions.appended

    def latency_percentiles(self) -> dict[str, float]:
        with self.lock:
            values = np.array(self.latencies_s)
        if not len(values):
            return {}
        p50, p95, p99 = np.percentile(values * 1000.0, [50, 95, 99])
        return {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99)}


class MonitorPipeline:
    """Owns the monitor's threads for one stream. ``client`` is an InferenceClient (or None: DSP only)."""

    def __init__(
        self, stream_info: Any, settings: EngineSettings | None = None, client: Any | None = None,
        buffer_seconds: float = 30.0, publish: bool = True, classes: list[str] | None = None,
    ) -> None:
        self.acquisition = Acquisition(stream_info, buffer_seconds=buffer_seconds)
        stream = self.acquisition.stream
        self.engine = DspEngine(self.acquisition.buffer, stream.fs, settings, filtered_seconds=buffer_seconds)
        self.client = client
        self.model_channels = np.asarray(stream.emg_channels)
        self.state = MonitorState(
            stream_name=stream.name, fs=stream.fs, n_channels=stream.n_channels,
            channel_labels=list(stream.channel_labels), layout=stream.layout, emg_channels=self.model_channels,
        )
        self.outlets = (
            ResultOutlets(stream.name, stream.source_id, stream.channel_labels, classes) if publish else None
        )
        self._stop = threading.Event()
        # sequence -> (arrival, submitted) LSL times, and what the muscle did in that window: None from the submit
        # (the DSP step sends a window to the worker before its fatigue update) until the step's subscriber knows it
        self._inflight: dict[int, tuple[float | None, float, MuscleState | None]] = {}
        self._inflight_lock = threading.Lock()
        self._muscle_known = threading.Condition(self._inflight_lock)  # notified when muscle states are filled in
        #: decisions whose reply came before their window's muscle state, and their waits in all (seconds)
        self.muscle_waits = 0
        self.muscle_wait_s = 0.0
        #: replies dropped because their window's muscle state could never come (the DSP thread died in between)
        self.undecided = 0
        self._poller = threading.Thread(target=self._poll_decisions, name="decisions", daemon=True)
        if client is not None:  # DSP only: nothing to send, and no GIL hand-over in the step
            self.engine.send_windows_first(self._submit)
        self.engine.subscribe(self._on_windows)

    def start(self) -> None:
        self.acquisition.start()
        self.engine.start()
        self._poller.start()

    def stop(self) -> None:
        self._stop.set()
        self.engine.stop()
        self.acquisition.stop()
        for thread in (self._poller, self.engine, self.acquisition):
            if thread.is_alive():
                thread.join(timeout=2.0)

    def _submit(self, windows: list[ReadyWindow]) -> None:
        """In the DSP step, before the windows' features and fatigue update: the worker's time overlaps them."""
        import pylsl

        for item in windows:
            counter = item.window.end_counter
            with self._inflight_lock:
                self._inflight[counter] = (self.acquisition.arrival_of(counter - 1), pylsl.local_clock(), None)
                if len(self._inflight) > 4096:  # answers that never came (deadline drops, an outage)
                    for stale in list(self._inflight)[:1024]:
                        del self._inflight[stale]
            self.client.submit(item.window.data[self.model_channels], item.window.last_timestamp, counter,
                               self.state.fs, item.usable[self.model_channels])  # fmt: skip
            self.state.windows_sent += 1

    def _on_windows(self, results: list[WindowResult]) -> None:
        if self.client is not None:
            # first what the decisions wait for: each window's muscle state, filled into its in-flight entry
            known = [(result.window.end_counter, muscle_state(result, self.model_channels)) for result in results]
            with self._muscle_known:
                for counter, muscle in known:
                    entry = self._inflight.get(counter)
                    if entry is not None:  # not forgotten while in flight
                        self._inflight[counter] = (entry[0], entry[1], muscle)
                self._muscle_known.notify_all()
        with self.state.lock:
            self.state.windows_seen += len(results)
            self.state.usable = results[-1].usable
            self.state.fatigue = results[-1].fatigue
            self.state.quality = results[-1].quality
            for result in results:
                self.state.features.append(result.window.last_timestamp, result.features)
        if self.outlets is not None:
            for result in results:
                self.outlets.push_window(result.features, result.usable, result.window.last_timestamp,
                                         self.model_channels)

    def _pending_for(self, decisions: list[Any]) -> list[tuple[float | None, float | None, MuscleState] | None]:
        """Each decision's in-flight entry, taken once its window's muscle state is known. The window went to the
        worker before the DSP step computed its fatigue update, so a quick reply waits here for that step's
        subscriber, never taking another window's state or a default. None where the state can never come (the
        DSP thread died between the submit and the update, or the pipeline stops): that reply is not published."""
        pending: list[tuple[float | None, float | None, MuscleState] | None] = []
        with self._muscle_known:
            for decision in decisions:
                waiting_since: float | None = None
                while True:
                    entry = self._inflight.get(decision.sequence)
                    if entry is None:  # forgotten while in flight (an outage's backlog): the model's label, as always
                        pending.append((None, None, MuscleState.CONTRACTING))
                        break
                    arrived, submitted, muscle = entry
                    if muscle is not None:
                        del self._inflight[decision.sequence]
                        pending.append((arrived, submitted, muscle))
                        break
                    # checked after the entry, under the lock the DSP thread fills it under: a step that finished
                    # before its thread died has filled it in already
                    if self._stop.is_set() or (self.engine.ident is not None and not self.engine.is_alive()):
                        del self._inflight[decision.sequence]
                        pending.append(None)
                        break
                    if waiting_since is None:
                        waiting_since = time.perf_counter()
                    self._muscle_known.wait(0.1)
                if waiting_since is not None:
                    self.muscle_waits += 1
                    self.muscle_wait_s += time.perf_counter() - waiting_since
        return pending

    def record_event(self, text: str, timestamp: float) -> None:
        log.warning("%s: %s", self.state.stream_name, text)
        with self.state.lock:
            self.state.events.append((timestamp, text))
        if self.outlets is not None:
            self.outlets.push_event(text, timestamp)

    def annotate(self, timestamp: float, text: str) -> None:
        """A user's annotation (marker button, scripted demo): shown, published on the events stream, recorded."""
        self.record_event(f"annotation: {text}", timestamp)

    def _watch_stream(self, was_lost: bool, gaps_seen: int) -> tuple[bool, int]:
        """Turns acquisition and engine state changes into session events (shown, published, recorded)."""
        import pylsl

        lost = self.acquisition.signal_lost and self.acquisition.buffer.total_written > 0
        if lost and not was_lost:
            self.record_event("signal lost", pylsl.local_clock())
        gaps = self.engine.stats.gaps
        if gaps > gaps_seen:
            gap = self.engine.stats.last_gap
            self.record_event(f"signal restored after a gap of {gap[1]:.3f} s at sample {gap[0]}", gap[2])
        return lost, gaps

    def _poll_decisions(self) -> None:
        import pylsl

        was_lost, gaps_seen = False, 0
        while not self._stop.is_set():
            was_lost, gaps_seen = self._watch_stream(was_lost, gaps_seen)
            if self.client is None:
                self._stop.wait(0.05)
                continue
            decisions = self.client.poll(timeout_s=0.05)
            if not decisions:
                continue
            taken = self._pending_for(decisions)
            if self._stop.is_set():
                return
            decided = [(decision, entry) for decision, entry in zip(decisions, taken, strict=True) if entry is not None]
            if len(decided) < len(decisions):
                if not self.undecided:
                    log.error("%s: replies without their window's muscle state (the DSP thread ended); not published",
                              self.state.stream_name)  # fmt: skip
                self.undecided += len(decisions) - len(decided)
            if not decided:
                continue
            decisions, pending = [d for d, _ in decided], [entry for _, entry in decided]
            if self.outlets is not None:
                for decision, (_, _, muscle) in zip(decisions, pending, strict=True):
                    self.outlets.push_decision(decision.classes, decision.probabilities, decision.last_timestamp,
                                               label_index(decision.probabilities, muscle))  # fmt: skip
            now = pylsl.local_clock()  # after publication: the latency ends where the definition does
            with self.state.lock:
                for decision, (arrived, submitted, muscle) in zip(decisions, pending, strict=True):
                    latency = now - decision.last_timestamp
                    worker_s = decision.worker_ms / 1000.0
                    self.state.latencies_s.append(latency)
                    self.state.decisions.append(
                        DecisionRecord(
                            decision.sequence, decision.last_timestamp, verdict(decision.label, muscle),
                            np.asarray(decision.probabilities), list(decision.classes),
                            None if decision.channel_attention is None else np.asarray(decision.channel_attention),
                            decision.model_id, latency, worker_s,
                            acquisition_s=None if arrived is None else arrived - decision.last_timestamp,
                            dsp_s=None if arrived is None or submitted is None else submitted - arrived,
                            transport_s=None if submitted is None else decision.received_at - submitted - worker_s,
                            publication_s=now - decision.received_at,
                            muscle=muscle,
                        )
                    )
