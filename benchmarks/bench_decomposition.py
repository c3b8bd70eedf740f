"""Motor-unit decomposition (dsp.decomposition, dsp.decomposition_live) against a reference and against the truth.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.bench_decomposition --sections real live simulated

- wall and CPU seconds (process time: with OMP_NUM_THREADS=1 what a quiet core would take) of each decomposition;
- real: the 64-channel vastus lateralis file (32.5 s, 2048 Hz), decomposed offline as a whole; each of the 5
  reference units of the file (the amplifier maker's decomposition, columns 64-68) against the unit found that
  agrees best: rate of agreement (RoA = common / (common + only ours + only reference), +-0.5 ms after aligning
  the lag within +-50 ms), sensitivity, precision; wall time;
- live: calibrated on a segment (default 8-20 s) only, then the whole file streamed through the causal live
  decomposer in 32-sample chunks (16 ms, an LSL amplifier's chunk): RoA on the whole file and outside the
  calibration segment, processing time per chunk (median, p99) and the real-time factor; that random chunking finds
  the same discharges as one block;
- latency: the real file from 20 s on paced onto LSL in real time (the project's Amplifier, in a thread of this
  process, ``--chunk`` samples per push), the real MonitorPipeline and MainWindow (Qt offscreen, drawn at its 30 Hz
  timer) with the motor-unit panel open and calibrated on 8-20 s: for every discharge, the LSL clock when an inlet on
  ``<stream>-discharges`` (its own thread) received it minus the LSL time of the discharge's sample (p50/p95/p99),
  dropped samples and this process's CPU (amplifier + acquisition + DSP + decomposition + GUI);
- scaling: the live decomposer's time per 32-sample chunk at 64, 128, 256 channels (12 units, R = ceil(1000 / C),
  random filters: the cost depends only on the shapes);
- ceiling: how far a linear separation of the extended, whitened file can follow each reference unit at all. The
  separation vector of convolution kernel compensation (Holobar & Zazula 2007) computed from the reference's own
  discharges (the mean whitened sample at them, at the lag where that mean is largest), applied to the whole file:
  RoA with the k-means threshold, with the best fixed threshold, after peeling the other reference units' MUAP
  templates (spike-triggered averages, +-20 ms) off the signal, and re-estimated in each 4 s window; and for the
  discharges that vector misses, the cosine between their mean whitened sample and that of the discharges it finds,
  against the same cosine for random splits of the unit's own discharges (the same unit gives the null's values);
- simulated: grids 8x8 and 13x5 at a 20 % MVC hold; per unit found, sensitivity and precision against the true
  discharges of the simulated unit it matches; the share of active units found by size (the simulator's
  recruitment rank: size 1 = smallest, up to ~30).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from benchmarks.common import REPO, emit

HDEMG = REPO.parent / "shared" / "data" / "hdemg-vastus-lateralis" / "otb_testfile.mat"
FS = 2048.0
TOLERANCE = 1  # samples: +-0.5 ms at 2048 Hz
MAX_LAG = 100  # samples: +-49 ms, more than a unit's source lags its discharge (extension + MUAP)
SIZE_BINS = (1.0, 2.0, 4.0, 7.0, 40.0)


def load_reference_file() -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """(grid (N, 64) µV in the file's column order, the 5 reference discharge trains (sample indices), force %MVC)."""
    import scipy.io

    table = scipy.io.loadmat(HDEMG)["Data"][0, 0]
    return table[:, :64].astype(np.float64), [np.flatnonzero(table[:, c]) for c in range(64, 69)], table[:, 74]


def simulated_grid(
    layout: str, seconds: float, mvc_percent: float, seed: int
) -> tuple[np.ndarray, dict[int, np.ndarray], np.ndarray]:
    """(data (N, C) µV, true discharges per active unit (sample of the first sample at or after the discharge),
    unit sizes) of a simulated hold without fatigue."""
    from simulators.emg import EmgSimulator, SimulationConfig

    config = SimulationConfig(layout=layout, fs=FS, profile="hold", mvc_percent=mvc_percent, seed=seed,
                              record_spikes=True, fatigue_rate=0.0)  # fmt: skip
    simulator = EmgSimulator(config)
    data = simulator.generate(seconds).astype(np.float64)
    units = np.concatenate([block[0] for block in simulator.spike_log])
    times = np.concatenate([block[1] for block in simulator.spike_log])
    samples = np.ceil(times * FS - 1e-9).astype(np.int64)
    inside = samples < data.shape[0]
    truth = {int(u): samples[inside & (units == u)] for u in np.unique(units[inside])}
    return data, truth, simulator.pool.size


def score_against_truth(found: list[np.ndarray], truth: dict[int, np.ndarray]) -> list[dict[str, Any]]:
    """Each found unit against the true unit it agrees with best."""
    from dsp.decomposition import agreement

    rows = []
    for index, train in enumerate(found):
        scored = [(unit, agreement(train, true, TOLERANCE, MAX_LAG)) for unit, true in truth.items()]
        unit, best = max(scored, key=lambda pair: pair[1].rate_of_agreement)
        rows.append({"found": index, "true_unit": unit, "sensitivity": round(best.sensitivity, 4),
                     "precision": round(best.precision, 4), "roa": round(best.rate_of_agreement, 4),
                     "lag_samples": best.lag})  # fmt: skip
    return rows


def real(starts: int) -> dict[str, Any]:
    from dsp.decomposition import DecompositionSettings, decompose, match_to_reference

    grid, reference, _ = load_reference_file()
    started, cpu = time.perf_counter(), time.process_time()
    result = decompose(grid, FS, DecompositionSettings(starts=starts))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    found = [unit.discharges for unit in result.units]
    matches = match_to_reference(found, reference, TOLERANCE, MAX_LAG)
    return {
        "starts": starts, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "units": len(result.units),
        "sil": [round(unit.sil, 3) for unit in result.units],
        "rejected_below_sil": result.rejected_sil, "duplicates_removed": result.duplicates_removed,
        "reference": [_row(i, train, match) for i, (train, match) in enumerate(zip(reference, matches, strict=True))],
    }  # fmt: skip


def _row(index: int, train: np.ndarray, match: tuple[int, Any]) -> dict[str, Any]:
    unit, score = match
    return {"reference_unit": index, "discharges": int(len(train)), "unit": unit,
            "roa": round(score.rate_of_agreement, 4), "sensitivity": round(score.sensitivity, 4),
            "precision": round(score.precision, 4), "lag_samples": score.lag}  # fmt: skip


def stream(decomposition: Any, data: np.ndarray, chunks: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Discharges per unit from the live decomposer over ``data`` cut at ``chunks`` sizes, and seconds per chunk."""
    from dsp.decomposition_live import LiveDecomposer

    live = LiveDecomposer(decomposition)
    found: list[list[int]] = [[] for _ in range(live.n_units)]
    seconds = []
    position = 0
    for size in chunks:
        chunk = data[position : position + size]
        if len(chunk) == 0:
            break
        started = time.perf_counter()
        result = live.process(chunk, (position + np.arange(len(chunk))) / FS, position)
        seconds.append(time.perf_counter() - started)
        for unit, counter in zip(result.units.tolist(), result.counters.tolist(), strict=True):
            found[unit].append(counter)
        position += len(chunk)
    last = live.finish()
    for unit, counter in zip(last.units.tolist(), last.counters.tolist(), strict=True):
        found[unit].append(counter)
    return [np.asarray(train, dtype=np.int64) for train in found], np.asarray(seconds)


def live(starts: int, calibration: tuple[float, float], chunk: int) -> dict[str, Any]:
    from dsp.decomposition import DecompositionSettings, decompose, match_to_reference

    grid, reference, _ = load_reference_file()
    lo, hi = int(calibration[0] * FS), int(calibration[1] * FS)
    started, cpu = time.perf_counter(), time.process_time()
    result = decompose(grid[lo:hi], FS, DecompositionSettings(starts=starts))
    calibration_s, cpu = time.perf_counter() - started, time.process_time() - cpu
    sizes = np.full(grid.shape[0] // chunk + 1, chunk)
    found, seconds = stream(result, grid, sizes)
    random_sizes = np.random.default_rng(0).integers(1, 400, grid.shape[0])
    found_random, _ = stream(result, grid, random_sizes)
    chunk_invariant = all(np.array_equal(a, b) for a, b in zip(found, found_random, strict=True))
    whole = match_to_reference(found, reference, TOLERANCE, MAX_LAG)
    outside = [np.concatenate([train[train < lo], train[train >= hi]]) for train in found]
    reference_outside = [np.concatenate([train[train < lo], train[train >= hi]]) for train in reference]
    outside_matches = match_to_reference(outside, reference_outside, TOLERANCE, MAX_LAG)
    return {
        "calibration_s": list(calibration), "starts": starts, "calibration_wall_s": round(calibration_s, 1),
        "calibration_cpu_s": round(cpu, 1),
        "units": len(result.units), "chunk_samples": chunk, "chunk_invariant": chunk_invariant,
        "chunk_ms_median": round(float(np.median(seconds)) * 1e3, 3),
        "chunk_ms_p99": round(float(np.percentile(seconds, 99)) * 1e3, 3),
        "real_time_factor": round(grid.shape[0] / FS / float(seconds.sum()), 1),
        "detection_delay_ms": round(result.settings.peak_half_window_s * 1e3, 1),
        "whole_file": [_row(i, t, m) for i, (t, m) in enumerate(zip(reference, whole, strict=True))],
        "outside_calibration": [_row(i, t, m) for i, (t, m) in enumerate(zip(reference_outside, outside_matches,
                                                                             strict=True))],
    }  # fmt: skip


class _FileSource:
    """Rows of an array as an Amplifier source (wrapping round at the end)."""

    def __init__(self, data: np.ndarray) -> None:
        from simulators.electrodes import ElectrodeLayout

        self.fs = FS
        self.layout = ElectrodeLayout.from_name("grid13x5")
        self.n_channels = data.shape[1]
        self.channel_labels = list(self.layout.labels)
        self._data = data.astype(np.float32)
        self._position = 0

    def read(self, n: int) -> np.ndarray:
        rows = (self._position + np.arange(n)) % self._data.shape[0]
        self._position += n
        return self._data[rows]


def _amplifier_process(source_id: str, chunk: int, stop: Any) -> None:
    """The real file from 20 s on paced onto LSL, in a process of its own as an amplifier's driver would be (in the
    monitor's process its thread waits for the GIL behind the GUI, and its pushes come late)."""
    from monitor.lslenv import use_lsl_config
    from simulators.amplifier import Amplifier

    use_lsl_config()
    grid, _, _ = load_reference_file()
    Amplifier(_FileSource(grid[int(20 * FS) :]), name="bench-decomposition", source_id=source_id,
              chunk_samples=chunk).run(stop_event=stop)  # fmt: skip


# the window of `monitor --decompose` in a process of its own (as the core starts it): the core's publisher writes the
# motor units into its status document, the view draws them in the motor-unit panel (read-only: no control channel)
VIEW_CHILD = """
import json, signal, sys, time
from PyQt6 import QtCore, QtWidgets
from monitor.core.shared_state import SharedStateReader
from monitor.gui.main_window import MainWindow
from monitor.view_client import RemotePipeline
app = QtWidgets.QApplication(["bench-decomposition-view"])
remote = RemotePipeline(SharedStateReader(sys.argv[1]), None).start()
deadline = time.monotonic() + 30.0
while remote.decomposition is None and time.monotonic() < deadline:  # the core's units, not a decomposition here
    time.sleep(0.05)
window = MainWindow(remote)
window.resize(1600, 1000)
window.show()
window.toggle_decomposition()
assert type(window.decomposition.service).__name__ == "RemoteDecomposition"
loop = QtCore.QEventLoop()
signal.signal(signal.SIGTERM, lambda *_: loop.quit())
print("showing", flush=True)
started, ticks = time.perf_counter(), window.ticks
loop.exec()
print(json.dumps({"frames_per_s": round((window.ticks - ticks) / (time.perf_counter() - started), 1),
                  "panel_points": len(window.decomposition.raster_points.data)}), flush=True)
"""


def latency(
    seconds: float,
    chunk: int,
    starts: int,
    gui: bool = True,
    amplifier_process: bool = True,
    settle_s: float = 0.0,
    gc_freeze: bool = False,
    gui_process: bool = False,
) -> dict[str, Any]:
    import gc
    import multiprocessing
    import threading
    import uuid

    import psutil
    import pylsl
    from PyQt6 import QtWidgets

    from dsp.decomposition import DecompositionSettings, decompose
    from monitor.acquisition import resolve_stream
    from monitor.gui.main_window import MainWindow
    from monitor.lslenv import use_lsl_config
    from monitor.pipeline import MonitorPipeline
    from simulators.amplifier import Amplifier

    use_lsl_config()
    grid, _, _ = load_reference_file()
    calibration = decompose(grid[int(8 * FS) : int(20 * FS)], FS, DecompositionSettings(starts=starts))
    source_id = f"bench-decomposition-{uuid.uuid4().hex[:8]}"
    if amplifier_process:
        context = multiprocessing.get_context("spawn")
        stop = context.Event()
        amplifier_runner = context.Process(target=_amplifier_process, args=(source_id, chunk, stop), daemon=True)
        amplifier_runner.start()
    else:
        amplifier = Amplifier(_FileSource(grid[int(20 * FS) :]), name="bench-decomposition", source_id=source_id,
                              chunk_samples=chunk)  # fmt: skip
        stop = threading.Event()
        threading.Thread(target=amplifier.run, kwargs={"stop_event": stop}, daemon=True).start()
    pipeline = MonitorPipeline(resolve_stream(source_id=source_id, timeout_s=30.0), publish=False)
    pipeline.start()
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["bench"])
    view = None
    if gui_process:  # `monitor --decompose` with its window: the core decomposes, the view process draws
        import os
        import subprocess
        import sys

        from monitor.core.process import lower_priority
        from monitor.core.publisher import StatePublisher
        from monitor.decomposition_service import describe, start_live_decomposition

        gui = False
        service = start_live_decomposition(pipeline)
        publisher = StatePublisher(pipeline, extra_status=lambda: {"decomposition": describe(service)})
        publisher.start()
        platform = os.environ.get("QT_QPA_PLATFORM", "offscreen")
        view = subprocess.Popen([sys.executable, "-c", VIEW_CHILD, publisher.name_in_shm], stdout=subprocess.PIPE,
                                text=True, env=dict(os.environ, QT_QPA_PLATFORM=platform))  # fmt: skip
        lower_priority(view.pid)  # as the core starts its views
        assert view.stdout is not None and view.stdout.readline().strip() == "showing"
    elif gui:
        window = MainWindow(pipeline)
        window.resize(1600, 1000)
        window.show()
        window.toggle_decomposition()
        service = window.decomposition.service
    else:  # what `monitor --decompose --no-view` runs in the core: the same service and outlet, no drawing
        from monitor.decomposition_service import start_live_decomposition

        service = start_live_decomposition(pipeline)
    found = pylsl.resolve_byprop("source_id", f"{source_id}-discharges", 1, 10.0)
    inlet = pylsl.StreamInlet(found[0], max_buflen=60)
    inlet.open_stream(timeout=10.0)
    delays: list[float] = []
    received_at: list[float] = []
    receiving = threading.Event()
    receiving.set()

    def receive() -> None:
        while receiving.is_set():
            sample, stamp = inlet.pull_sample(timeout=0.2)
            if sample is not None:
                now = pylsl.local_clock()
                delays.append(now - stamp)
                received_at.append(now)

    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    settle_until = time.monotonic() + settle_s  # streaming (and drawing) before the unit set comes, as in use
    while time.monotonic() < settle_until:
        app.processEvents()
        time.sleep(0.002)
    if gc_freeze:  # everything made so far (Qt, pyqtgraph, modules) out of the collector's full passes (no
        gc.freeze()  # gc.collect() first: a full pass here would itself hold up the DSP thread for 100-300 ms)
    service.install(calibration, seconds=12.0)
    clock_offset = pylsl.local_clock() - time.perf_counter()  # the history stamps its rows with perf_counter
    collections: list[tuple[float, int, float]] = []  # (LSL time at the end, generation, ms) of the slow ones
    collection_started = [0.0]

    def time_collections(phase: str, info: dict[str, int]) -> None:
        # a full collection holds the interpreter: the DSP thread waits, its discharges come late
        if phase == "start":
            collection_started[0] = time.perf_counter()
        elif info["generation"] == 2 or time.perf_counter() - collection_started[0] > 0.02:
            collections.append((pylsl.local_clock(), info["generation"], time.perf_counter() - collection_started[0]))

    gc.callbacks.append(time_collections)
    process = psutil.Process()
    cpu_before, wall_before = process.cpu_times(), time.monotonic()
    dropped_before = pipeline.engine.stats.dropped_samples
    measured_from = pylsl.local_clock()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.002)
    cpu_after, wall = process.cpu_times(), time.monotonic() - wall_before
    gc.callbacks.remove(time_collections)
    receiving.clear()
    receiver.join(timeout=2)
    frames = window.ticks if gui else 0
    if gui:
        window.close()
    view_figures: dict[str, Any] = {}
    if view is not None:
        import json
        import signal

        view.send_signal(signal.SIGTERM)
        out, _ = view.communicate(timeout=60)
        publisher.stop()
        view_figures = json.loads(out.strip().splitlines()[-1])
    pipeline.stop()
    stop.set()
    if amplifier_process:
        amplifier_runner.join(timeout=5)
    values = np.asarray(delays) * 1e3
    # discharge sample -> pushed to the outlet (amplifier push, acquisition, DSP, the 10 ms decision): the rest of
    # the latency is LSL's transport and the inlet's thread
    published = np.array([(row[5] + clock_offset - row[3]) * 1e3 for row in service.history])
    # the first second after the unit set is installed also shows the monitor's start (the DSP thread catching up
    # on samples that waited while the pipeline and the window came up): steady state is what a user sees
    settled = values[np.asarray(received_at) > measured_from + 1.0]

    def percentiles(name: str, data: np.ndarray) -> dict[str, float | None]:
        return {f"{name}_p{q}": round(float(np.percentile(data, q)), 1) if data.size else None for q in (50, 95, 99)}

    cpu = (cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system) / wall * 100.0
    return {
        "seconds": seconds, "settle_s": settle_s, "gui": "process" if gui_process else gui,
        "view_process": view_figures, "amplifier_process": amplifier_process,
        "amplifier_chunk_samples": chunk,
        "units": len(calibration.units), **percentiles("sample_to_outlet_push_ms", published),
        "discharges_received": int(values.size), "published": service.published,
        "latency_ms_p50": round(float(np.percentile(values, 50)), 1) if values.size else None,
        "latency_ms_p95": round(float(np.percentile(values, 95)), 1) if values.size else None,
        "latency_ms_p99": round(float(np.percentile(values, 99)), 1) if values.size else None,
        "latency_ms_max": round(float(values.max()), 1) if values.size else None,
        **percentiles("latency_after_first_second_ms", settled),
        "dropped_samples": int(pipeline.engine.stats.dropped_samples - dropped_before),
        "process_cpu_percent_of_one_core": round(cpu, 1), "gui_frames": frames,
        "gc_freeze": gc_freeze,
        "slow_or_full_collections_at_s_generation_ms": [
            (round(at - measured_from, 2), generation, round(spent * 1e3, 1)) for at, generation, spent in collections
        ],
        # when the late ones arrived (s after the unit set was installed): one stall, or spread out
        "over_100_ms_received_at_s": [round(at - measured_from, 2) for at, delay in zip(received_at, delays,
                                                                                       strict=True) if delay > 0.1],
    }  # fmt: skip


def scaling(channel_counts: list[int], units: int = 12, chunk: int = 32, repeats: int = 400) -> dict[str, Any]:
    from dsp.decomposition import Decomposition, DecompositionSettings, MotorUnit, bandpass_sos
    from dsp.decomposition_live import LiveDecomposer

    rng = np.random.default_rng(0)
    out = {}
    for channels in channel_counts:
        settings = DecompositionSettings()
        extension = settings.extension_for(channels, 10**9)
        made = [MotorUnit(rng.standard_normal((channels, extension)) * 1e-3, 0.0, 1.0, 0.5, 0.95, np.zeros(0, int))
                for _ in range(units)]  # fmt: skip
        live = LiveDecomposer(Decomposition(FS, channels, extension, settings, made, bandpass_sos(FS, settings)))
        data = rng.standard_normal((chunk * repeats, channels)).astype(np.float32) * 50.0
        times = []
        for index in range(repeats):
            started = time.perf_counter()
            live.process(data[index * chunk : (index + 1) * chunk], np.zeros(chunk), index * chunk)
            times.append(time.perf_counter() - started)
        per_second = float(np.median(times)) * FS / chunk
        out[str(channels)] = {"extension": extension, "chunk_ms_median": round(float(np.median(times)) * 1e3, 3),
                              "chunk_ms_p99": round(float(np.percentile(times, 99)) * 1e3, 3),
                              "cpu_share_of_one_core": round(per_second, 3)}  # fmt: skip
    return out


def _oracle_vector(whitened: np.ndarray, train: np.ndarray, max_lag: int) -> tuple[np.ndarray, int]:
    """CKC's separation vector for a known train: the mean whitened sample at the discharges, at the lag (samples
    after the discharge) where that mean is largest (the unit's extended MUAP best aligned), normalised."""
    best, best_norm, best_lag = None, -1.0, 0
    for lag in range(-max_lag, max_lag + 1):
        at = train + lag
        at = at[(at >= 0) & (at < whitened.shape[1])]
        vector = whitened[:, at].mean(axis=1, dtype=np.float64)
        if np.linalg.norm(vector) > best_norm:
            best, best_norm, best_lag = vector, float(np.linalg.norm(vector)), lag
    return best / best_norm, best_lag


def _cosine(whitened: np.ndarray, first: np.ndarray, second: np.ndarray) -> float:
    """Cosine between the mean whitened samples at two sets of instants."""
    a, b = whitened[:, first].mean(axis=1), whitened[:, second].mean(axis=1)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def _peel(filtered: np.ndarray, trains: list[np.ndarray], half: int) -> np.ndarray:
    """``filtered`` (N, C) with each train's MUAP template (its spike-triggered average over +-half) subtracted at
    each of its discharges."""
    out = filtered.astype(np.float64, copy=True)
    offsets = np.arange(-half, half + 1)
    for train in trains:
        train = train[(train >= half) & (train < out.shape[0] - half)]
        template = out[train[:, None] + offsets].mean(axis=0)  # (2 half + 1, C)
        for discharge in train:
            out[discharge - half : discharge + half + 1] -= template
    return out


def ceiling(window_s: float = 4.0, seed: int = 0) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    from dsp import decomposition as dec

    grid, reference, _ = load_reference_file()
    settings = dec.DecompositionSettings()
    detector = dec._Detector(FS, settings)
    filtered = dec.bandpass(dec.bandpass_sos(FS, settings), grid)
    extension = settings.extension_for(grid.shape[1], grid.shape[0])
    rng = np.random.default_rng(seed)
    rows = []
    with threadpool_limits(1):
        whitened, _, _ = dec._whiten(dec.extend(filtered, extension))
        for index, train in enumerate(reference):
            vector, lag = _oracle_vector(whitened, train, MAX_LAG // 2)
            source = vector.astype(np.float32) @ whitened
            found, scale, threshold, sil = detector.detect(source)
            kmeans = dec.agreement(found, train, TOLERANCE, MAX_LAG)
            normalised = source * np.abs(source) / scale
            candidates = dec.peak_candidates(normalised, detector.half_window)
            by_threshold = {
                float(t): dec.agreement(candidates[normalised[candidates] > t], train, TOLERANCE, MAX_LAG)
                for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
            }
            best_threshold = max(by_threshold, key=lambda t: by_threshold[t].rate_of_agreement)
            # the reference discharges the vector misses: no found discharge within tolerance after the lag
            shifted = np.sort(found + kmeans.lag)
            missed = np.array([np.abs(shifted - d).min() > TOLERANCE if shifted.size else True for d in train])
            at = np.clip(train + lag, 0, whitened.shape[1] - 1)
            split_null = []  # nothing to split when the vector misses none
            for _ in range(20 if 0 < missed.sum() < train.size else 0):
                order = rng.permutation(at.size)
                split_null.append(_cosine(whitened, at[order[: missed.sum()]], at[order[missed.sum() :]]))
            apart = _cosine(whitened, at[missed], at[~missed]) if 0 < missed.sum() < train.size else None
            threshold_roa = by_threshold[best_threshold].rate_of_agreement
            # time-local vectors: re-estimated from the reference's discharges in each window
            local = []
            edges = np.arange(0, whitened.shape[1] + int(window_s * FS), int(window_s * FS))
            for lo, hi in zip(edges[:-1], edges[1:], strict=True):
                inside = at[(at >= lo) & (at < hi)]
                if inside.size < 3:
                    continue
                window_vector = whitened[:, inside].mean(axis=1)
                local.append(detector.detect(window_vector.astype(np.float32) @ whitened[:, lo:hi])[0] + lo)
            local_score = dec.agreement(np.concatenate(local), train, TOLERANCE, MAX_LAG)
            rows.append({
                "reference_unit": index, "discharges": int(train.size), "vector_lag_samples": lag,
                "oracle_sil": round(sil, 3), "oracle_roa": round(kmeans.rate_of_agreement, 4),
                "oracle_sensitivity": round(kmeans.sensitivity, 4), "oracle_precision": round(kmeans.precision, 4),
                "best_threshold": best_threshold, "best_threshold_roa": round(threshold_roa, 4),
                "missed": int(missed.sum()), "cosine_missed_vs_found": None if apart is None else round(apart, 3),
                "cosine_random_split_p5_p50_p95": [round(float(v), 3) for v in np.percentile(split_null, [5, 50, 95])]
                if split_null else None,
                f"local_{window_s:g}s_roa": round(local_score.rate_of_agreement, 4),
            })  # fmt: skip
        del whitened
        for row, train in zip(rows, reference, strict=True):  # peel-off: the other reference units removed
            others = [other for other in reference if other is not train]
            peeled = _peel(filtered, others, int(0.020 * FS)).astype(np.float32)
            whitened, _, _ = dec._whiten(dec.extend(peeled, extension))
            vector, _ = _oracle_vector(whitened, train, MAX_LAG // 2)
            found = detector.detect(vector.astype(np.float32) @ whitened)[0]
            row["peeled_roa"] = round(dec.agreement(found, train, TOLERANCE, MAX_LAG).rate_of_agreement, 4)
            del whitened
    return {"extension": extension, "window_s": window_s, "reference": rows}


def simulated(layouts: list[str], seeds: int, seconds: float, mvc: float, starts: int) -> dict[str, Any]:
    from dsp.decomposition import DecompositionSettings, decompose

    out: dict[str, Any] = {"seconds": seconds, "mvc_percent": mvc, "starts": starts}
    for layout in layouts:
        units, found_sizes, active_sizes, walls = [], [], [], []
        for seed in range(seeds):
            data, truth, size = simulated_grid(layout, seconds, mvc, seed)
            started = time.perf_counter()
            result = decompose(data, FS, DecompositionSettings(starts=starts))
            walls.append(time.perf_counter() - started)
            rows = score_against_truth([unit.discharges for unit in result.units], truth)
            units += [{**row, "seed": seed, "size": round(float(size[row["true_unit"]]), 2)} for row in rows]
            matched = {row["true_unit"] for row in rows if row["sensitivity"] >= 0.9 and row["precision"] >= 0.9}
            active_sizes += [float(size[unit]) for unit in truth]
            found_sizes += [float(size[unit]) for unit in matched]
        sensitivity = np.array([row["sensitivity"] for row in units])
        precision = np.array([row["precision"] for row in units])
        bins = []
        for lo, hi in zip(SIZE_BINS[:-1], SIZE_BINS[1:], strict=True):
            active = sum(lo <= s < hi for s in active_sizes)
            got = sum(lo <= s < hi for s in found_sizes)
            bins.append({"size": f"{lo:g}-{hi:g}", "active": active, "found": got,
                         "share": round(got / active, 3) if active else None})  # fmt: skip
        out[layout] = {
            "units_found": len(units),
            "active_units": len(active_sizes),
            "sensitivity_min": round(float(sensitivity.min()), 4) if units else None,
            "sensitivity_median": round(float(np.median(sensitivity)), 4) if units else None,
            "precision_min": round(float(precision.min()), 4) if units else None,
            "precision_median": round(float(np.median(precision)), 4) if units else None,
            "units_at_90_90": int(((sensitivity >= 0.9) & (precision >= 0.9)).sum()),
            "share_found_by_size": bins,
            "decompose_wall_s": [round(w, 1) for w in walls],
            "per_unit": units,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", nargs="+", default=["real", "live", "simulated"],
                        choices=("real", "live", "simulated", "latency", "scaling", "ceiling"))  # fmt: skip
    parser.add_argument("--latency-seconds", type=float, default=10.0, help="measured span of the latency section")
    parser.add_argument("--amplifier-chunk", type=int, default=32, help="samples per LSL push in the latency run")
    parser.add_argument("--no-gui", action="store_true", help="latency section without the window (service only)")
    parser.add_argument("--gui-process", action="store_true",
                        help="latency section: the core decomposes (monitor --decompose), the window and its "
                        "motor-unit panel draw in a process of their own from the core's status document")  # fmt: skip
    parser.add_argument(
        "--amplifier-thread",
        action="store_true",
        help="latency section: the amplifier in a thread of this process, not a process of its own",
    )
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=0.0,
        help="latency section: seconds the pipeline streams before the unit set is installed",
    )
    parser.add_argument(
        "--gc-freeze", action="store_true", help="latency section: gc.freeze() before the unit set is installed"
    )
    parser.add_argument("--starts", type=int, default=64, help="fixed-point starts (default 64)")
    parser.add_argument("--calibration", type=float, nargs=2, default=(8.0, 20.0), help="live calibration (s)")
    parser.add_argument("--chunk", type=int, default=32, help="live chunk in samples (default 32)")
    parser.add_argument("--layouts", nargs="+", default=["grid8x8", "grid13x5"])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0, help="simulated hold length")
    parser.add_argument("--mvc", type=float, default=20.0)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    if "real" in args.sections:
        results["real"] = real(args.starts)
    if "live" in args.sections:
        results["live"] = live(args.starts // 2, tuple(args.calibration), args.chunk)
    if "latency" in args.sections:
        results["latency"] = latency(
            args.latency_seconds,
            args.amplifier_chunk,
            args.starts // 2,
            not args.no_gui,
            not args.amplifier_thread,
            args.settle_seconds,
            args.gc_freeze,
            args.gui_process,
        )
    if "scaling" in args.sections:
        results["scaling"] = scaling([64, 128, 256])
    if "ceiling" in args.sections:
        results["ceiling"] = ceiling()
    if "simulated" in args.sections:
        results["simulated"] = simulated(args.layouts, args.seeds, args.seconds, args.mvc, args.starts // 2)
    emit("decomposition", results)


if __name__ == "__main__":
    main()
