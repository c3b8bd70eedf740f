"""The DSP thread: ring buffer -> causal filters -> windows -> features, signal quality and fatigue -> subscribers.

Everything here is causal: each output depends only on samples already in the buffer. Subscribers are called in
this thread with each batch of finished windows, so they must be quick (queue, submit, append) and never block.
Window senders (``send_windows_first``) get each step's windows with their channel masks before the features and
the fatigue update are computed: a model in another process then works while this thread finishes the step.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from dsp.ringbuffer import RingBuffer, RingReader
from dsp.windows import Window, Windower, is_gap

if TYPE_CHECKING:
    from dsp.adaptive import AdaptivePreprocessor
    from dsp.fatigue import FatigueReport
    from dsp.filters import FilterChain
    from dsp.quality import QualityReport

# The stages (scipy, PyWavelets, psutil: ~0.6 s quiet, ~2 s at load 12) are imported when an engine is built, not
# with this module: views and commands import it for EngineSettings and EngineStats only.

log = logging.getLogger(__name__)

#: what the engine computes for every window (fatigue and the views need these; the model computes its own)
ENGINE_FEATURES = ("RMS", "MNF", "MDF", "FInsm5")


@dataclass
class EngineSettings:
    window_ms: float = 200.0
    hop_ms: float = 50.0
    mode: str = "surface"
    mains_hz: float | None = 50.0
    low_hz: float = 20.0
    high_hz: float = 450.0
    adaptive_mains: bool = False  # LMS canceller tracking a drifting mains instead of the fixed notch
    adaptive_baseline: bool = False


@dataclass
class ReadyWindow:
    """A finished window and its channel mask, before its features and fatigue update: all a model needs."""

    window: Window
    usable: np.ndarray  # (C,) bool: channels fit to feed the model
    quality: QualityReport  # the signal quality in force at the window's end


@dataclass
class WindowResult:
    window: Window
    features: dict[str, np.ndarray]  # name -> (C,)
    usable: np.ndarray  # (C,) bool: channels fit to feed the model
    fatigue: FatigueReport
    quality: QualityReport
    dsp_seconds: float  # processing time of the batch this window came in, per window
    finished_at: float  # time.perf_counter() when the DSP finished it


@dataclass
class EngineStats:
    samples_processed: int = 0
    windows: int = 0
    gaps: int = 0
    dropped_samples: int = 0
    nonfinite_samples: int = 0
    dsp_seconds_total: float = 0.0
    last_gap: tuple[int, float, float] = (0, 0.0, 0.0)  # counter after the gap, its length (s), LSL time of return


class DspEngine(threading.Thread):
    def __init__(
        self,
        buffer: RingBuffer,
        fs: float,
        settings: EngineSettings | None = None,
        start_counter: int = 0,
        filtered_seconds: float = 30.0,
        wake_per_chunk: bool = False,
    ) -> None:
        super().__init__(name="dsp", daemon=True)
        #: read every chunk as it is written instead of once per hop (the filtered trace then advances per chunk)
        self.wake_per_chunk = wake_per_chunk
        self.buffer = buffer
        self.fs = float(fs)
        self.n_channels = buffer.n_channels
        self.settings = settings or EngineSettings()
        self.reader = RingReader(buffer, start_counter)
        #: filtered samples, same counters as the raw buffer, for the trace and spectrum views
        self.filtered = RingBuffer(int(self.fs * filtered_seconds), self.n_channels)
        from dsp.resources import StageProfiler

        self.stats = EngineStats()
        self.profiler = StageProfiler()  # per-stage time per window, CPU and memory (status bar, reports)
        self._subscribers: list[Callable[[list[WindowResult]], None]] = []
        self._window_senders: list[Callable[[list[ReadyWindow]], None]] = []
        self._sample_listeners: list[Callable[[np.ndarray, np.ndarray, int], None]] = []
        self._stop_requested = threading.Event()
        self._lock = threading.Lock()
        self._last_timestamp: float | None = None
        self._gap_seconds = 0.0
        self._rebuild()

    def _rebuild(self) -> None:
        from dsp.fatigue import FatigueTracker
        from dsp.filters import default_chain
        from dsp.quality import QualityMonitor, QualitySettings

        s = self.settings
        adaptive_mains = s.mains_hz if s.adaptive_mains else None
        self.adaptive: AdaptivePreprocessor | None = None
        if adaptive_mains or s.adaptive_baseline:
            from dsp.adaptive import AdaptivePreprocessor

            self.adaptive = AdaptivePreprocessor(
                self.fs, self.n_channels, mains_hz=adaptive_mains, baseline=s.adaptive_baseline
            )
        self.chain: FilterChain = default_chain(
            self.fs, self.n_channels, mode=s.mode, mains_hz=None if s.adaptive_mains else s.mains_hz,
            low_hz=s.low_hz, high_hz=s.high_hz,
        )
        self.windower = Windower(self.fs, self.n_channels, s.window_ms, s.hop_ms)
        if not hasattr(self, "fatigue"):  # the fatigue trend spans settings changes: built once
            self.fatigue = FatigueTracker(self.fs, self.n_channels)
            self._fatigue_settings = self.fatigue.settings
        # its rest ceiling follows the filter mode: a needle stream's rest is a few µV, not the surface 20
        self.fatigue.settings = self._fatigue_settings.for_mode(s.mode)
        self.quality = QualityMonitor(self.fs, self.n_channels, QualitySettings(mains_hz=s.mains_hz))
        self._quality_origin = 0  # stream counter minus the quality monitor's own sample count
        self._bad_until = np.zeros(self.n_channels, dtype=np.int64)

    def update_settings(self, **changes: object) -> None:
        """Applied between two chunks: filters restart from the next sample without a transient."""
        with self._lock:
            for key, value in changes.items():
                if not hasattr(self.settings, key):
                    raise AttributeError(f"unknown DSP setting {key!r}")
                setattr(self.settings, key, value)
            self._rebuild()

    def subscribe(self, callback: Callable[[list[WindowResult]], None]) -> None:
        self._subscribers.append(callback)

    def send_windows_first(self, callback: Callable[[list[ReadyWindow]], None]) -> None:
        """``callback(windows)`` in this thread, inside the step, as soon as the step's windows and their channel
        masks are known: before their features, fatigue update and the subscribers (which then get the same windows
        as ``WindowResult``). For handing windows to a model in another process, whose work then overlaps the rest
        of the step on another core. It must be quick, and must not call back into the engine (the step holds its
        lock). A sender that needs the fatigue state of a window (the muscle state) gets it from a subscriber."""
        self._window_senders.append(callback)

    def add_sample_listener(self, callback: Callable[[np.ndarray, np.ndarray, int], None]) -> None:
        """``callback(raw samples, timestamps, first_counter)`` in this thread for every chunk, before the windows'
        subscribers: for per-sample work that needs no window (motor-unit discharges). It must be quick."""
        self._sample_listeners.append(callback)

    def stop(self) -> None:
        self._stop_requested.set()

    def run(self) -> None:
        while not self._stop_requested.is_set():
            # a stream that stalls mid-hop is still filtered (for the views) one wait later; stop() is seen then too
            self.buffer.wait_for_data(self._wake_after(), timeout_s=self.windower.hop_samples / self.fs + 0.05)
            block = self.reader.read(max_samples=int(self.fs))
            if len(block.timestamps):
                self.process(block.data, block.timestamps, block.first_counter)

    def _wake_after(self) -> int:
        """The counter the buffer must pass before the thread reads again: the last sample of the next hop.

        Windows end only on multiples of the hop (dsp/windows.py), so no window can be finished before that sample
        is in: waking for it costs a decision nothing and spares the chunks before it (at 64 ch x 2048 Hz in
        32-sample chunks, ~3 wake-ups in 4; filtering 102 samples at once also costs half of 32 at a time). Sample
        listeners (motor-unit discharges) and ``wake_per_chunk`` want every chunk as it comes.

        The signal-quality evaluation (every 0.5 s of samples; ~3 ms of CPU at 256 channels, with the mains
        periodogram every 1 s) gets a wake-up of its own when it falls before the hop's last sample: it then runs
        up to a hop before the window that needs its report instead of inside the step that finishes that window
        and submits it to the worker (unless both fall in one amplifier chunk: ~1 in 6 at 32-sample chunks). Same
        samples, same evaluation points, same reports and windows."""
        next_counter = self.reader.next_counter
        if self.wake_per_chunk or self._sample_listeners:
            return next_counter
        hop = self.windower.hop_samples
        hop_end = (next_counter // hop + 1) * hop - 1
        return min(hop_end, next_counter + self.quality.samples_until_evaluation() - 1)

    def process(self, samples: np.ndarray, timestamps: np.ndarray, first_counter: int) -> list[WindowResult]:
        """One step of the thread, callable directly for offline analysis (same code path as live)."""
        if len(timestamps) == 0:
            return []
        started = time.perf_counter()
        with self._lock:
            self._detect_gap(timestamps, first_counter)
            cleaned = samples if self.adaptive is None else self.adaptive.process(samples)
            filtered, nonfinite = self.chain.process(cleaned)
            windows = self.windower.push(filtered, timestamps, first_counter)
            filtered_at = time.perf_counter()
            self.profiler.record("filters", filtered_at - started, windows=len(windows))
            self.filtered.write(filtered, timestamps)
            self._track_nonfinite(nonfinite, first_counter)
            # samples the reader lost never reach the quality monitor: re-anchor its count to the stream's counter
            self._quality_origin = first_counter - self.quality.samples_seen
            self.quality.update(samples, float(timestamps[-1]))
            ready = self._masks(windows)
            sent = 0.0
            if ready and self._window_senders:
                sending = time.perf_counter()
                for sender in self._window_senders:
                    sender(ready)
                # give the GIL away once: the inference client's I/O thread needs it to put the windows on the wire,
                # and would otherwise wait for this thread's next release inside the features (submit -> on the
                # wire at 256 ch, load 5-7: p50 1.3-1.8 ms without this, 0.34 ms with it; bench_latency)
                time.sleep(0)
                sent = time.perf_counter() - sending
            results = self._analyse(ready, started + sent)  # the senders' time is not the DSP's
            self.profiler.record("quality+features+fatigue", time.perf_counter() - filtered_at - sent,
                                 windows=len(windows))  # fmt: skip
        self.stats.samples_processed += len(timestamps)
        for listener in self._sample_listeners:
            listener(samples, timestamps, first_counter)
        self.stats.dropped_samples = self.reader.dropped
        if results:
            for callback in self._subscribers:
                callback(results)
        return results

    def _detect_gap(self, timestamps: np.ndarray, first_counter: int) -> None:
        # a stream that vanished and returned resumes with a jump in time: restart filters and windows there,
        # so no window straddles the gap and no filter rings from the discontinuity
        if self._last_timestamp is not None and is_gap(self._last_timestamp, float(timestamps[0]), self.fs):
            gap_s = float(timestamps[0] - self._last_timestamp)
            self.stats.last_gap = (first_counter, gap_s, float(timestamps[0]))
            self._gap_seconds += gap_s
            self.stats.gaps += 1
            log.info("gap of %.3f s before sample %d", gap_s, first_counter)
            self.chain.reset()
            self.windower.reset()
            if self.adaptive is not None:
                self.adaptive.reset()
        self._last_timestamp = float(timestamps[-1])

    def _track_nonfinite(self, nonfinite: np.ndarray, first_counter: int) -> None:
        bad_rows, bad_channels = np.nonzero(nonfinite)
        if len(bad_rows):
            self.stats.nonfinite_samples += len(bad_rows)
            # a channel stays masked for one window length after its last bad sample
            last_bad = first_counter + bad_rows
            np.maximum.at(self._bad_until, bad_channels, last_bad + self.windower.window_samples)

    def _masks(self, windows: list[Window]) -> list[ReadyWindow]:
        """Each window with the channels fit to feed the model: known before any feature is computed."""
        ready = []
        for window in windows:
            # the quality in force at the window's end, not at the chunk's: chunking must not change a window's mask
            quality = self.quality.report_at(window.end_counter - self._quality_origin)
            usable = (self._bad_until <= window.start_counter) & quality.usable
            ready.append(ReadyWindow(window, usable, quality))
        return ready

    def _analyse(self, ready: list[ReadyWindow], started: float) -> list[WindowResult]:
        if not ready:
            return []
        from dsp.features import compute_features  # imported by the first engine built: a dict lookup from then

        stacked = np.stack([item.window.data for item in ready])
        features = compute_features(stacked, self.fs, ENGINE_FEATURES)
        finished = time.perf_counter()
        per_window = (finished - started) / len(ready)
        self.stats.windows += len(ready)
        self.stats.dsp_seconds_total += finished - started
        results = []
        for index, (window, usable, quality) in enumerate((item.window, item.usable, item.quality) for item in ready):
            window_features = {name: values[index] for name, values in features.items()}
            # the tracker's clock is the sample counter (plus any gaps): the LSL clock's microsecond corrections
            # could move a window across an epoch boundary, so live and offline would disagree
            stream_time = window.end_counter / self.fs + self._gap_seconds
            report = replace(  # views place it on the LSL clock, like everything else they draw
                self.fatigue.update_features(stream_time, window_features, usable), timestamp=window.last_timestamp
            )
            results.append(WindowResult(window, window_features, usable, report, quality, per_window, finished))
        return results
