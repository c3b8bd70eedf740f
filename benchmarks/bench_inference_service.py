"""The inference service over ZeroMQ: round trip, throughput, and many beds sharing two workers.

    .venv/bin/python -m benchmarks.bench_inference_service --seconds 10
    .venv/bin/python -m benchmarks.bench_inference_service --seconds 30 --phases beds monitor_beds   # per component

Phases (each worker a real `neurofusion worker` subprocess, each broker a real `neurofusion broker`):
- round_trip: one 64 x 400 window every 50 ms (one bed; the previous answer is always in), direct to one worker,
  over ipc:// and tcp://127.0.0.1; median and p99 of the client's round trip, of the worker's own model time and
  of their difference (what the service itself costs: queueing, ZeroMQ, encoding, validation, thread wake-ups).
- throughput: 16 clients keeping 4 windows each in flight through a broker, with 1 and then 2 workers; windows/s.
- beds: 16 simulated 8-channel beds at 2 kHz (200 ms windows, a new one every 50 ms per bed, phases staggered)
  through a broker to 2 workers for ``--seconds``; windows dropped (deadline 0.5 s, latest-wins, errors) and
  round-trip percentiles; CPU and memory of the broker, each worker and this process (which holds the 16 clients).
- monitor_beds (only when asked for): the beds as deployed, per bed a player subprocess (simulated amplifier over
  LSL) and a headless ``neurofusion monitor`` process, through the broker to 2 workers; dropped samples, decisions
  and sample-to-decision latency, CPU and memory of every process (amplifiers, monitors, broker, workers).
CPU is % of one core from ``cpu_times`` deltas over the measured span, memory the RSS at its end and the peak
(``benchmarks.common.ProcessMeter``, as ``bench_soak``).
The model is the bundled checkpoint when its layout fits, else an untrained NeuroFusionNet of the default size
built for the layout (the service, not the accuracy, is measured); ONNX Runtime when the export works, else torch.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, ProcessMeter, emit

FS = 2000.0
WINDOW = 400
HOP_S = 0.05


def build_checkpoint(directory: Path, layout_name: str, export: bool) -> tuple[Path, str, float, int]:
    """(checkpoint path, backend it will run on, its fs, its window length) for ``layout_name``."""
    from dsp.features import MODEL_FEATURES
    from models.checkpoint import BUNDLED_CHECKPOINT, ModelCard, build_model, load_checkpoint, save_checkpoint
    from models.neurofusionnet import NetworkConfig
    from simulators.electrodes import ElectrodeLayout

    layout = ElectrodeLayout.from_name(layout_name)
    if BUNDLED_CHECKPOINT.is_file():
        _, card = load_checkpoint(BUNDLED_CHECKPOINT)
        if card.n_channels == layout.n_channels:
            return BUNDLED_CHECKPOINT, "auto", float(card.fs), int(card.window_samples)
    classes = ["healthy", "myopathy", "neuropathy"]
    config = NetworkConfig(n_channels=layout.n_channels, n_classes=3, n_features=len(MODEL_FEATURES))
    card = ModelCard(model_id=f"bench-{layout_name}", classes=classes, n_channels=layout.n_channels, fs=FS,
                     window_samples=WINDOW, layout=layout.to_dict(), feature_names=list(MODEL_FEATURES),
                     network=config.to_dict())
    path = save_checkpoint(directory / f"bench-{layout_name}.pt", build_model(card).eval(), card)
    if not export:
        return path, "torch", FS, WINDOW
    try:
        from models.export import export_checkpoint

        export_checkpoint(path)
        return path, "onnx", FS, WINDOW
    except Exception as error:  # the export is someone else's module; measure on torch rather than not at all
        print(f"ONNX export failed ({type(error).__name__}: {error}); using torch", file=sys.stderr)
        return path, "torch", FS, WINDOW


def build_checkpoint_elsewhere(directory: Path, layout_name: str, export: bool) -> tuple[Path, str, float, int]:
    """``build_checkpoint`` in a subprocess, so torch never loads into this process: it is the bed side whose
    memory the beds phase reports, and a monitor does not import torch either (its ~300 MiB would be counted)."""
    code = ("import json, sys; from pathlib import Path; "
            "from benchmarks.bench_inference_service import build_checkpoint; "
            "path, backend, fs, window = build_checkpoint(Path(sys.argv[1]), sys.argv[2], sys.argv[3] == '1'); "
            "print(json.dumps([str(path), backend, fs, window]))")
    done = subprocess.run([sys.executable, "-c", code, str(directory), layout_name, "1" if export else "0"],
                          cwd=REPO, check=True, stdout=subprocess.PIPE, text=True)
    path, backend, fs, window = json.loads(done.stdout.strip().splitlines()[-1])
    return Path(path), backend, float(fs), int(window)


def emg_windows(count: int, n_channels: int, seed: int = 0, n_samples: int = WINDOW, fs: float = FS) -> np.ndarray:
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(seed)
    sos = butter(4, [20, 450], btype="bandpass", fs=fs, output="sos")
    noise = sosfilt(sos, rng.standard_normal((count, n_channels, n_samples + 200)), axis=-1)[..., 200:]
    return (noise * rng.uniform(10, 200, (count, n_channels, 1))).astype(np.float32)


def launch(*args: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "monitor.cli", *args], stdout=subprocess.PIPE, text=True,
                               env=env, cwd=REPO, stdin=subprocess.DEVNULL)
    for line in process.stdout:
        if line.startswith("READY "):
            return process, line[len("READY "):].strip()
    raise RuntimeError(f"`neurofusion {args[0]}` exited with {process.wait()} before it was ready")


def stop(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    array = np.asarray(values)
    return {"n": len(values), "median": round(float(np.median(array)), 3),
            "p99": round(float(np.percentile(array, 99)), 3), "max": round(float(array.max()), 3)}


def round_trip(checkpoint: Path, backend: str, endpoint: str, count: int, batch_wait_ms: float = 2.0) -> dict:
    from monitor.inference.client import InferenceClient

    worker, bound = launch("worker", "--bind", endpoint, "--model", str(checkpoint), "--backend", backend,
                           "--batch-wait-ms", str(batch_wait_ms))
    windows = emg_windows(16, 64)
    trips, model_ms = [], []
    try:
        with InferenceClient(bound.split()[0], bed_id="bench", deadline_s=5.0) as client:
            for index in range(count + 10):
                sent = time.perf_counter()
                client.submit(windows[index % 16], float(index), index, FS)
                decisions = client.poll(5.0)
                time.sleep(max(0.0, sent + HOP_S - time.perf_counter()))  # one bed: a window every 50 ms
                if index >= 10 and decisions:  # the first ten warm caches and connections up
                    trips.append(decisions[0].round_trip_ms)
                    model_ms.append(decisions[0].worker_ms)
            stats = client.stats
    finally:
        stop([worker])
    return {"round_trip_ms": percentiles(trips), "worker_ms": percentiles(model_ms),
            "service_overhead_ms": percentiles([t - m for t, m in zip(trips, model_ms, strict=True)]),
            "answered": len(trips), "dropped": stats["dropped_deadline"] + stats["dropped_superseded"]}


def start_pool(checkpoint: Path, backend: str, n_workers: int) -> tuple[list[subprocess.Popen[str]], dict]:
    broker, ready = launch("broker", "--frontend", "tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*")
    bound = json.loads(ready)
    processes = [broker]
    for _ in range(n_workers):
        processes.append(launch("worker", "--connect", bound["backend"], "--model", str(checkpoint),
                                "--backend", backend)[0])
    return processes, bound


def wait_online(clients: list, timeout_s: float = 30.0) -> None:
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up and not all(c.state == "online" and c.stats["workers"] for c in clients):
        time.sleep(0.05)


def throughput(checkpoint: Path, backend: str, n_workers: int, seconds: float) -> dict:
    from monitor.inference.client import InferenceClient

    processes, bound = start_pool(checkpoint, backend, n_workers)
    windows = emg_windows(16, 64)
    clients = [InferenceClient(bound["frontend"], bed_id=f"bed-{i}", deadline_s=30.0, max_in_flight=4)
               for i in range(16)]
    try:
        time.sleep(0.5 * n_workers)  # let every worker register before the flood, so the load is shared
        wait_online(clients)
        sequence = 0
        for client in clients:
            for _ in range(4):
                client.submit(windows[sequence % 16], 0.0, sequence, FS)
                sequence += 1
        answered, batches = 0, []
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            for client in clients:
                for decision in client.poll():
                    answered += 1
                    batches.append(decision.batch_size)
                    client.submit(windows[sequence % 16], 0.0, sequence, FS)
                    sequence += 1
            time.sleep(0.001)
        elapsed = time.perf_counter() - started
    finally:
        for client in clients:
            client.close()
        stop(processes)
    return {"workers": n_workers, "windows_per_s": round(answered / elapsed, 1), "answered": answered,
            "mean_batch": round(float(np.mean(batches)), 2) if batches else 0.0}


def beds(checkpoint: Path, backend: str, fs: float, n_samples: int, n_beds: int, n_workers: int,
         seconds: float) -> dict:
    from monitor.inference.client import InferenceClient

    processes, bound = start_pool(checkpoint, backend, n_workers)
    windows = emg_windows(32, 8, n_samples=n_samples, fs=fs)
    clients = [InferenceClient(bound["frontend"], bed_id=f"bed-{i}", deadline_s=0.5) for i in range(n_beds)]
    trips, batches = [], []
    # the bed side is this process: every bed's InferenceClient (each with its own ZeroMQ thread) and the loop that
    # hands them pre-made windows; this phase runs no amplifiers and no DSP, so there is no player process to measure
    pids = {"broker": processes[0].pid, **{f"worker_{i + 1}": p.pid for i, p in enumerate(processes[1:])},
            f"beds_{n_beds}_clients": os.getpid()}
    try:
        time.sleep(0.5 * n_workers)
        wait_online(clients)
        meter = ProcessMeter(pids)  # from the first window on, not through the workers' start-up
        started = time.perf_counter()
        due = [started + HOP_S * bed / n_beds for bed in range(n_beds)]  # staggered, as independent beds are
        sequence = [0] * n_beds
        while time.perf_counter() - started < seconds:
            now = time.perf_counter()
            for bed, client in enumerate(clients):
                if now >= due[bed]:
                    client.submit(windows[sequence[bed] % 32], now, sequence[bed], fs)
                    sequence[bed] += 1
                    due[bed] += HOP_S
                for decision in client.poll():
                    trips.append(decision.round_trip_ms)
                    batches.append(decision.batch_size)
            time.sleep(max(0.0, min(due) - time.perf_counter()) if min(due) > time.perf_counter() else 0.0005)
        time.sleep(0.6)  # the last windows: answered or past their deadline
        for client in clients:
            for decision in client.poll():
                trips.append(decision.round_trip_ms)
                batches.append(decision.batch_size)
        stats = [client.stats for client in clients]
        usage = meter.total()  # before anything stops: the workers' figures are of the run, not of their exit
    finally:
        for client in clients:
            client.close()
        stop(processes)
    submitted = sum(s["submitted"] for s in stats)
    dropped = sum(s["dropped_deadline"] + s["dropped_superseded"] + s["errors"] for s in stats)
    return {"beds": n_beds, "workers": n_workers, "channels": 8, "fs": fs, "window": n_samples, "seconds": seconds,
            "windows_submitted": submitted, "windows_answered": sum(s["answered"] for s in stats),
            "windows_dropped": dropped, "round_trip_ms": percentiles(trips),
            "mean_batch": round(float(np.mean(batches)), 2) if batches else 0.0,
            "per_process": usage, "amplifier_processes": 0}


def monitor_beds(checkpoint: Path, backend: str, fs: float, n_beds: int, n_workers: int, seconds: float,
                 folder: Path) -> dict:
    """The beds as deployed: per bed an amplifier (a player subprocess streaming ring8 over LSL) and a headless
    ``neurofusion monitor`` process (acquisition, DSP, its inference client), all sharing a broker and its workers.
    CPU and memory per process are measured over ``seconds`` once every bed has a decision."""
    from tests.players import start_player

    # the shipped cfg (common.py points LSLAPICFG at it) carries PortRange = 512: 16 amplifiers plus 16 monitors'
    # result outlets need more than liblsl's default 32 ports, and past the range outlets cannot be found
    processes, bound = start_pool(checkpoint, backend, n_workers)
    tag = f"beds-{os.getpid()}"
    players = [start_player(f"{tag}-{bed}", seconds + 600, fs=fs, no_index=True) for bed in range(n_beds)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    jsonl = [folder / f"bed-{bed}.jsonl" for bed in range(n_beds)]
    logs = [open(folder / f"bed-{bed}.out", "w") for bed in range(n_beds)]  # noqa: SIM115 (closed below)
    monitors = [subprocess.Popen([sys.executable, "-m", "monitor.cli", "monitor", "--headless", "--source-id",
                                  f"{tag}-{bed}", "--worker", bound["frontend"], "--jsonl", str(jsonl[bed]),
                                  "--resolve-timeout", "120"],  # 32 Python processes start at once
                                 stdout=logs[bed], stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                 stdin=subprocess.DEVNULL) for bed in range(n_beds)]

    def lines() -> list[list[dict]]:
        return [[json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
                for path in jsonl]

    try:
        give_up = time.monotonic() + 180.0  # 2 x 16 Python processes starting on a shared machine
        while time.monotonic() < give_up and not all(path.is_file() and path.stat().st_size for path in jsonl):
            for bed, monitor in enumerate(monitors):
                if monitor.poll() is not None:
                    tail = (folder / f"bed-{bed}.out").read_text()[-2000:]
                    raise RuntimeError(f"monitor {bed} exited with {monitor.returncode} before a decision:\n{tail}")
            time.sleep(0.5)
        if not all(path.is_file() and path.stat().st_size for path in jsonl):
            raise RuntimeError(f"not every bed had a decision within 180 s; see the outputs in {folder}")
        time.sleep(2.0)  # past the first decisions' warm-up
        meter = ProcessMeter({"broker": processes[0].pid,
                              **{f"worker_{i + 1}": p.pid for i, p in enumerate(processes[1:])},
                              **{f"monitor_{bed}": m.pid for bed, m in enumerate(monitors)},
                              **{f"amplifier_{bed}": p.pid for bed, p in enumerate(players)}})
        before = [len(bed) for bed in lines()]
        time.sleep(seconds)
        usage = meter.total()
        during = [bed[start:] for bed, start in zip(lines(), before, strict=True)]
    finally:
        for monitor in monitors:
            monitor.send_signal(signal.SIGINT)  # a clean stop prints the final dashboard (samples, dropped)
        for monitor in monitors:
            try:
                monitor.wait(30)
            except subprocess.TimeoutExpired:
                monitor.kill()
        for log in logs:
            log.close()
        for player in players:
            player.kill()
            player.wait()
        stop(processes)
    dropped = []
    for bed in range(n_beds):
        found = re.findall(r"samples (\d+)\s+dropped (\d+)", (folder / f"bed-{bed}.out").read_text())
        dropped.append(int(found[-1][1]) if found else None)
    latency = [line["latency_ms"] for bed in during for line in bed]  # a repeated line's latency counted twice
    sequences = [[line["sequence"] for line in bed] for bed in during]

    def missing(sequence: list[int]) -> int:
        unique = np.unique(sequence)  # sorted: with two workers a bed's decisions can come back out of order
        if len(unique) < 3:
            return 0
        hops = np.round(np.diff(unique) / np.median(np.diff(unique)))
        return int(np.sum(np.maximum(hops - 1, 0)))

    def summed(prefix: str, key: str) -> float:
        return round(sum(v[key] for name, v in usage.items() if name.startswith(prefix)), 1)

    return {"beds": n_beds, "workers": n_workers, "channels": 8, "fs": fs, "measured_s": seconds,
            "decisions": sum(len(set(s)) for s in sequences),
            "decisions_per_bed_per_s": round(sum(len(set(s)) for s in sequences) / n_beds / seconds, 2),
            "jsonl_lines": sum(len(s) for s in sequences),
            # the same window's decision written twice / a decision written after a later one (two workers)
            "jsonl_repeated": sum(len(s) - len(set(s)) for s in sequences),
            "jsonl_out_of_order": sum(int(np.sum(np.diff(s) < 0)) for s in sequences if s),
            # decisions missing between two a bed did get (deadline, superseded, lost on the way): a decision's
            # sequence is its window's sample counter, so consecutive ones are one hop apart
            "decisions_missing": sum(missing(s) for s in sequences),
            "dropped_samples_per_bed": dropped, "sample_to_decision_ms": percentiles(latency),
            "per_process": usage,
            "totals": {part: {"cpu_percent": summed(part, "cpu_percent"), "rss_mib": summed(part, "rss_mib")}
                       for part in ("broker", "worker", "monitor", "amplifier")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the throughput and beds phases")
    parser.add_argument("--round-trips", type=int, default=200)
    parser.add_argument("--beds", type=int, default=16)
    parser.add_argument("--torch", action="store_true", help="skip the ONNX export, run the torch backend")
    parser.add_argument("--phases", nargs="+", default=["round_trip", "throughput", "beds"],
                        help="also monitor_beds: per bed a player and a headless monitor process (not by default)")
    args = parser.parse_args()
    results: dict = {"command": " ".join(["python -m benchmarks.bench_inference_service", *sys.argv[1:]])}
    with tempfile.TemporaryDirectory() as scratch:
        grid, grid_backend, _, _ = build_checkpoint_elsewhere(Path(scratch), "grid8x8", export=not args.torch)
        ring, ring_backend, ring_fs, ring_window = build_checkpoint_elsewhere(Path(scratch), "ring8",
                                                                              export=not args.torch)
        results["models"] = {"grid8x8": [grid.name, grid_backend], "ring8": [ring.name, ring_backend]}
        if "round_trip" in args.phases:
            results["round_trip_64x400"] = {
                "ipc": round_trip(grid, grid_backend, f"ipc://{scratch}/worker.sock", args.round_trips),
                "tcp": round_trip(grid, grid_backend, "tcp://127.0.0.1:*", args.round_trips),
            }
        if "throughput" in args.phases:
            results["throughput_64x400"] = [throughput(grid, grid_backend, n, args.seconds) for n in (1, 2)]
        if "beds" in args.phases:
            results["beds_8ch_2khz"] = beds(ring, ring_backend, ring_fs, ring_window, args.beds, 2, args.seconds)
        if "monitor_beds" in args.phases:
            results["monitor_beds_8ch"] = monitor_beds(ring, ring_backend, ring_fs, args.beds, 2, args.seconds,
                                                       Path(scratch))
    emit("inference_service", results)


if __name__ == "__main__":
    main()
