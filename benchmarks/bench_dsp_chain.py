"""Real-time factor of the DSP chain: causal filters -> 200/50 ms windows -> features -> fatigue, + quality.

    .venv/bin/python -m benchmarks.bench_dsp_chain --channels 8 64 256 --duration 20

The signal (band-limited noise, µV, with mains) is made up front; the clock (process CPU time) runs only over the
chain, fed in LSL-sized chunks. Real-time factor = seconds of signal / CPU seconds spent. Two feature
sets: what the engine needs for fatigue and the views (RMS, MNF, MDF, FInsm5) and that plus the model's features.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.common import emit


def synthetic_emg(n_samples: int, n_channels: int, fs: float, seed: int = 0) -> np.ndarray:
    from scipy import signal

    rng = np.random.default_rng(seed)
    sos = signal.butter(2, (40, 250), btype="bandpass", fs=fs, output="sos")
    x = signal.sosfilt(sos, rng.standard_normal((n_samples, n_channels)).astype(np.float32), axis=0)
    return (x * 200 + 50 * np.sin(2 * np.pi * 50 * np.arange(n_samples) / fs)[:, None]).astype(np.float32)


def run_chain(samples: np.ndarray, fs: float, feature_names: tuple[str, ...], chunk: int) -> dict[str, object]:
    """Each stage runs as its own pass over the whole signal, in the same chunks and batches as live, so that one
    process_time() pair per stage measures it (process_time() is a slow system call on some hosts: calling it
    around every chunk would cost more than the chunk)."""
    from dsp.fatigue import FatigueTracker
    from dsp.features import compute_features
    from dsp.filters import default_chain
    from dsp.quality import QualityMonitor
    from dsp.windows import Windower

    n_samples, n_channels = samples.shape
    starts = range(0, n_samples, chunk)
    timestamps = np.arange(n_samples) / fs
    cpu: dict[str, float] = {}

    chain = default_chain(fs, n_channels, mains_hz=50.0)
    t0 = time.process_time()
    filtered = [chain.process(samples[start : start + chunk])[0] for start in starts]
    cpu["filters"] = time.process_time() - t0

    windower = Windower(fs, n_channels, 200.0, 50.0)
    t0 = time.process_time()
    batches = [
        windower.push(block, timestamps[start : start + chunk], start)
        for block, start in zip(filtered, starts, strict=True)
    ]
    cpu["windows"] = time.process_time() - t0
    batches = [batch for batch in batches if batch]

    t0 = time.process_time()
    features = [compute_features(np.stack([w.data for w in batch]), fs, feature_names) for batch in batches]
    cpu["features"] = time.process_time() - t0

    tracker = FatigueTracker(fs, n_channels)
    # the signal is one long contraction: calibrate rest low so every channel contracts and the trend fits run
    tracker.set_rest_level(np.full(n_channels, 1.0))
    t0 = time.process_time()
    for batch, values in zip(batches, features, strict=True):
        for index, window in enumerate(batch):
            tracker.update(window.last_timestamp, values["MNF"][index], values["MDF"][index],
                           values["FInsm5"][index], values["RMS"][index])  # fmt: skip
    cpu["fatigue"] = time.process_time() - t0

    quality = QualityMonitor(fs, n_channels)
    t0 = time.process_time()
    for start in starts:
        quality.update(samples[start : start + chunk], float(timestamps[min(start + chunk, n_samples) - 1]))
    cpu["quality"] = time.process_time() - t0

    seconds = n_samples / fs
    total = sum(cpu.values())
    return {
        "signal_s": seconds,
        "cpu_s": round(total, 4),
        "real_time_factor": round(seconds / total, 1),
        "real_time_factor_without_quality": round(seconds / (total - cpu["quality"]), 1),
        "windows": sum(len(batch) for batch in batches),
        "cpu_ms_per_signal_s_by_stage": {name: round(value / seconds * 1000, 3) for name, value in cpu.items()},
    }


def main() -> None:
    from dsp.features import MODEL_FEATURES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, nargs="+", default=[8, 64, 256])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of signal per channel count")
    parser.add_argument("--fs", type=float, default=2048.0)
    parser.add_argument("--chunk", type=int, default=32, help="samples per incoming chunk (LSL-sized)")
    args = parser.parse_args()
    engine_features = ("RMS", "MNF", "MDF", "FInsm5")
    feature_sets = {"engine": engine_features, "engine+model": tuple(dict.fromkeys(engine_features + MODEL_FEATURES))}
    results = {}
    for n_channels in args.channels:
        samples = synthetic_emg(int(args.duration * args.fs), n_channels, args.fs)
        for label, names in feature_sets.items():
            results[f"{n_channels}ch_{label}"] = run_chain(samples, args.fs, names, args.chunk)
    emit(
        "dsp_chain",
        {
            "fs": args.fs,
            "chunk_samples": args.chunk,
            "window_ms": 200,
            "hop_ms": 50,
            "target": ">= 100x real time at 64 ch x 2048 Hz; 256 ch live (>= 1x) with headroom",
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
