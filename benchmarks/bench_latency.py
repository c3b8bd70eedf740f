"""Sample-to-decision latency: from the moment the amplifier pushes a window's last sample to the moment the monitor
has its decision (and publishes it), on the LSL clock of one machine, worker in another process.

    .venv/bin/python -m benchmarks.bench_latency --channels 8 64 256 --duration 20

Breakdown per decision: LSL transfer + buffering (sample pushed -> DSP starts the chunk), DSP (per window), ZeroMQ
round trip minus the worker's own time, worker, and publication. The player runs in a subprocess (tests/players.py).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import uuid

import numpy as np

from benchmarks.common import REPO, emit


def measure(channels: int, duration_s: float, fs: float) -> dict[str, float]:
    from monitor.acquisition import resolve_stream
    from monitor.inference.client import InferenceClient
    from monitor.inference.supervisor import spawn_worker
    from monitor.pipeline import MonitorPipeline

    layout = {8: "ring8", 64: "grid8x8"}.get(channels, f"grid{channels // 16}x16")
    source_id = f"bench-{uuid.uuid4().hex[:8]}"
    player = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "players.py"), "--source-id", source_id, "--layout", layout,
         "--fs", str(fs), "--duration", str(duration_s), "--no-index"],
        stdout=subprocess.PIPE, text=True,
    )
    worker = spawn_worker(model_path=None)
    endpoint = worker.endpoint
    try:
        client = InferenceClient(endpoint=endpoint, bed_id=source_id, deadline_s=1.0)
        pipeline = MonitorPipeline(resolve_stream(source_id=source_id, timeout_s=30), client=client)
        pipeline.start()
        player.communicate(timeout=duration_s + 60)
        time.sleep(1.0)
        pipeline.stop()
        client.close()
    finally:
        worker.stop()
        if player.poll() is None:
            player.kill()
    decisions = list(pipeline.state.decisions)
    skip = len(decisions) // 10  # the first second includes the worker's warm-up
    latency = np.array([d.latency_s for d in decisions[skip:]]) * 1000
    worker_ms = np.array([d.worker_s for d in decisions[skip:]]) * 1000
    stats = client.stats if hasattr(client, "stats") else {}
    return {
        "channels": channels,
        "fs": fs,
        "decisions": len(decisions),
        "expected_windows": int((duration_s * fs - 0.2 * fs) // (0.05 * fs) + 1),
        "dropped_samples": pipeline.engine.reader.dropped,
        "latency_ms": {p: float(np.percentile(latency, q)) for p, q in (("p50", 50), ("p95", 95), ("p99", 99))},
        "worker_ms_p50": float(np.median(worker_ms)),
        "dsp_ms_per_window": 1000 * pipeline.engine.stats.dsp_seconds_total / max(1, pipeline.engine.stats.windows),
        "client_stats": stats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, nargs="+", default=[8, 64, 256])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--fs", type=float, default=2048.0)
    args = parser.parse_args()
    emit("sample_to_decision_latency", {"runs": [measure(c, args.duration, args.fs) for c in args.channels]})


if __name__ == "__main__":
    main()
