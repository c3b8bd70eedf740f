"""CPU of each dashboard view's refresh and of the painting it causes, per call, on a live grid stream (Qt offscreen).

A real LSL stream of band-limited noise (tests/gui/streams.py) on an 8x8 or 16x16 grid feeds a real MonitorPipeline
(acquisition + DSP threads) in this process; a thread appends one decision with random channel attention every 50 ms
(what a worker would publish), so the electrode map's attention colours change as they do live. The MainWindow
(1600 x 1000) runs its own schedule (traces every tick, the slow views every 6-8 ticks), paced at 33 ms; around each
view's refresh this measures ``time.thread_time`` (the Qt thread only: the pipeline's threads are not counted), then
the same around ``processEvents`` right after it (Qt painting what that view dirtied).

    LSLAPICFG=monitor/lsl_api.cfg QT_QPA_PLATFORM=offscreen \
        .venv/bin/python -m benchmarks.bench_gui_views --channels 64 256 --frames 400 [--session-minutes 5]

Run it from another checkout (``git archive``) to compare trees: it imports ``monitor`` from the working directory.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import threading
import time

import numpy as np

FRAME_S = 0.033
CLASSES = ["healthy", "myopathy", "neuropathy"]


def _decision(rng: np.random.Generator, sequence: int, timestamp: float, n_channels: int):
    from monitor.decision_history import DecisionRecord

    probabilities = rng.dirichlet(np.ones(len(CLASSES))).astype(np.float32)
    attention = rng.random(n_channels).astype(np.float32)
    return DecisionRecord(sequence, timestamp, CLASSES[int(np.argmax(probabilities))], probabilities, CLASSES,
                          attention, "bench", 0.01, 0.002)


def _decisions(state, n_channels: int, stop: threading.Event, session_minutes: float) -> None:
    """One decision every 50 ms; first ``session_minutes`` of them back-dated, as if the session had run that long."""
    import pylsl

    rng = np.random.default_rng(3)
    earlier = int(session_minutes * 60 * 20)
    now = pylsl.local_clock()
    with state.lock:
        for sequence in range(earlier):
            state.decisions.append(_decision(rng, sequence, now - 0.05 * (earlier - sequence), n_channels))
    sequence = earlier
    while not stop.wait(0.05):
        record = _decision(rng, sequence, pylsl.local_clock(), n_channels)
        with state.lock:
            state.decisions.append(record)
        sequence += 1


def _paint_counter(views: dict) -> dict[str, list[int]]:
    """Counts Qt paint events of each view's plot canvases (how often a frame repaints what it did not change)."""
    import pyqtgraph as pg
    from PyQt6 import QtCore

    counts = {name: [0] for name in views}

    class Counter(QtCore.QObject):
        def __init__(self, count: list[int]) -> None:
            super().__init__()
            self.count = count

        def eventFilter(self, _watched, event) -> bool:  # noqa: N802 - Qt's name
            if event.type() == QtCore.QEvent.Type.Paint:
                self.count[0] += 1
            return False

    filters = []
    for name, view in views.items():
        for canvas in view.findChildren(pg.GraphicsView):
            counter = Counter(counts[name])
            canvas.viewport().installEventFilter(counter)
            filters.append(counter)
    counts["_filters"] = filters  # kept alive with the counts
    return counts


def measure(n_channels: int, frames: int, session_minutes: float = 0.0) -> dict:
    from PyQt6 import QtWidgets

    from monitor.gui import main_window as main_window_module
    from monitor.pipeline import MonitorPipeline
    from simulators.electrodes import ElectrodeLayout
    from tests.gui.streams import BandNoiseSource, LiveStream

    side = int(round(np.sqrt(n_channels)))
    stream = LiveStream(BandNoiseSource(ElectrodeLayout.grid(side, side)), name=f"bench-views-{n_channels}").start()
    pipeline = MonitorPipeline(stream.resolve(), publish=False)
    pipeline.start()
    stop = threading.Event()
    feeder = threading.Thread(target=_decisions, args=(pipeline.state, n_channels, stop, session_minutes), daemon=True)
    try:
        app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["bench"])
        window = main_window_module.MainWindow(pipeline)
        window.resize(1600, 1000)
        window.show()
        window.timer.stop()
        feeder.start()
        deadline = time.monotonic() + 30
        while pipeline.engine.filtered.total_written < 3 * pipeline.state.fs and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.02)
        for _ in range(30):  # warm-up: every view drawn once with data
            window.refresh(everything=True)
            app.processEvents()
        names = ["traces", *main_window_module.EVERY_TICKS]
        profiled = os.environ.get("BENCH_PROFILE_VIEW")  # a view's refresh + paint under cProfile, to a file
        profiler = cProfile.Profile()
        paints = _paint_counter({name: getattr(window, name) for name in names})
        refresh = {name: [] for name in names}
        paint = {name: [] for name in names}
        started = time.perf_counter()
        for tick in range(1, frames + 1):
            frame_start = time.perf_counter()
            window.ticks = tick
            for name in names:
                if name != "traces" and tick % main_window_module.EVERY_TICKS[name] != \
                        main_window_module.PHASE_TICKS[name]:
                    continue
                if name == profiled:
                    profiler.enable()
                t0 = time.thread_time()
                getattr(window, name).refresh()
                t1 = time.thread_time()
                app.processEvents()
                t2 = time.thread_time()
                if name == profiled:
                    profiler.disable()
                refresh[name].append(t1 - t0)
                paint[name].append(t2 - t1)
            time.sleep(max(0.0, FRAME_S - (time.perf_counter() - frame_start)))
        wall = time.perf_counter() - started
        if profiled:
            profiler.dump_stats(f"/tmp/bench_gui_views_{profiled}_{n_channels}.prof")
        window.close()
        app.processEvents()

        def ms(values: list[float], q: float) -> float:
            return round(1000 * float(np.percentile(values, q)), 3) if values else float("nan")

        per_view = {name: {"calls": len(refresh[name]), "refresh_ms_median": ms(refresh[name], 50),
                           "refresh_ms_p90": ms(refresh[name], 90), "paint_ms_median": ms(paint[name], 50),
                           "paint_ms_p90": ms(paint[name], 90),
                           "canvas_paints": paints[name][0],
                           "total_ms_per_frame": round(1000 * (sum(refresh[name]) + sum(paint[name])) / frames, 3)}
                    for name in names}
        return {"channels": n_channels, "frames": frames, "session_minutes": session_minutes, "wall_s": round(wall, 1),
                "cpu_ms_per_frame": round(sum(v["total_ms_per_frame"] for v in per_view.values()), 2),
                "views": per_view, "load": os.getloadavg()[0]}
    finally:
        stop.set()
        pipeline.stop()
        stream.vanish()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--session-minutes", type=float, default=0.0,
                        help="decisions back-dated this far before the window opens (the trend views' history)")
    args = parser.parse_args()
    for n_channels in args.channels:
        print(json.dumps(measure(n_channels, args.frames, args.session_minutes)), flush=True)


if __name__ == "__main__":
    main()
