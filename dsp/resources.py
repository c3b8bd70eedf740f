"""Resource figures (the paper's "resource utilisation"): per-stage processing time per window, process CPU % and
memory, measured with ``time.perf_counter``/``time.process_time`` and psutil.

Stages report into one ``StageProfiler``::

    profiler = StageProfiler()
    with profiler.stage("filters", windows=len(batch)):
        ...
    profiler.report()  # {"stages": {"filters": {...}}, "cpu_percent": ..., "rss_mb": ...}

It keeps a bounded reservoir of recent timings per stage (so a monitor running for hours holds constant memory)
and running totals. Timing a block costs about a microsecond; it never sleeps and never blocks.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psutil

RECENT_CALLS = 2048


@dataclass
class StageTimes:
    """Running totals and the most recent per-window times of one stage."""

    calls: int = 0
    windows: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    recent_ms_per_window: deque = field(default_factory=lambda: deque(maxlen=RECENT_CALLS))

    def add(self, wall_s: float, cpu_s: float, windows: int) -> None:
        self.calls += 1
        self.windows += windows
        self.wall_s += wall_s
        self.cpu_s += cpu_s
        self.recent_ms_per_window.append(1000.0 * wall_s / max(windows, 1))

    def summary(self) -> dict[str, float | int]:
        recent = np.asarray(self.recent_ms_per_window, dtype=np.float64)
        per_window = 1000.0 * self.wall_s / max(self.windows, 1)
        return {
            "calls": self.calls,
            "windows": self.windows,
            "ms_per_window_mean": round(per_window, 4),
            "ms_per_window_p50": round(float(np.percentile(recent, 50)), 4) if recent.size else 0.0,
            "ms_per_window_p99": round(float(np.percentile(recent, 99)), 4) if recent.size else 0.0,
            "wall_s": round(self.wall_s, 4),
            "cpu_s": round(self.cpu_s, 4),
        }


class StageProfiler:
    """Collects per-stage timings plus whole-process CPU and memory; ``report()`` gives JSON-safe figures."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self.stages: dict[str, StageTimes] = {}
        self.reset_clock()

    def reset_clock(self) -> None:
        """Start the CPU % interval (and the stage totals) afresh."""
        self.stages.clear()
        self._started_wall = time.perf_counter()
        times = self._process.cpu_times()
        self._started_cpu = times.user + times.system
        self._recent = (self._started_wall, self._started_cpu, 0.0)  # (wall, cpu, last figure) of cpu_percent_recent

    @contextmanager
    def stage(self, name: str, windows: int = 1) -> Iterator[None]:
        """Times the enclosed block as ``windows`` windows' worth of stage ``name`` (thread CPU time included)."""
        wall = time.perf_counter()
        cpu = time.thread_time()
        try:
            yield
        finally:
            self.record(name, time.perf_counter() - wall, time.thread_time() - cpu, windows)

    def record(self, name: str, wall_s: float, cpu_s: float = 0.0, windows: int = 1) -> None:
        """Adds one measurement taken elsewhere (e.g. a worker's reply carrying its own inference time)."""
        if windows < 0 or wall_s < 0:
            raise ValueError("window count and time must not be negative")
        self.stages.setdefault(name, StageTimes()).add(wall_s, cpu_s, windows)

    def cpu_percent(self) -> float:
        """Process CPU time over wall time since ``reset_clock``, in % of one core (200 % = two cores busy)."""
        elapsed = time.perf_counter() - self._started_wall
        times = self._process.cpu_times()
        used = times.user + times.system - self._started_cpu
        return 100.0 * used / elapsed if elapsed > 0 else 0.0

    def cpu_percent_recent(self, min_interval_s: float = 2.0) -> float:
        """Process CPU % over the latest interval of at least ``min_interval_s`` (a live monitor's CPU now; the
        average since start hides a load that came later). Between updates it repeats the last figure."""
        now = time.perf_counter()
        times = self._process.cpu_times()
        cpu = times.user + times.system
        wall, used, figure = self._recent
        if now - wall >= min_interval_s:
            figure = 100.0 * (cpu - used) / (now - wall)
            self._recent = (now, cpu, figure)
        elif wall == self._started_wall and now > wall:  # nothing measured yet: the average so far
            figure = 100.0 * (cpu - used) / (now - wall)
        return figure

    def memory_mb(self) -> float:
        """Resident set size of this process, MiB."""
        return self._process.memory_info().rss / 2**20

    @staticmethod
    def peak_memory_mb() -> float:
        """Largest resident set size this process has had (getrusage; NaN where the platform has none), MiB."""
        try:
            import resource
        except ImportError:  # Windows
            return float("nan")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux

    def report(self) -> dict[str, Any]:
        return {
            "stages": {name: times.summary() for name, times in list(self.stages.items())},
            "cpu_percent": round(self.cpu_percent(), 1),
            "rss_mb": round(self.memory_mb(), 1),
            # the kernel's high-water mark is updated lazily: never report it below the current size
            "peak_rss_mb": round(max(self.peak_memory_mb(), self.memory_mb()), 1),
            "elapsed_s": round(time.perf_counter() - self._started_wall, 3),
        }

    def status_line(self, extra_ms_per_window: dict[str, float] | None = None, recent_cpu: bool = False) -> str:
        """One line for a status bar: CPU %, memory and every stage's mean ms per window, slowest first.

        ``extra_ms_per_window`` adds stages timed elsewhere (e.g. the model in the worker process);
        ``recent_cpu`` shows the CPU of the last few seconds instead of the average since the start."""
        cpu = self.cpu_percent_recent() if recent_cpu else self.cpu_percent()
        parts = [f"CPU {cpu:.0f}%", f"RSS {self.memory_mb():.0f} MB"]
        # list(): the DSP thread may add a stage while the GUI thread reads
        per_window = {name: 1000.0 * t.wall_s / max(t.windows, 1) for name, t in list(self.stages.items())}
        per_window.update(extra_ms_per_window or {})
        for name, ms in sorted(per_window.items(), key=lambda item: -item[1]):
            parts.append(f"{name} {ms:.2f} ms/win")
        return " | ".join(parts)
