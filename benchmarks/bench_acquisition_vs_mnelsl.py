"""CPU time to acquire and filter one 64 ch x 2048 Hz LSL stream vs MNE-LSL's StreamLSL, same stream, one run.

    .venv/bin/python -m benchmarks.bench_acquisition_vs_mnelsl --seconds 30
    .venv/bin/python -m benchmarks.bench_acquisition_vs_mnelsl --seconds 20 --repeats 3 --baseline f6ef55c  # A/B
    .venv/bin/python -m benchmarks.bench_acquisition_vs_mnelsl --engine-latency 15 --repeats 3  # per hop vs chunk

A player process pushes 64 channels at 2048 Hz (32-sample chunks, paced on the LSL clock). Consumers, each in
its own process and all on the same stream at the same time, acquire it and filter it causally for ``--seconds``;
each reports its own process CPU time (user + system, all threads, from connection to the end; imports and
start-up excluded) and the samples it received:

- ours: the monitor's ``monitor.acquisition.Acquisition`` thread (LSL inlet -> ``dsp.RingBuffer``, woken per
  chunk, for latency) and a loop that reads new samples as the DSP engine's thread does (``DspEngine._wake_after``:
  woken by the write that brings the next 50 ms hop's last sample, as soon as a window can end; the filtered trace
  advances at 20 Hz) and runs ``dsp.filters`` on them; ``ours_reader_per_chunk``: the reader woken by every write
  (the engine before it waited per hop); ``ours_poll_50ms`` reads every 50 ms, the cadence of the MNE-LSL reader
  below; ``ours_acquisition_only``: the acquisition thread with nothing reading (what acquiring alone costs);
  with ``--baseline REV``, ``baseline_*``: the same consumers on the code of commit REV (``git archive`` into a
  temporary folder), the reader as the engine ran at REV (per chunk), in the same run for an A/B;
  ``plain_inlet_50ms_with_our_filters``: a bare pylsl inlet pulled every 50 ms and ``dsp.filters`` (what our
  figure would be without the acquisition thread's per-chunk wake-ups);
  ``one_thread_per_chunk``: a bare pylsl inlet pulled per chunk (woken by its first sample, as the acquisition
  thread is) and filtered in that same thread: what the per-chunk wake-up costs when one thread both acquires and
  filters instead of the acquisition thread waking a second (DSP) thread for every chunk;
- mne-lsl: ``StreamLSL(bufsize=5).connect()`` with the same filters (``filter(20, 450)`` with a 4th-order
  Butterworth in SOS form, and for the second phase ``notch_filter`` at 50..400 Hz), read every 50 ms through
  ``n_new_samples`` / ``get_data`` -- with its default ``acquisition_delay`` (1 ms) and with 50 ms (our cadence).

Two phases: band-pass only (identical filter design on both sides) and band-pass + mains notches (each side's
own notch design: ours one biquad per harmonic, MNE-LSL's an IIR band-stop). MNE-LSL runs in the peers venv
(made on first use, see bench_features_vs_libemg.py). LSL stays on this machine (benchmarks.common sets
LSLAPICFG, which every subprocess inherits).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.bench_features_vs_libemg import ensure_peers_venv
from benchmarks.common import REPO, emit

FS = 2048.0
N_CHANNELS = 64

PLAYER = r"""
import sys, time
import numpy as np
import pylsl
source_id, fs, n_channels, seconds = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
info = pylsl.StreamInfo("bench-emg", "EMG", n_channels, fs, "float32", source_id)
outlet = pylsl.StreamOutlet(info, 32)
rng = np.random.default_rng(0)
noise = (rng.standard_normal((int(fs), n_channels)) * 50).astype(np.float32)
noise += (30 * np.sin(2 * np.pi * 50 * np.arange(int(fs)) / fs)).astype(np.float32)[:, None]
deadline = time.time() + 60
while not outlet.have_consumers() and time.time() < deadline:
    time.sleep(0.05)
start, sent, chunk = pylsl.local_clock(), 0, 32
while sent < seconds * fs:
    due = int((pylsl.local_clock() - start) * fs)
    while sent + chunk <= due:
        rows = np.arange(sent, sent + chunk) % len(noise)
        outlet.push_chunk(noise[rows])
        sent += chunk
    time.sleep(0.004)
print(sent, flush=True)
"""

OURS = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
source_id, seconds, notch, mode = sys.argv[2], float(sys.argv[3]), sys.argv[4] == "notch", sys.argv[5]
from dsp.filters import FilterChain, bandpass, default_chain
from dsp.ringbuffer import RingReader
from monitor.acquisition import Acquisition, resolve_stream
acquisition = Acquisition(resolve_stream(source_id=source_id, timeout_s=30))
fs, n = acquisition.stream.fs, acquisition.stream.n_channels
chain = default_chain(fs, n, mains_hz=50.0) if notch else FilterChain([bandpass(fs, 20.0, 450.0, n)])
reader = RingReader(acquisition.buffer, 0)
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
acquisition.start()
started_cpu, started, samples = cpu(), time.monotonic(), 0
hop = int(round(fs * 0.05))  # the engine's 50 ms hop: a window can only end on one of these samples
while time.monotonic() - started < seconds:
    if mode == "poll50":
        time.sleep(0.05)
        block = reader.read()
    elif mode == "none":  # the acquisition thread alone: nothing reads or filters
        time.sleep(0.5)
        samples = acquisition.buffer.total_written
        continue
    elif mode == "hop":  # the engine's rule: woken once the chunk holding the next hop's last sample is in
        acquisition.buffer.wait_for_data((reader.next_counter // hop + 1) * hop - 1, hop / fs + 0.05)
        block = reader.read(max_samples=int(fs))
    else:  # "chunk": woken by every write
        block = reader.read(max_samples=int(fs), timeout_s=0.05)
    if len(block.timestamps):
        chain.process(block.data)
        samples += len(block.timestamps)
used = cpu() - started_cpu
acquisition.stop(); acquisition.join(2)
print(json.dumps({"cpu_s": used, "samples": samples, "wall_s": time.monotonic() - started}), flush=True)
"""

# A bare pylsl inlet on the player's stream with our filters and a CPU clock: what the two consumers below share
BARE_INLET = r"""
import json, resource, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
source_id, seconds, notch = sys.argv[2], float(sys.argv[3]), sys.argv[4] == "notch"
import pylsl
from dsp.filters import FilterChain, bandpass, default_chain
info = pylsl.resolve_byprop("source_id", source_id, minimum=1, timeout=30)[0]
inlet = pylsl.StreamInlet(info, max_buflen=10, processing_flags=pylsl.proc_clocksync | pylsl.proc_monotonize)
fs, n = info.nominal_srate(), info.channel_count()
chain = default_chain(fs, n, mains_hz=50.0) if notch else FilterChain([bandpass(fs, 20.0, 450.0, n)])
buffer = np.zeros((int(fs), n), dtype=np.float32)
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
inlet.open_stream(timeout=30)
"""

# The same work without the monitor's acquisition thread: a bare pylsl inlet pulled every 50 ms into a
# preallocated array, then dsp.filters. Shows how much of our figure is the Acquisition thread's own cost.
PLAIN_INLET = BARE_INLET + r"""
started_cpu, started, samples = cpu(), time.monotonic(), 0
while time.monotonic() - started < seconds:
    time.sleep(0.05)
    _, timestamps = inlet.pull_chunk(timeout=0.0, max_samples=len(buffer), dest_obj=buffer)
    if timestamps:
        chain.process(buffer[: len(timestamps)])
        samples += len(timestamps)
used = cpu() - started_cpu
print(json.dumps({"cpu_s": used, "samples": samples, "wall_s": time.monotonic() - started}), flush=True)
"""

# Per-chunk wake-ups as the monitor's latency needs them, in one thread: pull as soon as a chunk starts arriving
# (min_samples=1, as monitor.acquisition does), filter it at once. The design the split between the acquisition
# and DSP threads rules out; measured to show what that split costs.
ONE_THREAD = BARE_INLET + r"""
started_cpu, started, samples, wakes = cpu(), time.monotonic(), 0, 0
while time.monotonic() - started < seconds:
    _, timestamps = inlet.pull_chunk(timeout=0.05, max_samples=len(buffer), dest_obj=buffer, min_samples=1)
    if len(timestamps):
        chain.process(buffer[: len(timestamps)])
        samples += len(timestamps)
        wakes += 1
used = cpu() - started_cpu
print(json.dumps({"cpu_s": used, "samples": samples, "wall_s": time.monotonic() - started,
                  "wakeups_per_s": round(wakes / (time.monotonic() - started), 1)}), flush=True)
"""

MNE_LSL = r"""
import json, resource, sys, time
import numpy as np
source_id, seconds, notch, delay = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "notch", float(sys.argv[4])
import mne
mne.set_log_level("ERROR")
from mne_lsl.stream import StreamLSL
stream = StreamLSL(bufsize=5.0, source_id=source_id).connect(acquisition_delay=delay, timeout=30)
stream.filter(20.0, 450.0, iir_params=dict(order=4, ftype="butter", output="sos"))
if notch:
    for harmonic in range(50, 451, 50):
        stream.notch_filter(float(harmonic))
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
started_cpu, started, samples = cpu(), time.monotonic(), 0
while time.monotonic() - started < seconds:
    time.sleep(0.05)
    new = stream.n_new_samples
    if new:
        data, timestamps = stream.get_data(winsize=min(new, stream.n_buffer) / stream.info["sfreq"])
        samples += new
used = cpu() - started_cpu
stream.disconnect()
print(json.dumps({"cpu_s": used, "samples": samples, "wall_s": time.monotonic() - started}), flush=True)
"""


def engine_latency(seconds: float, wake_per_chunk: bool) -> dict[str, object]:
    """What waking the DSP thread per hop instead of per chunk costs a window: in this process, no LSL, a paced
    writer puts 32-sample chunks of 64 ch x 2048 Hz into a ring buffer as the acquisition thread does; the time from
    the write of the chunk that holds a window's last sample to the engine's subscriber call (filters, windows,
    features, quality, fatigue: the whole engine), and the process's CPU (the writer's share included)."""
    import numpy as np

    from dsp.engine import DspEngine, EngineSettings
    from dsp.ringbuffer import RingBuffer

    chunk = 32
    buffer = RingBuffer(int(FS * 30), N_CHANNELS)
    engine = DspEngine(buffer, FS, EngineSettings(mains_hz=50.0), wake_per_chunk=wake_per_chunk)
    written_at: dict[int, float] = {}
    latencies: list[float] = []

    def on_windows(results: list) -> None:
        now = time.perf_counter()
        latencies.extend(now - written_at[(r.window.end_counter - 1) // chunk] for r in results)

    engine.subscribe(on_windows)
    noise = (np.random.default_rng(0).standard_normal((int(FS), N_CHANNELS)) * 50).astype(np.float32)
    engine.start()
    started, cpu_started, sent = time.perf_counter(), time.process_time(), 0
    while sent < seconds * FS:
        due = int((time.perf_counter() - started) * FS)
        while sent + chunk <= due:
            written_at[sent // chunk] = time.perf_counter()
            buffer.write(noise[np.arange(sent, sent + chunk) % len(noise)], np.arange(sent, sent + chunk) / FS)
            sent += chunk
        time.sleep(0.004)
    time.sleep(0.2)
    engine.stop()
    engine.join(2.0)
    cpu = time.process_time() - cpu_started
    settled = np.array(latencies[20:]) * 1000  # after the first second (filters and caches warming up)
    return {
        "wake": "per chunk" if wake_per_chunk else "per hop",
        "windows": len(latencies),
        "chunk_to_window_p50_ms": round(float(np.percentile(settled, 50)), 2),
        "chunk_to_window_p99_ms": round(float(np.percentile(settled, 99)), 2),
        "process_cpu_ms_per_signal_s": round(1000 * cpu / (sent / FS), 1),
    }


def run_phase(
    peers_python: str, seconds: float, phase: str, baseline: Path | None, only: list[str] | None
) -> dict[str, object]:
    source_id = f"bench-acq-{uuid.uuid4().hex[:8]}"
    player = subprocess.Popen(
        [sys.executable, "-c", PLAYER, source_id, str(FS), str(N_CHANNELS), str(seconds + 20)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    ours = [sys.executable, "-c", OURS, str(REPO), source_id, str(seconds), phase]
    consumers = {
        "ours": [*ours, "hop"],
        "ours_reader_per_chunk": [*ours, "chunk"],
        "ours_poll_50ms": [*ours, "poll50"],
        "ours_acquisition_only": [*ours, "none"],
        "plain_inlet_50ms_with_our_filters": [sys.executable, "-c", PLAIN_INLET, str(REPO), source_id, str(seconds),
                                              phase],  # fmt: skip
        "one_thread_per_chunk": [sys.executable, "-c", ONE_THREAD, str(REPO), source_id, str(seconds), phase],
        "mne_lsl_default_delay_1ms": [peers_python, "-c", MNE_LSL, source_id, str(seconds), phase, "0.001"],
        "mne_lsl_delay_50ms": [peers_python, "-c", MNE_LSL, source_id, str(seconds), phase, "0.05"],
    }
    if baseline is not None:
        before = [sys.executable, "-c", OURS, str(baseline), source_id, str(seconds), phase]
        consumers["baseline_ours"] = [*before, "chunk"]
        consumers["baseline_ours_poll_50ms"] = [*before, "poll50"]
    if only:
        consumers = {name: command for name, command in consumers.items() if name in only}
    processes = {
        name: subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, command in consumers.items()
    }
    results: dict[str, object] = {}
    try:
        for name, process in processes.items():
            out, err = process.communicate(timeout=seconds + 120)
            if process.returncode != 0:
                results[name] = {"error": err.strip().splitlines()[-1] if err.strip() else f"exit {process.returncode}"}
                continue
            measured = json.loads(out.strip().splitlines()[-1])
            measured["cpu_pct_of_one_core"] = round(100 * measured["cpu_s"] / measured["wall_s"], 2)
            measured["cpu_ms_per_signal_s"] = round(1000 * measured["cpu_s"] / (measured["samples"] / FS), 3)
            results[name] = measured
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
        player.kill()
        player.wait(timeout=10)
    pairs = [
        ("ours", "mne_lsl_default_delay_1ms"),
        ("ours", "mne_lsl_delay_50ms"),
        ("ours_poll_50ms", "mne_lsl_delay_50ms"),
        ("plain_inlet_50ms_with_our_filters", "mne_lsl_delay_50ms"),
        ("one_thread_per_chunk", "mne_lsl_delay_50ms"),
        ("ours_reader_per_chunk", "mne_lsl_delay_50ms"),
        ("baseline_ours", "mne_lsl_delay_50ms"),
        ("baseline_ours_poll_50ms", "mne_lsl_delay_50ms"),
        ("ours", "baseline_ours"),
        ("ours_poll_50ms", "baseline_ours_poll_50ms"),
    ]
    for mine, theirs in pairs:
        a, b = results.get(mine, {}), results.get(theirs, {})
        if "cpu_ms_per_signal_s" in a and "cpu_ms_per_signal_s" in b:
            results[f"ratio_{mine}_to_{theirs}"] = round(a["cpu_ms_per_signal_s"] / b["cpu_ms_per_signal_s"], 3)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--phases", nargs="+", default=["bandpass", "notch"], choices=["bandpass", "notch"])
    parser.add_argument("--baseline", metavar="REV", help="also run our consumers on the code of this commit (A/B)")
    parser.add_argument("--only", nargs="+", metavar="CONSUMER", help="run only these consumers")
    parser.add_argument("--repeats", type=int, default=1, help="run each phase this many times, one after another")
    parser.add_argument(
        "--engine-latency", type=float, metavar="SECONDS",
        help="instead: the DSP engine's chunk -> window latency, woken per hop vs per chunk, --repeats times each",
    )  # fmt: skip
    args = parser.parse_args()
    if args.engine_latency:
        wakes = [per_chunk for _ in range(args.repeats) for per_chunk in (False, True)]  # alternated: same load
        runs = [engine_latency(args.engine_latency, per_chunk) for per_chunk in wakes]
        emit("engine_wake_latency", {"runs": runs, "load_average": [round(x, 2) for x in os.getloadavg()]})
        return
    with tempfile.TemporaryDirectory(prefix="bench-acq-baseline-") as folder:
        baseline = export_commit(args.baseline, Path(folder)) if args.baseline else None
        run_all(args, baseline)


def export_commit(revision: str, folder: Path) -> Path:
    """The packages the consumers import (dsp, monitor) as they were at ``revision`` (``git archive``: nothing in
    the checkout changes)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, "--", "dsp", "monitor"], capture_output=True)
    if archive.returncode != 0:
        raise SystemExit(f"error: cannot export commit {revision!r}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def run_all(args: argparse.Namespace, baseline: Path | None) -> None:
    peers_python = str(ensure_peers_venv())
    version = subprocess.run(
        [peers_python, "-c", "import mne_lsl, numpy; print(mne_lsl.__version__, numpy.__version__)"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    started = time.monotonic()
    phases = {
        phase if args.repeats == 1 else f"{phase}_{repeat + 1}": run_phase(
            peers_python, args.seconds, phase, baseline, args.only
        )
        for repeat in range(args.repeats)
        for phase in args.phases
    }
    emit(
        "acquisition_vs_mnelsl",
        {
            "stream": f"{N_CHANNELS} ch x {FS:g} Hz float32, 32-sample chunks, {args.seconds:g} s per phase",
            "mne_lsl": f"{version[0]} (numpy {version[1]}, peers venv)",
            "target": "ours <= 0.5x MNE-LSL's CPU time",
            "baseline": args.baseline,
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "phases": phases,
            "wall_s": round(time.monotonic() - started, 1),
        },
    )


if __name__ == "__main__":
    main()
