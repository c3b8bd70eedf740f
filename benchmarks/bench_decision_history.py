"""Memory and read cost of the monitor's 20-minute decision history: the old deque of ``DecisionRecord``s against
the preallocated ``DecisionRing``.

    .venv/bin/python -m benchmarks.bench_decision_history --channels 8 64

Each (layout, channel count) runs in a fresh subprocess, so that one case's freed memory cannot hide the next one's
growth. A case appends ``HISTORY_WINDOWS`` (24,000) decisions the way the pipeline's decision thread does: a
``DecisionRecord`` per decision with float32 probabilities over the bundled model's three classes and float32
channel attention, each a read-only view of its own bytes as the client decodes the worker's ZeroMQ frames, a
verdict label, a model id and every latency part; the deque keeps the records, the ring copies them in. It reports the
process's RSS growth over the appends, the bytes tracemalloc sees held by the full history (a second fill, with
tracing on), the append cost, and two reads of a full history as the views do them before and after: the
classification trend's first collection of every decision, and the status view's last 200 worker times.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import time
from typing import Any

import numpy as np

from benchmarks.bench_feature_history import best_of, measure_history, memory_figures
from benchmarks.common import REPO, emit

CLASSES = ["healthy", "myopathy", "neuropathy"]


def fill(history: Any, n_channels: int, n: int) -> float:
    """Appends ``n`` decisions as the pipeline does; returns seconds per append."""
    from monitor.pipeline import DecisionRecord, MuscleState, verdict

    rng = np.random.default_rng(0)
    muscles = (MuscleState.CONTRACTING, MuscleState.RELAXED)
    elapsed = 0.0
    for i in range(n):
        # made outside the timed part: the worker's reply arrays exist before the pipeline appends anything
        # read-only views of the reply's ZeroMQ frames, as monitor.inference.protocol decodes them: a record kept
        # them, and with them each frame's bytes
        probabilities = np.frombuffer(rng.dirichlet(np.ones(len(CLASSES))).astype(np.float32).tobytes(), np.float32)
        attention = np.frombuffer(rng.random(n_channels, dtype=np.float32).tobytes(), np.float32)
        muscle = muscles[(i // 200) % 2]
        start = time.perf_counter()
        history.append(DecisionRecord(
            i, 1000.0 + 0.05 * i, verdict(CLASSES[int(np.argmax(probabilities))], muscle), probabilities,
            list(CLASSES), attention, "neurofusion-ring8", 0.004 + 1e-6 * (i % 97), 0.001,
            acquisition_s=0.0004, dsp_s=0.0006, transport_s=0.0009, publication_s=0.0001, muscle=muscle,
        ))  # fmt: skip
        elapsed += time.perf_counter() - start
    return elapsed / n


def new_history(layout: str, capacity: int) -> Any:
    from monitor.decision_history import DecisionRing

    return collections.deque(maxlen=capacity) if layout == "deque" else DecisionRing(capacity)


def read_trend(history: Any, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """The classification view's first collection of a full history: times and probabilities of every decision."""
    if layout == "ring":
        columns = history.recent_columns(len(history), ("last_timestamp", "probabilities", "classes", "muscle"))
        width = len(history.class_sets[columns["classes"][-1]])
        return columns["last_timestamp"], columns["probabilities"][:, :width].astype(np.float64)
    fresh = []  # monitor.gui.classification before the ring: a walk back to the last decision drawn, reversed
    for record in reversed(history):
        if record.sequence <= -1:
            break
        fresh.append(record)
    fresh.reverse()
    times = np.array([record.last_timestamp for record in fresh])
    return times, np.array([record.probabilities for record in fresh], dtype=np.float64)


def read_worker_times(history: Any, layout: str) -> np.ndarray:
    import itertools

    if layout == "ring":
        return history.recent_columns(200, ("worker_s",))["worker_s"]
    return np.array([record.worker_s for record in itertools.islice(reversed(history), 200)])


def read_costs(history: Any, layout: str) -> tuple[float, float]:
    """Seconds for the classification trend's and the status view's reads of a full history (best of a few)."""
    return best_of(3, lambda: read_trend(history, layout)), best_of(20, lambda: read_worker_times(history, layout))


def one_case(layout: str, n_channels: int) -> dict[str, Any]:
    from monitor.pipeline import HISTORY_WINDOWS

    fill(new_history(layout, 64), n_channels, 64)  # imports and first-call caches, outside the measurement
    append_s, rss_growth, (trend_s, worker_s), traced_bytes = measure_history(
        lambda: new_history(layout, HISTORY_WINDOWS),
        lambda history: fill(history, n_channels, HISTORY_WINDOWS),
        lambda history: read_costs(history, layout),
    )
    return {
        **memory_figures(layout, n_channels, "decision", HISTORY_WINDOWS, append_s, rss_growth, traced_bytes),
        "read_trend_all_decisions_ms": round(trend_s * 1000, 2),
        "read_last_200_worker_times_ms": round(worker_s * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--case", nargs=2, metavar=("LAYOUT", "CHANNELS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:  # a child: one case, one JSON line
        print(json.dumps(one_case(args.case[0], int(args.case[1]))))
        return
    results = {}
    for n_channels in args.channels:
        for layout in ("deque", "ring"):
            command = ["-m", "benchmarks.bench_decision_history", "--case", layout, str(n_channels)]
            child = subprocess.run([sys.executable, *command], cwd=REPO, capture_output=True, text=True, check=True)
            results[f"{n_channels}ch_{layout}"] = json.loads(child.stdout.splitlines()[-1])
    emit("decision_history", {"results": results})


if __name__ == "__main__":
    main()
