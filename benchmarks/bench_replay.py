"""Replay pacing: the 64-channel HD-EMG recording replayed at 1x over LSL, received by an inlet in this process.

    .venv/bin/python -m benchmarks.bench_replay --seconds 20

Reports samples sent and received, the lag from a sample's timestamp to its arrival at the inlet (p50/p99/max), the
drift of that lag over the run (Theil-Sen slope, ms per minute: 0 means the stream keeps the LSL clock's pace) and
the CPU the replay used per second of signal.
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid

import numpy as np

from benchmarks.common import REPO, emit

RECORDING = REPO.parent / "shared" / "data" / "hdemg-vastus-lateralis" / "otb_testfile.mat"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--speed", type=float, default=1.0)
    args = parser.parse_args()

    import pylsl
    from scipy.stats import theilslopes

    from monitor.recordings import open_recording
    from monitor.recordings.replay import replay_source
    from simulators.amplifier import Amplifier

    recording = open_recording(RECORDING)
    source_id = f"bench-replay-{uuid.uuid4().hex[:8]}"
    amplifier = Amplifier(replay_source(recording, loop=True), name="bench-replay", source_id=source_id,
                          speed=args.speed)  # fmt: skip
    info = pylsl.resolve_byprop("source_id", source_id, timeout=10.0)[0]
    inlet = pylsl.StreamInlet(info, max_buflen=60)
    inlet.open_stream(timeout=5.0)
    cpu = {}

    def send() -> None:
        started = time.thread_time()
        amplifier.run(duration_s=args.seconds)
        cpu["replay_thread_s"] = time.thread_time() - started

    sender = threading.Thread(target=send)
    sender.start()
    expected = int(round(args.seconds * recording.fs))
    received = 0
    lags, stamps = [], []
    deadline = time.monotonic() + args.seconds / args.speed + 10.0
    while received < expected and time.monotonic() < deadline:
        _, timestamps = inlet.pull_chunk(timeout=0.5, max_samples=8192)
        if timestamps:
            now = pylsl.local_clock()
            received += len(timestamps)
            lags.append(now - timestamps[-1])
            stamps.append(timestamps[-1])
    sender.join()
    lags_ms = np.array(lags) * 1000.0
    minutes = (np.array(stamps) - stamps[0]) / 60.0
    emit("replay_pacing", {
        "recording": RECORDING.name,
        "channels": recording.n_channels,
        "fs": recording.fs,
        "speed": args.speed,
        "seconds": args.seconds,
        "samples_sent": amplifier.samples_sent,
        "samples_received": received,
        "lag_ms": {"p50": round(float(np.percentile(lags_ms, 50)), 2),
                   "p99": round(float(np.percentile(lags_ms, 99)), 2), "max": round(float(lags_ms.max()), 2)},
        "lag_drift_ms_per_min": round(float(theilslopes(lags_ms, minutes)[0]), 3),
        "replay_cpu_s_per_signal_s": round(cpu["replay_thread_s"] / args.seconds, 4),
    })  # fmt: skip


if __name__ == "__main__":
    main()
