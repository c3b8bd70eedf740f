"""NeuroFusionNet inference speed: batch-1 latency at 8 and 64 channels, batched throughput, ONNX Runtime vs torch.

    .venv/bin/python -m benchmarks.bench_model_inference --repeats 300

For each channel count a model of the shipped architecture (ring8 / grid8x8 graph, 11 handcrafted features) is
saved and exported to ONNX in a temporary folder. Timed per call (perf_counter, after a warm-up):
- ``network``: the network alone on prepared inputs (windows, features, mask), ONNX Runtime and torch eager;
- ``predictor``: ``Predictor.predict`` as the worker calls it (feature extraction from the window included).
Batched throughput: windows per second through ``Predictor.predict`` with batches of 64 windows.
Threads: 1 for both runtimes (the worker's default; the machine is shared), unless --threads says otherwise.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import emit


def build(directory: Path, layout_name: str, fs: float, window_samples: int) -> Path:
    import torch

    from dsp.features import MODEL_FEATURES
    from models.checkpoint import ModelCard, save_checkpoint
    from models.export import export_checkpoint
    from models.graphs import layout_edges
    from models.neurofusionnet import NetworkConfig, NeuroFusionNet
    from simulators.electrodes import ElectrodeLayout

    layout = ElectrodeLayout.from_name(layout_name)
    config = NetworkConfig(n_channels=layout.n_channels, n_classes=3, n_features=len(MODEL_FEATURES))
    torch.manual_seed(0)
    model = NeuroFusionNet(config, layout_edges(layout)).eval()
    card = ModelCard(f"bench-{layout_name}", ["healthy", "myopathy", "neuropathy"], layout.n_channels, fs,
                     window_samples, layout.to_dict(), list(MODEL_FEATURES))
    path = save_checkpoint(directory / f"{layout_name}.pt", model, card)
    export_checkpoint(path)
    return path


def timings_ms(call, repeats: int) -> dict[str, float]:
    for _ in range(max(5, repeats // 10)):
        call()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append(1000.0 * (time.perf_counter() - started))
    values = np.asarray(samples)
    return {"median_ms": round(float(np.median(values)), 3), "p90_ms": round(float(np.percentile(values, 90)), 3),
            "p99_ms": round(float(np.percentile(values, 99)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--samples", type=int, default=400, help="window length in samples (default 400)")
    args = parser.parse_args()

    import torch

    from models.predictor import handcrafted_features, load_predictor

    torch.set_num_threads(args.threads)
    fs = 2048.0
    rng = np.random.default_rng(0)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for layout_name in ("ring8", "grid8x8"):
            path = build(Path(folder), layout_name, fs, args.samples)
            row: dict[str, dict] = {}
            for backend in ("onnx", "torch"):
                predictor = load_predictor(path, backend=backend, threads=args.threads)
                n_channels = predictor.card.n_channels
                one = (rng.standard_normal((1, n_channels, args.samples)) * 50).astype(np.float32)
                mask = np.ones((1, n_channels), bool)
                features = handcrafted_features(one, fs, predictor.card.feature_names)
                row[f"network_{backend}"] = timings_ms(
                    lambda p=predictor, o=one, f=features, m=mask: p._run_network(o, f, m.astype(np.float32)),
                    args.repeats)
                row[f"predictor_{backend}"] = timings_ms(lambda p=predictor, o=one, m=mask: p.predict(o, m, fs),
                                                         args.repeats)
                batch = (rng.standard_normal((args.batch, n_channels, args.samples)) * 50).astype(np.float32)
                batch_mask = np.ones((args.batch, n_channels), bool)
                batched = timings_ms(lambda p=predictor, b=batch, m=batch_mask: p.predict(b, m, fs),
                                     max(10, args.repeats // 10))
                row[f"batched_{backend}"] = {**batched,
                                             "windows_per_s": round(1000.0 * args.batch / batched["median_ms"])}
            results[f"{n_channels}ch_x_{args.samples}"] = row
    emit("model_inference", {"threads": args.threads, "batch": args.batch, "results": results})


if __name__ == "__main__":
    main()
