"""Sustained load and soak: the whole monitor (player subprocess -> LSL -> DSP -> worker process) for minutes, with
memory, CPU and latency sampled every interval, per component.

    .venv/bin/python -m benchmarks.bench_soak --channels 256 --minutes 10     # sustained load, no dropped samples
    .venv/bin/python -m benchmarks.bench_soak --channels 8 --minutes 60 --interval 60   # the one-hour soak

Every interval records each process's RSS and CPU %, the samples received and dropped, windows analysed and sent,
decisions answered and lost (counted by the inference client), and the p50/p95/p99 sample-to-decision latency of
the decisions that arrived in that interval (each decision counted once, by its sequence number).

Memory growth is reported twice: from the first interval, and from the first interval at or after ``--settled``
minutes (default 25). The monitor keeps a bounded 20-minute history of decisions and features for its trend views,
so RSS rises for the first 20 minutes by design; the "< 5 % growth" criterion applies from then on. Latency drift is
the least-squares slope of the per-interval p50 and p99 (ms per hour), with the first and last values beside it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, ProcessMeter, emit, load_average
from tests.players import start_player

LAYOUTS = {8: "ring8", 64: "grid8x8", 256: "grid16x16"}


def slope_per_hour(times_s: list[float], values: list[float]) -> float | None:
    """Least-squares slope in value units per hour (None with fewer than three points)."""
    if len(values) < 3:
        return None
    return round(float(np.polyfit(np.asarray(times_s) / 3600.0, np.asarray(values), 1)[0]), 3)


def growth_percent(before: float, after: float) -> float:
    return round((after - before) / before * 100.0, 2)


def prepare_checkpoint(layout: str, fs: float, folder: Path) -> Path:
    """The model for this layout, made in a subprocess so torch never loads into the measured monitor process (the
    real monitor does not import it either, and its 200+ MiB would shrink every growth percentage)."""
    code = ("import sys; from pathlib import Path; from benchmarks.bench_latency import checkpoint_for; "
            "print(checkpoint_for(sys.argv[1], float(sys.argv[2]), Path(sys.argv[3])))")
    done = subprocess.run([sys.executable, "-c", code, layout, str(fs), str(folder)], cwd=REPO, check=True,
                          capture_output=True, text=True)
    return Path(done.stdout.strip().splitlines()[-1])


def run(channels: int, minutes: float, interval_s: float, fs: float, settled_min: float, inference: bool,
        folder: Path) -> dict:
    from monitor.acquisition import resolve_stream
    from monitor.inference.client import InferenceClient
    from monitor.inference.supervisor import spawn_worker
    from monitor.pipeline import MonitorPipeline

    duration = minutes * 60.0
    layout = LAYOUTS.get(channels, f"grid{channels // 16}x16")
    source_id = f"soak-{uuid.uuid4().hex[:8]}"
    player = start_player(source_id, duration + 5, layout=layout, fs=fs)
    # other grids than the bundled ring8 get an untrained network of the same architecture: the same cost
    worker = spawn_worker(model_path=prepare_checkpoint(layout, fs, folder)) if inference else None
    client = InferenceClient(endpoint=worker.endpoint, bed_id=source_id) if worker else None
    pipeline = MonitorPipeline(resolve_stream(source_id=source_id, timeout_s=30), client=client)
    pids = {"monitor": os.getpid(), "amplifier": player.pid}
    if worker is not None:
        pids["worker"] = worker.pid
    meter = ProcessMeter(pids)
    processes = meter.processes
    pipeline.start()
    samples: list[dict] = []
    read = 0  # decisions read so far (MonitorState.decisions_published counts them all)
    start = time.monotonic()
    try:
        while time.monotonic() - start < duration:
            time.sleep(max(0.0, min(interval_s, duration - (time.monotonic() - start))))
            with pipeline.state.lock:  # the interval's decisions as one array, not 24,000 records
                published = pipeline.state.decisions_published
                fresh = pipeline.state.decisions.recent_columns(published - read, ("latency_s",))["latency_s"]
                read = published
            latency_ms = fresh * 1000.0
            stats = client.stats if client is not None else {}
            samples.append({
                "t_s": round(time.monotonic() - start, 1),
                **meter.interval(),
                "load_average": load_average(),
                "samples": pipeline.acquisition.buffer.total_written,
                "dropped_samples": pipeline.engine.reader.dropped,
                "windows": pipeline.engine.stats.windows,
                "windows_sent": pipeline.state.windows_sent,
                "answered": stats.get("answered", 0),
                "dropped_deadline": stats.get("dropped_deadline", 0),
                "dropped_superseded": stats.get("dropped_superseded", 0),
                "decisions_in_interval": len(fresh),
                **{f"latency_p{q}_ms": (round(float(np.percentile(latency_ms, q)), 2) if len(fresh) else None)
                   for q in (50, 95, 99)},
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
    settled = next((s for s in samples if s["t_s"] >= settled_min * 60.0 - 1.0), None)
    timed = [s for s in samples[1:] if s["latency_p50_ms"] is not None]  # the first interval holds the warm-up
    times = [s["t_s"] for s in timed]
    return {
        "channels": channels,
        "fs": fs,
        "minutes": minutes,
        "interval_s": interval_s,
        "inference": inference,
        "expected_samples": int(duration * fs),
        "received_samples": last["samples"],
        "dropped_samples": last["dropped_samples"],
        "windows": last["windows"],
        "decisions_answered": last["answered"],
        "decisions_lost": {"deadline": last["dropped_deadline"], "superseded": last["dropped_superseded"]},
        "rss_mib": {name: {"first": first["rss_mib"][name], "last": last["rss_mib"][name],
                           "max": max(s["rss_mib"][name] for s in samples)} for name in processes},
        "rss_growth_percent_from_first_interval": {
            name: growth_percent(first["rss_mib"][name], last["rss_mib"][name]) for name in processes},
        "rss_growth_percent_after_settled": None if settled is None or settled is last else {
            "from_t_s": settled["t_s"],
            **{name: growth_percent(settled["rss_mib"][name], last["rss_mib"][name]) for name in processes}},
        "latency_drift": None if not timed else {
            "p50_first_last_ms": [timed[0]["latency_p50_ms"], timed[-1]["latency_p50_ms"]],
            "p99_first_last_ms": [timed[0]["latency_p99_ms"], timed[-1]["latency_p99_ms"]],
            "p50_median_of_intervals_ms": round(float(np.median([s["latency_p50_ms"] for s in timed])), 2),
            "p99_median_of_intervals_ms": round(float(np.median([s["latency_p99_ms"] for s in timed])), 2),
            "p50_slope_ms_per_hour": slope_per_hour(times, [s["latency_p50_ms"] for s in timed]),
            "p99_slope_ms_per_hour": slope_per_hour(times, [s["latency_p99_ms"] for s in timed]),
        },
        "cpu_percent_mean": {
            name: round(float(np.mean([s["cpu_percent"][name] for s in samples])), 1) for name in processes
        },
        "load_average_start_end": [first["load_average"], last["load_average"]],
        "intervals": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=30.0, metavar="S")
    parser.add_argument("--fs", type=float, default=2048.0)
    parser.add_argument("--settled", type=float, default=25.0, metavar="MIN",
                        help="memory growth is also measured from this minute on (the history fills in 20)")
    parser.add_argument("--no-inference", action="store_true", help="DSP only, no worker")
    args = parser.parse_args()
    if args.minutes <= 0 or args.interval <= 0 or args.channels < 1:
        parser.error("--minutes, --interval and --channels must be positive")
    with tempfile.TemporaryDirectory() as folder:
        results = run(args.channels, args.minutes, args.interval, args.fs, args.settled, not args.no_inference,
                      Path(folder))
    emit("soak", results)


if __name__ == "__main__":
    main()
