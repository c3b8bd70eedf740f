"""Live quantitative needle EMG: ``analyse_needle`` on the last seconds of one channel, in a background thread.

Views never wait for it. Every ``interval_s`` the thread copies the newest ``window_s`` of *raw* samples of the
selected channel from the acquisition buffer (MUP analysis filters zero-phase itself and must not see the live
notch, docs/needle-emg.md), analyses them and swaps in an immutable ``NeedleSnapshot``; a view reads ``latest``
whenever it redraws. One analysis of 8 s at 10 kHz takes ~0.5 s of one core, most of it in numpy/scikit-learn,
which release the GIL, so drawing goes on meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from dsp.mup import MupSettings
from dsp.mup_reading import NeedleReport, analyse_needle
from dsp.ringbuffer import RingBuffer

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
    ) -> None:
        if window_s <= 0 or interval_s <= 0:
            raise ValueError(f"window and interval must be positive, not {window_s} s and {interval_s} s")
        self.buffer = buffer
        self.fs = float(fs)
        self.window_s = float(window_s)
        self.interval_s = float(interval_s)
        self.settings = settings or MupSettings()
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
                try:
                    report = analyse_needle(block.data[:, channel].astype(np.float64), self.fs, self.settings)
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
