"""Cost of the bundled needle condition model: a whole 5 s recording (32768 Hz, from the shared clinical set) and a
live 3 s stretch at 8 kHz, on one torch thread; and a cold start (a fresh interpreter importing the model's module,
loading the weights and reading one recording, with whether torch_geometric got imported); JSON out.

    .venv/bin/python -m benchmarks.bench_needle_model [--repeats 20]
"""

from __future__ import annotations

import argparse
import json
import lzma
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import emit

DATA = Path(__file__).resolve().parents[1] / "../shared/data/needle-emg-clinical"


def timings(function, repeats: int) -> dict[str, float]:
    function()  # warm-up
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return {"median_ms": round(1000 * float(np.median(seconds)), 2),
            "p95_ms": round(1000 * float(np.percentile(seconds, 95)), 2)}


COLD_START = (
    "import json, sys, time; start = time.perf_counter(); import numpy as np; "
    "from models.needle_model import load_needle_model; model = load_needle_model(); loaded = time.perf_counter(); "
    "model.predict_recording(np.random.default_rng(0).normal(0, 100, 5 * 32768).astype(np.float32), 32768.0); "
    "print(json.dumps({'import_and_load_ms': round(1000 * (loaded - start), 1), "
    "'first_recording_ms': round(1000 * (time.perf_counter() - loaded), 1), "
    "'torch_geometric_imported': 'torch_geometric' in sys.modules}))"
)


def cold_start() -> dict[str, object]:
    """A fresh interpreter: import, load, first 5 s recording (the cost a one-off `analyze` pays for the model)."""
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", COLD_START], cwd=root, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    import torch

    from dsp.resample import resample
    from models.needle_model import load_needle_model
    from monitor.recordings.asc import parse

    torch.set_num_threads(1)
    path = next(iter(sorted(DATA.rglob("*.asc.xz"))), None) if DATA.is_dir() else None
    if path is not None:
        with lzma.open(path) as handle:
            recording = parse(handle.read(), path.name)[:, 0]
    else:  # without the shared set: noise of the same length (the cost does not depend on the content)
        recording = np.random.default_rng(0).normal(0, 100, 5 * 32768).astype(np.float32)
    live = resample(recording[: 3 * 32768], 32768.0, 8000.0)
    load_start = time.perf_counter()
    model = load_needle_model()
    load_ms = 1000 * (time.perf_counter() - load_start)
    emit("needle_model", {
        "model_id": model.model_id,
        "network": model.card["network"],
        "load_ms": round(load_ms, 1),
        "recording_5s_32768hz": timings(lambda: model.predict_recording(recording, 32768.0), args.repeats),
        "live_3s_8000hz": timings(lambda: model.predict_window(live, 8000.0), args.repeats),
        "source": str(path.name) if path else "noise",
        "cold_start": cold_start(),
    })


if __name__ == "__main__":
    main()
