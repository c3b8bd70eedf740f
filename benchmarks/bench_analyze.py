"""`neurofusion analyze` throughput (real-time factor) on the 64-channel HD-EMG recording (2048 Hz, 32.5 s).

    .venv/bin/python -m benchmarks.bench_analyze --repeats 3

Measures reading the file, the DSP + fatigue pass alone, and the whole pass with the model through the worker's
batch handler. The model is the bundled checkpoint when its layout fits the 13 x 5 grid, else an untrained
NeuroFusionNet of the default size built for that grid (same computation, random weights: speed, not accuracy).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import REPO, emit

RECORDING = REPO.parent / "shared" / "data" / "hdemg-vastus-lateralis" / "otb_testfile.mat"


def grid_model(folder: Path, layout: dict, fs: float):  # noqa: ANN201 - a models.predictor.Predictor
    from models.predictor import load_predictor

    try:
        predictor = load_predictor(None, backend="auto")
        predictor.check_layout(layout)
        if predictor.card.n_channels == len(layout["labels"]):
            return predictor, "bundled"
    except (FileNotFoundError, ValueError):
        pass
    import torch

    from dsp.features import MODEL_FEATURES
    from models.checkpoint import ModelCard, save_checkpoint
    from models.graphs import layout_edges
    from models.neurofusionnet import NetworkConfig, NeuroFusionNet

    torch.manual_seed(0)
    names = list(MODEL_FEATURES)
    card = ModelCard(model_id="bench-grid13x5-untrained", classes=["healthy", "myopathy", "neuropathy"],
                     n_channels=64, fs=fs, window_samples=int(round(0.2 * fs)), layout=layout,
                     feature_names=names)  # fmt: skip
    model = NeuroFusionNet(NetworkConfig(n_channels=64, n_classes=3, n_features=len(names)),
                           layout_edges(layout, card.graph)).eval()  # fmt: skip
    path = save_checkpoint(folder / "grid13x5.pt", model, card)
    return load_predictor(path, backend="torch"), "untrained default-size NeuroFusionNet (torch)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-model", action="store_true", help="only the DSP + fatigue pass")
    args = parser.parse_args()

    from monitor.recordings import open_recording
    from monitor.recordings.analysis import analyze_recording

    started = time.perf_counter()
    recording = open_recording(RECORDING)
    read_s = time.perf_counter() - started
    results: dict = {
        "recording": RECORDING.name,
        "channels": recording.n_channels,
        "fs": recording.fs,
        "duration_s": recording.duration_s,
        "read_s": round(read_s, 3),
    }
    dsp_runs = [analyze_recording(recording).wall_seconds for _ in range(args.repeats)]
    results["dsp_fatigue"] = {
        "median_s": round(statistics.median(dsp_runs), 3),
        "real_time_factor": round(recording.duration_s / statistics.median(dsp_runs), 1),
    }
    if not args.no_model:
        with tempfile.TemporaryDirectory() as folder:
            predictor, which = grid_model(Path(folder), recording.layout, recording.fs)
            analysis = analyze_recording(recording, predictor)  # warm-up, and the window count
            runs = [analyze_recording(recording, predictor).wall_seconds for _ in range(args.repeats)]
        median = statistics.median(runs)
        results["with_model"] = {
            "model": which,
            "backend": predictor.backend,
            "windows": len(analysis.windows),
            "median_s": round(median, 3),
            "real_time_factor": round(recording.duration_s / median, 1),
            "windows_per_s": round(len(analysis.windows) / median, 1),
        }
    emit("analyze_throughput", results)


if __name__ == "__main__":
    main()
