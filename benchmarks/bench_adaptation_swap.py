"""Hot swap cost: how long load_model and use_model take, and what the windows streaming meanwhile notice.

    .venv/bin/python -m benchmarks.bench_adaptation_swap --seconds 12

One bed sends an 8 x 410 window every 50 ms (ring8 at 2048 Hz, 50 ms hop) to a real `neurofusion worker` running
the bundled model. A third of the way in the worker is asked to load an adapted checkpoint (a re-saved copy of
the bundled model under another id: the swap, not the weights, is measured), two thirds in to switch back.
Reported: each request's time to its model_loaded reply, windows sent/answered/failed, and the round trip of the
windows within 1 s of each switch against all the others.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.common import emit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0)
    args = parser.parse_args()

    from models.checkpoint import load_checkpoint, save_checkpoint
    from models.datasets import filter_like_pipeline
    from monitor.inference.client import InferenceClient, ModelControl
    from monitor.inference.supervisor import spawn_worker
    from simulators.emg import EmgSimulator, SimulationConfig

    model, card = load_checkpoint()
    card.model_id += "+bench-copy"
    card.onnx_sha256 = None
    checkpoint = save_checkpoint(Path(tempfile.mkdtemp()) / "copy.pt", model, card)
    filtered = filter_like_pipeline(EmgSimulator(SimulationConfig(seed=5)).read(2048 * 4), 2048.0)
    windows = np.stack([filtered[i : i + 410].T for i in range(2048, len(filtered) - 410, 102)])

    # the worker loads models only from folders it allows (docs/protocol.md, Model control): the copy's is one
    worker = spawn_worker(None, standby=False, extra_args=("--models-dir", str(checkpoint.parent)))
    switches: list[tuple[str, float, float]] = []  # (model, requested at, answered at) perf_counter
    try:
        with InferenceClient(worker.endpoint, bed_id="bench", deadline_s=5.0) as client, \
                ModelControl(worker.endpoint) as control:
            while client.state != "online":
                time.sleep(0.05)

            def swap() -> None:
                time.sleep(args.seconds / 3)
                started = time.perf_counter()
                loaded = control.load_model(checkpoint)
                switches.append((loaded.model_id, started, time.perf_counter()))
                time.sleep(args.seconds / 3)
                started = time.perf_counter()
                back = control.use_model(loaded.previous_model_id)
                switches.append((back.model_id, started, time.perf_counter()))

            swapper = threading.Thread(target=swap)
            swapper.start()
            submitted: dict[int, float] = {}
            begin = time.perf_counter()
            sequence = 0
            while time.perf_counter() - begin < args.seconds:
                submitted[sequence] = time.perf_counter()
                client.submit(windows[sequence % len(windows)], float(sequence), sequence, 2048.0)
                sequence += 1
                time.sleep(max(0.0, begin + sequence * 0.05 - time.perf_counter()))
            swapper.join()
            decisions: list = []
            give_up = time.monotonic() + 10
            while len(decisions) < sequence and time.monotonic() < give_up:
                decisions += client.poll(0.2)
            stats = client.stats
    finally:
        worker.stop()
    near = np.array([any(abs(submitted[d.sequence] - at) < 1.0 for _, at, _ in switches) for d in decisions])
    round_trips = np.array([d.round_trip_ms for d in decisions])
    ids = [d.model_id for d in sorted(decisions, key=lambda d: d.sequence)]
    emit("adaptation_swap", {
        "windows_sent": sequence, "windows_answered": len(decisions), "errors": stats["errors"],
        "dropped": stats["dropped_deadline"] + stats["dropped_superseded"],
        "model_changes": sum(a != b for a, b in zip(ids, ids[1:], strict=False)),
        "load_model_ms": round((switches[0][2] - switches[0][1]) * 1000, 1),
        "use_model_ms": round((switches[1][2] - switches[1][1]) * 1000, 1),
        "round_trip_ms_near_switch": {"p50": round(float(np.median(round_trips[near])), 2),
                                      "max": round(float(round_trips[near].max()), 2), "n": int(near.sum())},
        "round_trip_ms_elsewhere": {"p50": round(float(np.median(round_trips[~near])), 2),
                                    "max": round(float(round_trips[~near].max()), 2), "n": int((~near).sum())},
    })


if __name__ == "__main__":
    main()
