"""Live quantitative needle EMG: ``analyse_needle`` on the last seconds of one channel, in a background thread.

Views never wait for it. Every ``interval_s`` the thread copies the newest ``window_s`` of *raw* samples of the
selected channel from the acquisition buffer (MUP analysis filters zero-phase itself and must not see the live
notch, docs/needle-emg.md), resamples them to ``NEEDLE_FS`` as `analyze` does, analyses them and swaps in an
immutable ``NeedleSnapshot``; a view reads ``latest`` whenever it redraws. One analysis of 8 s at 10 kHz takes
~0.5 s of one core, most of it in numpy/scikit-learn, which release the GIL, so drawing goes on meanwhile.

``LiveNeedleVerdicts`` gives a one-channel needle stream rolling verdicts of the needle condition model (the surface
model takes 8 electrodes and refuses one channel).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from dsp.mup import MupSettings
from dsp.mup_reading import NeedleReport, analyse_needle
from dsp.resample import HIGHEST_NEEDLE_FS, LOWEST_NEEDLE_FS
from dsp.ringbuffer import RingBuffer
from monitor.pipeline import SPONTANEOUS_LABEL, label_index, verdict

log = logging.getLogger(__name__)

DEFAULT_WINDOW_S = 8.0  # ~80 discharges per unit at 10 Hz: enough for stable templates (>= 20 needed)
DEFAULT_INTERVAL_S = 3.0


@dataclass(frozen=True)
class NeedleSnapshot:
    """One analysis: the report (None with ``error`` set when the samples could not be analysed), which channel
    and samples it covered (buffer counters, LSL times) and how long it took."""

    sequence: int
    channel: int
    first_counter: int
    end_counter: int
    first_timestamp: float
    last_timestamp: float
    report: NeedleReport | None
    error: str | None
    elapsed_s: float

    @property
    def seconds(self) -> float:
        return 0.0 if self.report is None else self.report.duration_s


class LiveNeedleAnalysis:
    """Background MUP analysis of one channel of ``buffer`` (raw µV at ``fs``)."""

    def __init__(
        self,
        buffer: RingBuffer,
        fs: float,
        channel: int = 0,
        window_s: float = DEFAULT_WINDOW_S,
        interval_s: float = DEFAULT_INTERVAL_S,
        settings: MupSettings | None = None,
        muscle: str | None = None,
        age: float | None = None,
    ) -> None:
        if window_s <= 0 or interval_s <= 0:
            raise ValueError(f"window and interval must be positive, not {window_s} s and {interval_s} s")
        self.buffer = buffer
        self.fs = float(fs)
        self.window_s = float(window_s)
        self.interval_s = float(interval_s)
        self.settings = settings or MupSettings()
        self.muscle = muscle  # the reference values the reading uses (None: generic), as `analyze --muscle`
        self.age = age
        self._channel = self._checked(channel)
        self._latest: NeedleSnapshot | None = None
        self._sequence = 0
        self._lock = threading.Lock()  # one analysis at a time (the thread, or analyse_now from a test)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def _checked(self, channel: int) -> int:
        if not 0 <= channel < self.buffer.n_channels:
            raise ValueError(f"channel {channel} does not exist (the stream has {self.buffer.n_channels})")
        return int(channel)

    @property
    def channel(self) -> int:
        return self._channel

    @property
    def latest(self) -> NeedleSnapshot | None:
        """The newest finished analysis (a reference swap: safe to read from any thread)."""
        return self._latest

    def select_channel(self, channel: int) -> None:
        """Analyse ``channel`` from now on; the next analysis starts at once."""
        self._channel = self._checked(channel)
        self._wake.set()

    def start(self) -> LiveNeedleAnalysis:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="needle-analysis", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=10.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.buffer.total_written >= self.window_s * self.fs:
                try:
                    self.analyse_now()
                except Exception:  # a bug here must not kill the thread silently: log it, try again next time
                    log.exception("live needle analysis failed")
            self._wake.wait(self.interval_s)
            self._wake.clear()

    def analyse_now(self) -> NeedleSnapshot:
        """Analyses the newest ``window_s`` of the selected channel now (in the caller's thread) and publishes it."""
        with self._lock:
            channel = self._channel
            block = self.buffer.latest(int(round(self.window_s * self.fs)))
            started = time.perf_counter()
            report, error = None, None
            if len(block.timestamps) == 0:
                error = "no samples yet"
            else:
                try:  # a needle rate is analysed at NEEDLE_FS (resampled there), as `analyze` does
                    report = analyse_needle(block.data[:, channel].astype(np.float64), self.fs, muscle=self.muscle,
                                            age=self.age, settings=self.settings)  # fmt: skip
                except ValueError as problem:  # too short, NaN (electrode off): shown in the panel, not raised
                    error = str(problem)
            self._sequence += 1
            snapshot = NeedleSnapshot(
                sequence=self._sequence,
                channel=channel,
                first_counter=block.first_counter,
                end_counter=block.end_counter,
                first_timestamp=float(block.timestamps[0]) if len(block.timestamps) else float("nan"),
                last_timestamp=float(block.timestamps[-1]) if len(block.timestamps) else float("nan"),
                report=report,
                error=error,
                elapsed_s=time.perf_counter() - started,
            )
            self._latest = snapshot
            return snapshot


# ---------------------------------------------------------------- rolling verdicts of the needle condition model

VERDICT_WINDOW_S = 2.0  # the newest signal that says whether the muscle contracts now (rest gate, spontaneous
# potentials), and the least signal a verdict is given on
VERDICT_HOP_S = 0.25  # a verdict every hop, ending on a multiple of the hop (counter-aligned, as the DSP windows)
# what the model judges per verdict: the length it was trained and judged on (the clinical set's whole 5 s recordings,
# 19 windows of 0.5 s; docs/needle-model.md). Its statistics (SD, 10th and 90th percentile over the windows) are
# those of 19 windows: over the 7 windows of 2 s they shift (on 30 clinical recordings the 2 s verdicts disagreed
# with the offline verdict of the same file in 1 decision in 5; docs/needle-emg.md), so a stream's verdict on a 5 s
# recording's samples is `analyze`'s verdict on that recording, exactly
MODEL_STRETCH_S = 5.0


def is_needle_stream(n_emg_channels: int, fs: float, layout: dict | None, engine_mode: str | None = None) -> bool:
    """A stream the needle model judges: one EMG channel at a needle rate (4-32 kHz) with no layout or a needle
    layout, or with any layout when the user says so (``--needle``)."""
    if n_emg_channels != 1 or not LOWEST_NEEDLE_FS <= fs <= HIGHEST_NEEDLE_FS:
        return False
    return (layout or {}).get("kind") in (None, "needle") or engine_mode == "needle"


class LiveNeedleVerdicts:
    """Rolling verdicts of the needle condition model on one channel of ``pipeline``'s stream, published like the
    worker's decisions: on the decisions outlet, in ``state.decisions`` (views, JSON lines, the needle panel) with
    their latency from the window's last sample to publication.

    A thread waits for the buffer to reach the next hop boundary, takes the newest ``stretch_s`` of *raw* samples
    (the live notch would cut the model's bands; less at the start of a stream: all it has, from ``window_s`` on)
    and asks ``model.predict_window`` (which resamples them to ``NEEDLE_FS`` itself and reads the recorded rate), as
    `analyze` asks ``predict_recording`` about a whole recording: on the same 5 s the two verdicts are the same
    (``stretch_s`` is the length the model was trained on). The result says what it covers (``seconds``,
    ``first_counter``). A verdict whose newest ``window_s`` is no longer in the buffer, or one the thread is too
    late for (a slow machine), is skipped and counted, never queued.

    The model was trained on contractions, so a verdict needs activity, as on the surface path
    (``monitor.pipeline.verdict``): the newest ``window_s``'s RMS in the engine's filtered signal (same counters)
    against the rest
    level the engine's fatigue tracker learned for the channel (never above its ``needle_max_rest_rms``), times its
    ``activity_ratio``. Below it the decision
    is published as "rest" (label_index REST_INDEX), and as "learning rest level" until that level is known.
    A relaxed window is searched for spontaneous potentials (fibrillations, positive sharp waves:
    ``dsp.spontaneous``): where they are, its verdict reads ``SPONTANEOUS_LABEL`` (still REST_INDEX on the outlet:
    no condition at rest), ``spontaneous`` counts such windows and ``last_spontaneous`` holds the latest finding."""

    def __init__(self, pipeline: Any, model: Any, channel: int = 0, window_s: float = VERDICT_WINDOW_S,
                 hop_s: float = VERDICT_HOP_S, stretch_s: float = MODEL_STRETCH_S) -> None:  # fmt: skip
        if window_s <= 0 or hop_s <= 0:
            raise ValueError(f"window and hop must be positive, not {window_s} s and {hop_s} s")
        if stretch_s < window_s:
            raise ValueError(f"the model's stretch ({stretch_s} s) cannot be shorter than the window ({window_s} s)")
        self.pipeline = pipeline
        self.model = model
        self.buffer: RingBuffer = pipeline.acquisition.buffer
        self.fs = float(pipeline.state.fs)
        if not LOWEST_NEEDLE_FS <= self.fs <= HIGHEST_NEEDLE_FS:
            raise ValueError(f"the needle model needs a stream at 4-32 kHz, not {self.fs:g} Hz")
        self.channel = int(channel)
        self.window_samples = int(round(window_s * self.fs))
        self.stretch_samples = int(round(stretch_s * self.fs))
        self.hop_samples = max(1, int(round(hop_s * self.fs)))
        self.published = 0
        self.spontaneous = 0  # relaxed windows holding spontaneous potentials
        self.last_spontaneous: Any = None  # dsp.spontaneous.SpontaneousActivity of the latest such window
        self.skipped = 0
        self.errors = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> LiveNeedleVerdicts:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="needle-verdicts", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=10.0)

    def _first_end(self) -> int:
        return -(-self.window_samples // self.hop_samples) * self.hop_samples

    def _run(self) -> None:
        next_end = self._first_end()
        while not self._stop.is_set():
            if not self.buffer.wait_for_data(next_end - 1, timeout_s=0.1):
                continue
            newest = self.buffer.total_written
            if newest - next_end >= self.hop_samples:  # behind: judge the newest complete window, count the rest
                latest_end = newest - newest % self.hop_samples
                self.skipped += (latest_end - next_end) // self.hop_samples
                next_end = latest_end
            try:
                self.judge(next_end)
            except Exception as problem:  # a bug here must not end live verdicts silently: log it, go on
                self.errors += 1
                self.last_error = str(problem)
                log.exception("live needle verdict failed")
            next_end += self.hop_samples

    def activity(self, end_counter: int) -> Any:
        """What the muscle does over the window ending at ``end_counter`` (a ``MuscleState``)."""
        return self._activity(end_counter)[0]

    def _activity(self, end_counter: int) -> tuple[Any, np.ndarray | None]:
        """(``MuscleState``, the engine's filtered samples of the window, None where it did not read them)."""
        from monitor.decision_history import MuscleState

        state, engine = self.pipeline.state, getattr(self.pipeline, "engine", None)
        with state.lock:
            report = state.fatigue
        if report is None or engine is None or report.learning:
            return MuscleState.LEARNING, None
        rest = float(np.asarray(report.rest_rms)[self.channel])
        if not np.isfinite(rest) or rest <= 0:
            return MuscleState.LEARNING, None
        settings = engine.fatigue.settings
        # needle baseline noise is a few µV and weak needle contractions sit at 30-80 µV RMS: under the surface
        # ceiling (20 µV x activity_ratio 4: 80 µV) a stream that starts inside a contraction would read healthy and
        # myopathic windows as rest. An engine in needle mode caps its tracker at the needle ceiling already
        # (FatigueSettings.for_mode); this cap also holds for a needle stream on an engine left in surface mode
        rest = min(rest, settings.needle_max_rest_rms)
        start = end_counter - self.window_samples
        # the engine filters a hop behind the raw buffer at most: what it has of the window stands for all of it
        available = min(end_counter, engine.filtered.total_written) - start
        if available < self.window_samples // 2:  # the engine far behind: its latest window's state says it
            active = bool(np.asarray(report.active)[self.channel])
            return (MuscleState.CONTRACTING if active else MuscleState.RELAXED), None
        filtered = engine.filtered.read_from(start, available).data[:, self.channel].astype(np.float64)
        filtered = filtered[np.isfinite(filtered)]
        rms = float(np.sqrt(np.mean(filtered**2))) if filtered.size else 0.0
        return (MuscleState.CONTRACTING if rms > settings.activity_ratio * rest else MuscleState.RELAXED), filtered

    def judge(self, end_counter: int) -> dict | None:
        """The model's answer on the window ending at ``end_counter`` with ``muscle`` and the published ``verdict``
        (a class, or "rest" / "learning rest level" without activity); None when its samples are gone, hold
        NaN/Inf, e.g. an electrode off, or straddle a gap in the stream)."""
        import pylsl

        from dsp.spontaneous import spontaneous_potentials
        from monitor.decision_history import DecisionRecord, MuscleState

        # the model's stretch: the newest stretch_s, or all the buffer still holds of it (a stream's first seconds)
        oldest = max(0, self.buffer.total_written - self.buffer.capacity)
        first = max(end_counter - self.stretch_samples, oldest)
        block = self.buffer.read_from(first, end_counter - first)
        if block.first_counter > end_counter - self.window_samples or block.end_counter != end_counter:
            self.skipped += 1
            return None
        samples = block.data[:, self.channel]
        span = float(block.timestamps[-1] - block.timestamps[0])
        if not np.all(np.isfinite(samples)) or span > 1.5 * (len(samples) - 1) / self.fs + 0.05:
            self.skipped += 1  # an electrode off (NaN), or a gap in the stream inside the window: no verdict
            return None
        last_timestamp = float(block.timestamps[-1])
        muscle, filtered = self._activity(end_counter)
        spontaneous = None
        if muscle is MuscleState.RELAXED and filtered is not None:
            spontaneous = spontaneous_potentials(filtered, self.fs)
        arrived = self.pipeline.acquisition.arrival_of(end_counter - 1)
        started = pylsl.local_clock()
        predict = getattr(self.model, "predict_window", None) or self.model.predict_recording
        result = predict(samples, self.fs)  # the model resamples to NEEDLE_FS itself and reads the recorded rate
        answered = pylsl.local_clock()
        classes = list(result["probabilities"])
        probabilities = np.array([float(result["probabilities"][name]) for name in classes], dtype=np.float32)
        outlets = self.pipeline.outlets
        if outlets is not None:
            outlets.push_decision(classes, probabilities, last_timestamp, label_index(probabilities, muscle))
        now = pylsl.local_clock()
        label = verdict(classes[int(np.argmax(probabilities))], muscle)
        if spontaneous is not None and spontaneous.flagged:
            label = SPONTANEOUS_LABEL
        record = DecisionRecord(
            end_counter, last_timestamp, label, probabilities,
            classes, None,
            str(result["model_id"]), now - last_timestamp, answered - started,
            acquisition_s=None if arrived is None else arrived - last_timestamp,
            dsp_s=None if arrived is None else started - arrived, transport_s=0.0, publication_s=now - answered,
            muscle=muscle,
        )  # fmt: skip
        state = self.pipeline.state
        with state.lock:
            state.latencies_s.append(record.latency_s)
            state.decisions.append(record)
        self.published += 1
        if spontaneous is not None and spontaneous.flagged:
            if not self.spontaneous:  # once per stream in the log; the verdicts say it every time
                log.warning("needle stream under the rest gate holds potentials (%d in %.1f s, median %.0f µV): "
                            "spontaneous activity, or a very weak contraction",
                            spontaneous.count, self.window_samples / self.fs, spontaneous.median_amplitude_uv)
            self.spontaneous += 1
            self.last_spontaneous = spontaneous
        return {**result, "muscle": muscle.value, "verdict": record.label,
                "spontaneous": None if spontaneous is None else spontaneous.to_dict(),
                "first_counter": int(block.first_counter), "seconds": len(samples) / self.fs}


def needle_session_model(stream_info: Any, model_path: str | None, engine_mode: str | None
                         ) -> tuple[Any | None, int] | None:  # fmt: skip
    """For a needle stream: (the needle condition model, or None where none is installed; the EMG channel it
    judges). None for any other stream. ``model_path`` None is the bundled needle model."""
    from monitor.acquisition import describe
    from monitor.recordings.needle import load_condition_model

    description = describe(stream_info)
    emg = description.emg_channels
    if not is_needle_stream(len(emg), description.fs, description.layout, engine_mode):
        return None
    return load_condition_model(model_path), emg[0]


def needle_classes(model: Any) -> list[str]:
    """The model's class names (healthy, myopathy, neuropathy for the bundled one)."""
    from monitor.recordings.needle import CONDITION_CLASSES

    return [str(name) for name in getattr(model, "classes", CONDITION_CLASSES)]
