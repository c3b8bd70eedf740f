"""Sample-to-decision latency: from the moment the amplifier pushes a window's last sample to the moment the monitor
has published its decision, on the LSL clock of one machine, worker in another process.

    .venv/bin/python -m benchmarks.bench_latency --channels 8 64 256 --duration 20

"sample_to_decision" starts when the outlet pushes the chunk holding the window's last sample (the amplifier pushes a
chunk as soon as its last sample is due); "sample_time_to_decision" starts at that sample's own time stamp, so it
also counts the wait for the rest of its chunk. Both end once the decision is pushed on the monitor's decisions
outlet. Breakdown per decision: LSL transfer and buffering (pushed -> in the ring buffer), DSP (in the buffer ->
window filtered, masked and submitted; its features and fatigue update follow while the worker runs), worker (model
time in the worker process), ZeroMQ (submitted -> reply received by the client's I/O thread, less the worker's time:
encoding, both socket hops, queues), publication (reply received -> handed to the decisions thread, which waits
there for the window's muscle state if the step has not finished it yet, and pushed on the LSL outlet). CPU per
second of signal covers the whole stream but its last second, the view's start-up included. The player runs in a
subprocess (tests/players.py); for 64 and 256 channels the worker runs an untrained network of the bundled
architecture for that grid (same cost as a trained one).

With ``--gui`` the monitor process also shows the real dashboard (MainWindow, 1600 x 1000, Qt offscreen unless a
display is set) redrawing on its own ~30 Hz timer while the decisions are timed, as a bedside monitor runs: the
GUI thread shares the interpreter with the acquisition, DSP and decision threads. ``--gui both`` measures each
channel count without and then with the window. ``--gui process`` runs the window in a process of its own that
reads the monitor's state from shared memory (monitor/core, `neurofusion monitor --view-process`); ``--gui all``
measures off, in-process and own-process one after the other.

    .venv/bin/python -m benchmarks.bench_latency --channels 8 64 256 --duration 20 --gui both
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from benchmarks.common import emit
from tests.players import start_player

CHUNK = 32  # samples per amplifier push, as the simulated amplifier sends them


def checkpoint_for(layout_name: str, fs: float, folder: Path) -> Path:
    """The bundled model for its own layout; elsewhere an untrained one of the same architecture (same cost)."""
    from models.checkpoint import BUNDLED_CHECKPOINT, ModelCard, build_model, load_checkpoint, save_checkpoint
    from models.export import export_checkpoint
    from models.neurofusionnet import NetworkConfig
    from simulators.electrodes import ElectrodeLayout

    _, bundled = load_checkpoint(BUNDLED_CHECKPOINT)
    layout = ElectrodeLayout.from_name(layout_name)
    if bundled.layout == layout.to_dict():
        return BUNDLED_CHECKPOINT
    config = NetworkConfig.from_dict({**bundled.network, "n_channels": layout.n_channels})
    card = ModelCard(
        model_id=f"latency-{layout_name}", classes=list(bundled.classes), n_channels=layout.n_channels, fs=fs,
        window_samples=int(round(0.2 * fs)), layout=layout.to_dict(), feature_names=list(bundled.feature_names),
        network=config.to_dict(),
    )
    path = save_checkpoint(folder / f"latency-{layout_name}.pt", build_model(card).eval(), card)
    export_checkpoint(path)
    return path


def run_dashboard(pipeline: object, player: subprocess.Popen) -> dict[str, float]:
    """Shows the real dashboard, driven by its own timer in a Qt event loop, until the player exits."""
    from PyQt6 import QtCore, QtWidgets

    from monitor.gui.main_window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["bench-latency"])
    window = MainWindow(pipeline)
    window.resize(1600, 1000)
    window.show()
    loop = QtCore.QEventLoop()
    watcher = QtCore.QTimer()
    watcher.timeout.connect(lambda: player.poll() is not None and loop.quit())
    watcher.start(100)
    started, ticks_before = time.perf_counter(), window.ticks
    loop.exec()
    frames_per_s = (window.ticks - ticks_before) / (time.perf_counter() - started)
    watcher.stop()
    window.timer.stop()
    window.close()
    app.processEvents()
    return {"frames_per_s": round(frames_per_s, 1), "window_size": [1600, 1000],
            "qt_platform": os.environ.get("QT_QPA_PLATFORM", "")}


VIEW_CHILD = """
import json, signal, sys, time
from PyQt6 import QtCore, QtWidgets
from monitor.core.shared_state import SharedStateReader
from monitor.gui.main_window import MainWindow
from monitor.view_client import RemotePipeline
app = QtWidgets.QApplication(["bench-latency-view"])
remote = RemotePipeline(SharedStateReader(sys.argv[1]), None).start()
window = MainWindow(remote)
window.resize(1600, 1000)
window.show()
loop = QtCore.QEventLoop()
signal.signal(signal.SIGTERM, lambda *_: loop.quit())
heartbeat = QtCore.QTimer()
heartbeat.timeout.connect(lambda: remote.core_ended and loop.quit())
heartbeat.start(100)
print("showing", flush=True)
started, ticks = time.perf_counter(), window.ticks
loop.exec()
print(json.dumps({"frames_per_s": round((window.ticks - ticks) / (time.perf_counter() - started), 1)}), flush=True)
"""


def start_view_process(pipeline: object, niceness: int | None = None) -> tuple[object, subprocess.Popen]:
    """The monitor core's publisher in this process and the real dashboard in a process of its own, reading the
    core's shared memory (monitor/core): what `neurofusion monitor --view-process` runs, the view ``niceness``
    nicer than the core (default: as the core starts its views, monitor.core.process.VIEW_NICENESS)."""
    import sys

    from monitor.core.process import VIEW_NICENESS, lower_priority
    from monitor.core.publisher import StatePublisher

    publisher = StatePublisher(pipeline)
    publish_once = publisher.publish_once
    publisher.intervals = []  # type: ignore[attr-defined] # (start, end) perf_counter of each publish

    def timed_publish() -> None:
        started = time.perf_counter()
        publish_once()
        publisher.intervals.append((started, time.perf_counter()))  # type: ignore[attr-defined]

    publisher.publish_once = timed_publish  # type: ignore[method-assign]
    publisher.start()
    view = subprocess.Popen([sys.executable, "-c", VIEW_CHILD, publisher.name_in_shm], stdout=subprocess.PIPE,
                            text=True, env=dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM",
                                                                                            "offscreen")))  # fmt: skip
    lower_priority(view.pid, VIEW_NICENESS if niceness is None else niceness)
    assert view.stdout is not None and view.stdout.readline().strip() == "showing"
    return publisher, view


def stop_view_process(publisher: object, view: subprocess.Popen) -> dict[str, object]:
    import json
    import signal

    view.send_signal(signal.SIGTERM)
    out, _ = view.communicate(timeout=60)
    publisher.stop()  # type: ignore[attr-defined]
    figures = json.loads(out.strip().splitlines()[-1])
    return {**figures, "window_size": [1600, 1000], "process": "own",
            "qt_platform": os.environ.get("QT_QPA_PLATFORM", "offscreen")}


class CpuMeter:
    """CPU seconds per process and per thread of this (the core's) process between ``start`` and ``stop``: what the
    machine's load does not change much, unlike latency (a loaded machine delays work, it does not add any)."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._started: dict[str, float] = {}
        self._threads: dict[int, float] = {}
        self._wall = 0.0
        self.processes: dict[str, object] = {"core": psutil.Process()}

    def add(self, name: str, pid: int | None) -> None:
        """A process to measure; one added after ``start`` (the view, started while measuring) counts from its
        own start, its start-up included."""
        if pid is not None:
            self.processes[name] = self._psutil.Process(pid)
            if self._wall:
                self._started[name] = 0.0

    def _cpu(self, process: object) -> float:
        try:
            times = process.cpu_times()  # type: ignore[attr-defined]
        except self._psutil.Error:
            return float("nan")
        return float(times.user + times.system)

    def start(self) -> None:
        self._wall = time.perf_counter()
        self._started = {name: self._cpu(process) for name, process in self.processes.items()}
        self._threads = {t.id: t.user_time + t.system_time for t in self._psutil.Process().threads()}

    def stop(self) -> dict[str, object]:
        """CPU ms per second of wall time (= of signal, the player streams in real time), per process and per
        named thread of the core."""
        import threading

        wall = time.perf_counter() - self._wall
        if wall < 2.0:  # the view's start-up took the whole stream (a loaded machine): nothing worth dividing
            return {"cpu_ms_per_s": None, "core_threads_cpu_ms_per_s": None, "seconds": round(wall, 1)}
        per_process = {name: round((self._cpu(process) - self._started[name]) / wall * 1000, 1)
                       for name, process in self.processes.items()}  # fmt: skip
        names = {thread.native_id: thread.name for thread in threading.enumerate()}
        per_thread: dict[str, float] = {}
        for t in self._psutil.Process().threads():
            name = names.get(t.id, "other")
            used = t.user_time + t.system_time - self._threads.get(t.id, 0.0)
            per_thread[name] = round(per_thread.get(name, 0.0) + used / wall * 1000, 1)
        return {"cpu_ms_per_s": per_process, "core_threads_cpu_ms_per_s": per_thread, "seconds": round(wall, 1)}


class HopProbe:
    """Each step of the core's DSP thread (``DspEngine.process``): its thread CPU and wall time, the windows it
    finished and whether the signal-quality evaluation ran in it (every 0.5 s of samples, mains every 1 s: the
    steps that carry it are the decision path's heaviest), and how much of the step came before its windows went to
    the worker (a window sender registered after the pipeline's submit) and after (features, fatigue, the
    subscribers: what the worker's time overlaps). Installed after the pipeline is built, before it starts; the DSP
    code runs unchanged."""

    def __init__(self, engine: object) -> None:
        self.steps: list[tuple[int, float, float, int, int]] = []  # end counter, cpu ms, wall ms, windows, checks
        self.spans: list[tuple[float, float]] = []  # perf_counter at each step's start and end
        self.submits: list[tuple[float, float, float, float]] = []  # deciding steps: cpu, wall before / after submit
        self._sent: tuple[float, float] | None = None  # (thread time, perf_counter) when this step's windows left
        self.submitted_at: dict[int, float] = {}  # window end counter -> perf_counter of its submit
        self.on_wire_at: dict[int, float] = {}  # window end counter -> perf_counter when the client's thread sent it
        self.step_ended_at: dict[int, float] = {}  # window end counter -> perf_counter at the end of its step
        self.evaluations = 0

        def windows_sent(windows: list) -> None:
            self._sent = (time.thread_time(), time.perf_counter())
            for item in windows:
                self.submitted_at[item.window.end_counter] = self._sent[1]

        send_windows_first = getattr(engine, "send_windows_first", None)  # absent before the engine sent first
        if send_windows_first is not None:
            send_windows_first(windows_sent)
        quality = engine.quality  # type: ignore[attr-defined]
        evaluate = quality._evaluate

        def counted_evaluate() -> None:
            self.evaluations += 1
            evaluate()

        quality._evaluate = counted_evaluate
        process = engine.process  # type: ignore[attr-defined]

        def timed_process(samples: np.ndarray, timestamps: np.ndarray, first_counter: int) -> list:
            checks, cpu, wall = self.evaluations, time.thread_time(), time.perf_counter()
            self._sent = None
            results = process(samples, timestamps, first_counter)
            ended = time.perf_counter()
            for result in results:
                self.step_ended_at[result.window.end_counter] = ended
            if self._sent is not None:
                thread_ended = time.thread_time()
                self.submits.append(((self._sent[0] - cpu) * 1000, (self._sent[1] - wall) * 1000,
                                     (thread_ended - self._sent[0]) * 1000, (ended - self._sent[1]) * 1000))
            self.steps.append((first_counter + len(timestamps), (time.thread_time() - cpu) * 1000,
                               (ended - wall) * 1000, len(results), self.evaluations - checks))
            self.spans.append((wall, ended))
            return results

        engine.process = timed_process  # type: ignore[attr-defined]

    def watch_client(self, client: object) -> None:
        """When the client's I/O thread puts each window on the wire: it needs the GIL, which the DSP thread holds
        while it computes the features that follow the submit, so this shows whether the worker's time really
        overlaps the rest of the step."""
        send_waiting = client._send_waiting  # type: ignore[attr-defined]

        def timed_send_waiting(pending: dict) -> None:
            unsent = [item for item in pending.values() if not item.sent]
            send_waiting(pending)
            now = time.perf_counter()
            for item in unsent:
                if item.sent:
                    self.on_wire_at[item.request.sequence] = now

        client._send_waiting = timed_send_waiting  # type: ignore[attr-defined]

    def handoff(self) -> dict[str, object]:
        """Submit -> on the wire (ms), and how many windows left before the step that submitted them ended."""
        both = [(self.on_wire_at[c] - t, self.on_wire_at[c] < self.step_ended_at[c])
                for c, t in self.submitted_at.items() if c in self.on_wire_at and c in self.step_ended_at]
        if not both:
            return {}
        delays = np.array([d for d, _ in both]) * 1000
        return {"windows": len(both), "p50_ms": round(float(np.median(delays)), 3),
                "p99_ms": round(float(np.percentile(delays, 99)), 2),
                "sent_before_step_end_share": round(float(np.mean([early for _, early in both])), 3)}

    def step_of(self, sequences: np.ndarray) -> np.ndarray:
        """Index into ``steps`` of the step that finished each window (ending at sample counter ``sequence``)."""
        ends = np.array([step[0] for step in self.steps])
        return np.minimum(np.searchsorted(ends, sequences, side="left"), len(ends) - 1)

    def overlap_ms(self, intervals: list[tuple[float, float]]) -> dict[str, float]:
        """How much of the deciding steps' wall time other work's ``intervals`` (the publisher's) overlapped."""
        spans = [span for span, step in zip(self.spans, self.steps, strict=True) if step[3] > 0]
        if not spans or not intervals:
            return {}
        others = np.array(intervals)
        shared = [float(np.clip(np.minimum(others[:, 1], end) - np.maximum(others[:, 0], start), 0, None).sum())
                  for start, end in spans]  # fmt: skip
        total = sum(end - start for start, end in spans)
        return {"per_step_mean_ms": round(1000 * float(np.mean(shared)), 3),
                "steps_overlapped_share": round(float(np.mean([x > 0 for x in shared])), 3),
                "share_of_step_time": round(float(sum(shared) / total), 3)}

    def summary(self) -> dict[str, object]:
        steps = np.array(self.steps, dtype=float).reshape(-1, 5)
        deciding = steps[steps[:, 3] > 0]

        def cpu(rows: np.ndarray) -> dict[str, float]:
            if not len(rows):
                return {"steps": 0}
            q = np.percentile(rows[:, 1], [50, 99])
            return {"steps": len(rows), "cpu_p50": round(float(q[0]), 2), "cpu_p99": round(float(q[1]), 2),
                    "wall_p99": round(float(np.percentile(rows[:, 2], 99)), 2)}

        submits = np.array(self.submits, dtype=float).reshape(-1, 4)
        split = {f"{part}_p50": round(float(np.median(submits[:, i])), 2) if len(submits) else None
                 for i, part in enumerate(("cpu_to_submit", "wall_to_submit", "cpu_after_submit",
                                           "wall_after_submit"))}  # fmt: skip
        return {"with_quality_check": cpu(deciding[deciding[:, 4] > 0]),
                "without": cpu(deciding[deciding[:, 4] == 0]), "steps_without_window": int((steps[:, 3] == 0).sum()),
                "deciding_step_split_ms": split}


class GcProbe:
    """The core process's garbage-collection pauses (every thread of the interpreter stops for them), per
    generation: how many ran while measuring and the longest, via ``gc.callbacks``."""

    def __init__(self) -> None:
        import gc

        self._gc = gc
        self.pauses: list[tuple[int, float]] = []
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((int(info["generation"]), (time.perf_counter() - self._started) * 1000))

    def stop(self) -> dict[str, object]:
        self._gc.callbacks.remove(self._callback)
        summary: dict[str, object] = {}
        for generation in (0, 1, 2):
            times = [ms for g, ms in self.pauses if g == generation]
            summary[f"gen{generation}"] = {"count": len(times), "max_ms": round(max(times), 2) if times else 0.0,
                                           "total_ms": round(sum(times), 1)}  # fmt: skip
        return summary


def measure(channels: int, duration_s: float, fs: float, folder: Path, gui: bool | str = False,
            view_niceness: int | None = None) -> dict[str, object]:
    from monitor.acquisition import resolve_stream
    from monitor.inference.client import InferenceClient
    from monitor.inference.supervisor import spawn_worker
    from monitor.pipeline import MonitorPipeline

    layout = {8: "ring8", 64: "grid8x8"}.get(channels, f"grid{channels // 16}x16")
    worker = spawn_worker(model_path=checkpoint_for(layout, fs, folder))
    source_id = f"bench-{uuid.uuid4().hex[:8]}"
    player = start_player(source_id, duration_s, layout=layout, fs=fs, no_index=True, chunk=CHUNK)
    endpoint = worker.endpoint
    try:
        client = InferenceClient(endpoint=endpoint, bed_id=source_id, deadline_s=1.0)
        pipeline = MonitorPipeline(resolve_stream(source_id=source_id, timeout_s=30), client=client)
        # the player streams from the moment the pipeline's inlet opens (it waits for a consumer)
        player_ends = time.perf_counter() + duration_s
        probe = HopProbe(pipeline.engine)
        probe.watch_client(client)
        meter = CpuMeter()
        meter.add("worker", worker.pid)
        meter.add("player", player.pid)
        # from the stream's start: the CPU covers the decisions the latency figures count (all but the first 10 %),
        # the view's start-up included (it used to start after the view was up: ~12 of 20 s at load 4-11)
        meter.start()
        pauses = GcProbe()
        answered_before = client.stats["answered"]
        pipeline.start()
        view = start_view_process(pipeline, view_niceness) if gui == "process" else None
        publisher_overlap: dict[str, float] = {}
        view_startup: dict[str, float] = {}
        if view is not None:
            meter.add("view", view[1].pid)
            view_startup = {"seconds_after_stream_start": round(time.perf_counter() - player_ends + duration_s, 1),
                            "cpu_s": round(meter._cpu(meter.processes["view"]), 2)}  # fmt: skip
        dashboard = run_dashboard(pipeline, player) if gui is True else None
        while player.poll() is None and time.perf_counter() < player_ends - 1.0:
            time.sleep(0.1)  # stop the meter while the player still streams: its CPU is read before it exits
        cpu = meter.stop()
        cpu["view_startup"] = view_startup
        cpu["gc_pauses"] = pauses.stop()
        cpu["decisions"] = client.stats["answered"] - answered_before  # answered while the meter ran
        worker_ms = (cpu["cpu_ms_per_s"] or {}).get("worker")
        if worker_ms is not None and cpu["decisions"]:
            cpu["worker_cpu_ms_per_decision"] = round(worker_ms * cpu["seconds"] / cpu["decisions"], 2)
        player.communicate(timeout=duration_s + 60)
        time.sleep(1.0)
        if view is not None:
            publisher_overlap = probe.overlap_ms(view[0].intervals)
            dashboard = stop_view_process(*view)
        pipeline.stop()
        client.close()
    finally:
        worker.stop()
        if player.poll() is None:
            player.kill()
    decisions = list(pipeline.state.decisions)[len(pipeline.state.decisions) // 10 :]  # skip the warm-up
    from_sample = np.array([d.latency_s for d in decisions])
    # the amplifier pushes a chunk when its last sample is due: a window ending mid-chunk leaves the outlet later
    last_sample = np.array([d.sequence - 1 for d in decisions])
    waits_in_outlet = ((last_sample // CHUNK + 1) * CHUNK - 1 - last_sample) / fs
    from_push = from_sample - waits_in_outlet

    def percentiles(values: np.ndarray) -> dict[str, float]:
        return {f"p{q}": round(float(np.percentile(values * 1000, q)), 2) for q in (50, 95, 99)}

    def part(name: str) -> dict[str, float]:
        return percentiles(np.array([getattr(d, name) for d in decisions if getattr(d, name) is not None]))

    # where the tail comes from: the slowest decisions' parts (medians), and how many of them were finished by a DSP
    # step that also ran the signal-quality evaluation (the base rate is that share among all decisions)
    parts = {"lsl_and_buffering": np.array([np.nan if d.acquisition_s is None else d.acquisition_s
                                            for d in decisions]) - waits_in_outlet,
             **{name: np.array([np.nan if getattr(d, field) is None else getattr(d, field) for d in decisions])
                for name, field in (("dsp", "dsp_s"), ("worker", "worker_s"), ("zeromq", "transport_s"),
                                    ("publication", "publication_s"))}}  # fmt: skip
    steps = probe.step_of(np.array([d.sequence for d in decisions]))
    checked = np.array([probe.steps[i][4] > 0 for i in steps])
    step_cpu = np.array([probe.steps[i][1] for i in steps])
    tail: dict[str, object] = {"all_decisions_quality_check_share": round(float(checked.mean()), 3)}
    for q in (95, 99):
        slow = from_push >= np.percentile(from_push, q)
        tail[f"above_p{q}"] = {
            "decisions": int(slow.sum()),
            "median_ms": {name: round(float(np.nanmedian(values[slow]) * 1000), 2) for name, values in parts.items()},
            "dsp_step_cpu_median_ms": round(float(np.median(step_cpu[slow])), 2),
            "quality_check_share": round(float(checked[slow].mean()), 3),
        }

    return {
        "channels": channels,
        "gui": dashboard,
        "fs": fs,
        "amplifier_chunk_samples": CHUNK,
        "decisions": len(pipeline.state.decisions),
        "expected_windows": int((duration_s * fs - 0.2 * fs) // (0.05 * fs) + 1),
        "dropped_samples": pipeline.engine.reader.dropped,
        "sample_to_decision_ms": percentiles(from_push),
        "sample_time_to_decision_ms": percentiles(from_sample),
        "breakdown_ms": {
            "lsl_and_buffering": percentiles(
                np.array([d.acquisition_s for d in decisions if d.acquisition_s is not None])
                - waits_in_outlet[[d.acquisition_s is not None for d in decisions]]
            ),
            "dsp": part("dsp_s"),
            "worker": part("worker_s"),
            "zeromq": part("transport_s"),
            "publication": part("publication_s"),
        },
        "tail": tail,
        "dsp_steps_ms": {**probe.summary(), "publisher_overlap": publisher_overlap,
                         "submit_to_wire": probe.handoff()},
        "client_stats": dict(client.stats),
        # replies that came before their window's muscle state (the window goes to the worker before the step's
        # features and fatigue update) and waited for it in the decisions thread
        "muscle_state_waits": {"decisions": getattr(pipeline, "muscle_waits", None),
                               "undecided": getattr(pipeline, "undecided", None),
                               "mean_ms": round(1000 * getattr(pipeline, "muscle_wait_s", 0.0)
                                                / max(1, getattr(pipeline, "muscle_waits", 0)), 2)},
        "cpu": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, nargs="+", default=[8, 64, 256])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--fs", type=float, default=2048.0)
    parser.add_argument("--gui", choices=("off", "on", "both", "process", "all"), default="off",
                        help="show the real dashboard in the monitor process while measuring (both: off, then on); "
                        "process: in a process of its own reading the core's shared memory; all: off, on, process")
    parser.add_argument("--view-niceness", type=int, nargs="+", metavar="N",
                        help="with --gui process/all: how much nicer than the core the view runs, each value in "
                        "turn (default: as the core starts its views, monitor.core.process.VIEW_NICENESS)")
    args = parser.parse_args()
    if args.duration <= 0 or any(c < 1 for c in args.channels):
        parser.error("--duration and --channels must be positive")
    if args.gui != "off":
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    guis: list[bool | str] = {"off": [False], "on": [True], "both": [False, True], "process": ["process"],
                              "all": [False, True, "process"]}[args.gui]  # fmt: skip
    nicenesses: list[int | None] = args.view_niceness or [None]
    with tempfile.TemporaryDirectory() as folder:
        runs = []
        for channels in args.channels:
            for gui in guis:
                for niceness in nicenesses if gui == "process" else [None]:
                    run = measure(channels, args.duration, args.fs, Path(folder), gui, niceness)
                    if gui == "process":
                        from monitor.core.process import VIEW_NICENESS

                        run["gui"]["view_niceness"] = VIEW_NICENESS if niceness is None else niceness
                    runs.append(run)
    emit("sample_to_decision_latency", {"runs": runs})


if __name__ == "__main__":
    main()
