"""Sustained load and soak: the whole monitor (player subprocess -> LSL -> DSP -> worker process) for minutes, with
memory, CPU and latency sampled every interval, per component.

    .venv/bin/python -m benchmarks.bench_soak --channels 256 --minutes 10     # sustained load, no dropped samples
    .venv/bin/python -m benchmarks.bench_soak --channels 64 --minutes 60      # the one-hour soak

Memory growth compares the monitor's RSS at the end with its RSS after the first interval (buffers are full by then);
latency drift compares the median latency of the last interval with the first.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid

import numpy as np
import psutil

from benchmarks.common import REPO, emit
from tests.players import start_player

LAYOUTS = {8: "ring8", 64: "grid8x8", 256: "grid16x16"}


def run(channels: int, minutes: float, interval_s: float, fs: float) -> dict:
    from monitor.acquisition import resolve_stream
    from monitor.inference.client import InferenceClient
    from monitor.inference.supervisor import spawn_worker
    from monitor.pipeline import MonitorPipeline

    duration = minutes * 60.0
    source_id = f"soak-{uuid.uuid4().hex[:8]}"
    player = start_player(source_id, duration + 5, layout=LAYOUTS.get(channels, f"grid{channels // 16}x16"), fs=fs)
    model = REPO / "models" / "weights" / "default.pt"
    worker = spawn_worker(model_path=model) if channels == 8 else None  # the bundled model is ring8
    client = InferenceClient(endpoint=worker.endpoint, bed_id=source_id) if worker else None
    pipeline = MonitorPipeline(resolve_stream(source_id=source_id, timeout_s=30), client=client)
    monitor_process = psutil.Process()
    processes = {"monitor": monitor_process, "amplifier": psutil.Process(player.pid)}
    if worker is not None:
        processes["worker"] = psutil.Process(worker.pid)
    for process in processes.values():
        process.cpu_percent(None)
    pipeline.start()
    samples = []
    start = time.monotonic()
    try:
        while time.monotonic() - start < duration:
            time.sleep(interval_s)
            with pipeline.state.lock:
                recent = [d.latency_s for d in list(pipeline.state.decisions)[-200:]]
            samples.append({
                "t_s": round(time.monotonic() - start, 1),
                "rss_mib": {name: round(p.memory_info().rss / 2**20, 1) for name, p in processes.items()},
                "cpu_percent": {name: p.cpu_percent(None) for name, p in processes.items()},
                "samples": pipeline.acquisition.buffer.total_written,
                "dropped_samples": pipeline.engine.reader.dropped,
                "windows": pipeline.engine.stats.windows,
                "decisions": len(pipeline.state.decisions),
                "latency_p50_ms": float(np.median(recent) * 1000) if recent else None,
            })
            print(samples[-1], file=sys.stderr, flush=True)
    finally:
        pipeline.stop()
        if client is not None:
            client.close()
        if worker is not None:
            worker.stop()
        player.kill()
        player.wait()
    first, last = samples[0], samples[-1]
    growth = (last["rss_mib"]["monitor"] - first["rss_mib"]["monitor"]) / first["rss_mib"]["monitor"] * 100
    latencies = [s["latency_p50_ms"] for s in samples if s["latency_p50_ms"] is not None]
    return {
        "channels": channels,
        "fs": fs,
        "minutes": minutes,
        "expected_samples": int(duration * fs),
        "received_samples": last["samples"],
        "dropped_samples": last["dropped_samples"],
        "monitor_rss_growth_percent": round(growth, 2),
        "latency_p50_first_last_ms": [latencies[0], latencies[-1]] if latencies else None,
        "cpu_percent_mean": {
            name: round(float(np.mean([s["cpu_percent"][name] for s in samples])), 1) for name in processes
        },
        "intervals": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=30.0, metavar="S")
    parser.add_argument("--fs", type=float, default=2048.0)
    args = parser.parse_args()
    emit("soak", run(args.channels, args.minutes, args.interval, args.fs))


if __name__ == "__main__":
    main()
