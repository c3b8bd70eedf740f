"""Dashboard frames per second at 8, 64 and 256 channels x 2048 Hz with 10 s of traces on screen (Qt offscreen).

For each channel count an amplifier subprocess streams noise over LSL in real time; this process runs the real
MonitorPipeline (acquisition + DSP threads) and the MainWindow. Once the buffer holds the whole span it measures:

- ``max_fps``: frames drawn back to back (``MainWindow.refresh`` + Qt painting the dirty views) for ``--seconds``,
  i.e. the headroom above the 30 Hz timer;
- ``timer_fps``: frames the window's own 30 Hz QTimer achieved over the same time (<= ~30 by design);
- per-frame times of the traces view alone (read + decimate + setData) and of painting.

    .venv/bin/python -m benchmarks.bench_gui_fps [--channels 8 64 256] [--span 10] [--seconds 5] [--all-lanes]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid

import numpy as np

from benchmarks.common import REPO, emit

FS = 2048.0


class NoiseSource:
    """Gaussian noise, 50 µV, every channel: drawing cost does not depend on the signal's physiology."""

    def __init__(self, n_channels: int) -> None:
        self.fs = FS
        self.n_channels = n_channels
        self.channel_labels = [f"ch{i + 1}" for i in range(n_channels)]
        self.layout = None
        self._rng = np.random.default_rng(0)

    def read(self, n: int) -> np.ndarray:
        return (self._rng.standard_normal((n, self.n_channels)) * 50.0).astype(np.float32)


def serve(n_channels: int, source_id: str, duration_s: float) -> None:
    from simulators.amplifier import Amplifier
    from simulators.electrodes import ElectrodeLayout

    source = NoiseSource(n_channels)
    if n_channels == 8:
        source.layout = ElectrodeLayout.ring(8)
    elif n_channels in (64, 256):
        side = int(np.sqrt(n_channels))
        source.layout = ElectrodeLayout.grid(side, side)
    if source.layout is not None:
        source.channel_labels = list(source.layout.labels)
    amplifier = Amplifier(source, name=f"bench-gui-{n_channels}", source_id=source_id, chunk_samples=64)
    amplifier.wait_for_consumers(30.0)
    amplifier.run(duration_s=duration_s)


def measure(n_channels: int, span_s: float, seconds: float, all_lanes: bool) -> dict:
    from PyQt6 import QtWidgets

    from monitor.acquisition import resolve_stream
    from monitor.gui.main_window import MainWindow
    from monitor.gui.traces import SPANS_S
    from monitor.pipeline import MonitorPipeline

    source_id = f"bench-gui-{uuid.uuid4().hex[:8]}"
    amplifier = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_gui_fps", "--serve", str(n_channels), "--source-id", source_id,
         "--duration", str(span_s + 3 * seconds + 15)],
        cwd=REPO,
    )
    pipeline = None
    try:
        pipeline = MonitorPipeline(resolve_stream(source_id=source_id, timeout_s=30.0), publish=False)
        pipeline.start()
        app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["bench"])
        window = MainWindow(pipeline)
        window.resize(1600, 1000)
        window.traces.span_box.setCurrentIndex(SPANS_S.index(span_s))
        if all_lanes:
            window.traces.page_box.setCurrentIndex(0)
        window.show()
        deadline = time.monotonic() + span_s + 20
        while pipeline.engine.filtered.total_written < span_s * FS and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.02)
        on_screen = min(pipeline.engine.filtered.total_written, int(span_s * FS))

        window.timer.stop()
        traces_s, paint_s, frames = [], [], 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            t0 = time.perf_counter()
            window.refresh()
            t1 = time.perf_counter()
            app.processEvents()  # Qt paints the views the frame dirtied
            t2 = time.perf_counter()
            traces_s.append(t1 - t0)
            paint_s.append(t2 - t1)
            frames += 1
        max_fps = frames / (time.perf_counter() - started)
        raster = window.traces.raster.isVisible()
        drawn = window.traces.raster.image.size if raster else len(window.traces.curve.xData)

        ticks_before = window.ticks
        window.timer.start()
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            app.processEvents()
            time.sleep(0.001)
        timer_fps = (window.ticks - ticks_before) / (time.perf_counter() - started)
        window.close()
        return {
            "channels": n_channels,
            "lanes_shown": len(window.traces.lanes),
            "span_s": span_s,
            "samples_on_screen_per_channel": on_screen,
            "drawn_as": "one image" if raster else "line segments",
            "points_or_pixels": int(drawn),
            "max_fps": round(max_fps, 1),
            "timer_fps": round(timer_fps, 1),
            "refresh_ms_median": round(1000 * float(np.median(traces_s)), 2),
            "paint_ms_median": round(1000 * float(np.median(paint_s)), 2),
            "frame_ms_p95": round(1000 * float(np.percentile(np.add(traces_s, paint_s), 95)), 2),
            "dropped_samples": pipeline.engine.reader.dropped,
        }
    finally:
        if pipeline is not None:
            pipeline.stop()
        amplifier.terminate()
        amplifier.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, nargs="+", default=[8, 64, 256])
    parser.add_argument("--span", type=float, default=10.0, help="seconds of traces on screen")
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per phase")
    parser.add_argument("--all-lanes", action="store_true",
                        help="draw every channel even above 64 (the window pages 64 lanes at a time by default)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--source-id", help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.source_id, args.duration)
        return
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    results = [measure(n, args.span, args.seconds, args.all_lanes) for n in args.channels]
    emit("gui_fps", {"fs": FS, "window_size": [1600, 1000], "qt_platform": os.environ["QT_QPA_PLATFORM"],
                     "results": results})


if __name__ == "__main__":
    main()
