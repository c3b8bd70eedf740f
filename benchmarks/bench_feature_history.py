"""Memory and read cost of the monitor's 20-minute feature history: the old deque of per-window dicts against the
preallocated ``FeatureRing``.

    .venv/bin/python -m benchmarks.bench_feature_history --channels 8 64

Each (layout, channel count) runs in a fresh subprocess, so that one case's freed memory cannot hide the next one's
growth. The engine's features (RMS, MNF, MDF, FInsm5) are computed once per channel count, by
``dsp.features.compute_features`` over a few hundred windows of band-limited noise, in the parent (the intermediates
would otherwise leave freed heap in the child that the history could reuse unseen by RSS). A case loads them, hands
freed heap back to the system (glibc ``malloc_trim``), then appends ``HISTORY_WINDOWS`` (24,000) windows the way
the DSP thread did: one float64 row per feature per window, cast to float32 by the pipeline (deque) or copied in by
the ring. It reports the process's RSS growth over the appends, the bytes tracemalloc sees held by the full history
(a second fill, with tracing on), the append cost, and the two views' reads of a full history as the code before
and after does them: the trace envelope's last 10 s of RMS, and the fatigue trend's first collection of every
window.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import REPO, emit

FS = 2048.0
WINDOW_SAMPLES = 410  # 200 ms at 2048 Hz
DISTINCT_WINDOWS = 256  # features computed once, cycled through the history
ENVELOPE_S = 10.0


def engine_feature_rows(n_channels: int) -> dict[str, np.ndarray]:
    """{feature: (DISTINCT_WINDOWS, n_channels) float64}, as ``DspEngine`` computes them for a batch of windows."""
    from benchmarks.bench_dsp_chain import synthetic_emg
    from dsp.engine import ENGINE_FEATURES
    from dsp.features import compute_features

    samples = synthetic_emg(DISTINCT_WINDOWS * WINDOW_SAMPLES, n_channels, FS)
    windows = samples.reshape(DISTINCT_WINDOWS, WINDOW_SAMPLES, n_channels).transpose(0, 2, 1)
    return compute_features(windows, FS, ENGINE_FEATURES)


def fill(history: Any, layout: str, rows: dict[str, np.ndarray], n: int) -> float:
    """Appends ``n`` windows as the DSP thread does; returns seconds per append."""
    start = time.perf_counter()
    for i in range(n):
        features = {name: values[i % DISTINCT_WINDOWS] for name, values in rows.items()}  # views, as the engine's
        timestamp = 1000.0 + 0.05 * i
        if layout == "deque":  # the pipeline before the ring
            history.append((timestamp, {name: np.asarray(v, dtype=np.float32) for name, v in features.items()}))
        else:
            history.append(timestamp, features)
    return (time.perf_counter() - start) / n


def new_history(layout: str, capacity: int) -> Any:
    from monitor.feature_history import FeatureRing

    return collections.deque(maxlen=capacity) if layout == "deque" else FeatureRing(capacity)


def read_envelope(history: Any, layout: str, since: float) -> tuple[np.ndarray, np.ndarray]:
    if layout == "ring":
        times, values = history.since(since, names=("RMS",))
        return times, values["RMS"]
    rows = []  # monitor.gui.traces.recent_feature before the ring
    for timestamp, features in reversed(history):
        if timestamp < since:
            break
        rows.append((timestamp, features["RMS"]))
    rows.reverse()
    return np.array([t for t, _ in rows]), np.stack([v for _, v in rows]).astype(np.float32)


def read_trend(history: Any, layout: str, usable: np.ndarray, emg: np.ndarray) -> np.ndarray:
    from monitor.gui.fatigue import FEATURES, emg_means
    from monitor.outlets import emg_mean

    if layout == "ring":
        _, features = history.since(-np.inf, names=FEATURES, inclusive=False)
        return np.stack([emg_means(features[name], usable, emg) for name in FEATURES], axis=1)
    # monitor.gui.fatigue.FeatureHistory.collect before the ring
    fresh = [(timestamp, features) for timestamp, features in reversed(history)]
    fresh.reverse()
    return np.array([[emg_mean(features[name], usable, emg) for name in FEATURES] for _, features in fresh])


def best_of(repeats: int, call: Any) -> float:
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        timings.append(time.perf_counter() - start)
    return min(timings)


def read_costs(history: Any, layout: str, n_channels: int) -> tuple[float, float]:
    """Seconds for the trace envelope's and the fatigue trend's reads of a full history (best of a few)."""
    newest = history[-1][0] if layout == "deque" else history.latest()[0]
    usable, emg = np.ones(n_channels, dtype=bool), np.arange(n_channels)
    envelope_s = best_of(20, lambda: read_envelope(history, layout, newest - ENVELOPE_S))
    trend_s = best_of(3, lambda: read_trend(history, layout, usable, emg))
    return envelope_s, trend_s


def release_free_heap() -> None:
    """Returns freed heap to the system, so that RSS growth afterwards is new memory (a no-op off glibc)."""
    import ctypes
    import ctypes.util

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)


def measure_history(
    make: Callable[[], Any], fill_full: Callable[[Any], float], read: Callable[[Any], Any]
) -> tuple[float, int, Any, int]:
    """A full history's cost: fills one from ``make()`` with ``fill_full`` (which returns seconds per append) and
    times ``read`` on it, then fills a second one under tracemalloc once the first is freed (RSS never shrinks, so
    its figure comes first); -> (seconds per append, RSS growth in bytes, what ``read`` returned, traced bytes)."""
    import psutil

    release_free_heap()
    process = psutil.Process()
    history = make()
    rss_before = process.memory_info().rss
    append_s = fill_full(history)
    rss_growth = process.memory_info().rss - rss_before
    read_result = read(history)
    del history
    release_free_heap()
    tracemalloc.start()
    traced = make()
    fill_full(traced)
    traced_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return append_s, rss_growth, read_result, traced_bytes


def memory_figures(
    layout: str, n_channels: int, item: str, count: int, append_s: float, rss_growth: int, traced_bytes: int
) -> dict[str, Any]:
    """The figures both history benchmarks print, per ``item`` ("window", "decision") held."""
    return {
        "layout": layout,
        "channels": n_channels,
        f"{item}s": count,
        "rss_growth_mib": round(rss_growth / 2**20, 1),
        "traced_mib": round(traced_bytes / 2**20, 2),
        f"traced_bytes_per_{item}": round(traced_bytes / count),
        "append_us": round(append_s * 1e6, 2),
    }


def one_case(layout: str, n_channels: int, rows_file: str) -> dict[str, Any]:
    from monitor.pipeline import HISTORY_WINDOWS

    with np.load(rows_file) as stored:
        rows = {name: stored[name] for name in stored.files}
    append_s, rss_growth, (envelope_s, trend_s), traced_bytes = measure_history(
        lambda: new_history(layout, HISTORY_WINDOWS),
        lambda history: fill(history, layout, rows, HISTORY_WINDOWS),
        lambda history: read_costs(history, layout, n_channels),
    )
    return {
        **memory_figures(layout, n_channels, "window", HISTORY_WINDOWS, append_s, rss_growth, traced_bytes),
        "read_envelope_last_10s_ms": round(envelope_s * 1000, 3),
        "read_trend_all_windows_ms": round(trend_s * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--case", nargs=3, metavar=("LAYOUT", "CHANNELS", "ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:  # a child: one case, one JSON line
        print(json.dumps(one_case(args.case[0], int(args.case[1]), args.case[2])))
        return
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for n_channels in args.channels:
            rows_file = str(Path(scratch) / f"rows{n_channels}.npz")
            np.savez(rows_file, **engine_feature_rows(n_channels))
            for layout in ("deque", "ring"):
                command = ["-m", "benchmarks.bench_feature_history", "--case", layout, str(n_channels), rows_file]
                child = subprocess.run([sys.executable, *command], cwd=REPO, capture_output=True, text=True, check=True)
                results[f"{n_channels}ch_{layout}"] = json.loads(child.stdout.splitlines()[-1])
    emit("feature_history", {"results": results})


if __name__ == "__main__":
    main()
