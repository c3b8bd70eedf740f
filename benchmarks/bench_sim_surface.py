"""The fibre-level surface model (``tissue="fibres"`` on a ring or grid): amplitude at a given force, the fat
layer's effect on it, whether the conditions separate by amplitude alone, and what gain-free features leave.

    nice .venv/bin/python -m benchmarks.bench_sim_surface --seeds 3
    nice .venv/bin/python -m benchmarks.bench_sim_surface --only fat --seeds 3
    nice .venv/bin/python -m benchmarks.bench_sim_surface --only real   # the shared vastus-lateralis grid, same RMS

Amplitude: RMS after a 20-450 Hz band-pass, seconds 0.5-3 of a noise-free hold (no artifacts, fresh muscle),
mean over channels (grid: monopolar; ring: bipolar, the channel nearest the flexor digitorum superficialis in a
wrist-flexion hold is not singled out, the channel maximum is reported too). Gain-free features: the spectrum's
mean / median frequency, and the channels' RMS spread (CoV) and kurtosis of the summed signal, which an
amplifier gain cannot change.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from scipy import signal

from benchmarks.common import emit

LEVELS = (10.0, 20.0, 50.0, 80.0)
GROUPS = (
    ("healthy", "moderate"),
    ("myopathy", "mild"),
    ("myopathy", "moderate"),
    ("myopathy", "severe"),
    ("neuropathy", "mild"),
    ("neuropathy", "moderate"),
    ("neuropathy", "severe"),
)
VASTUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "hdemg-vastus-lateralis" / "otb_testfile.mat"


def band_rms(data: np.ndarray, fs: float) -> np.ndarray:
    sos = signal.butter(4, (20.0, 450.0), btype="bandpass", fs=fs, output="sos")
    filtered = signal.sosfiltfilt(sos, data, axis=0)
    return np.sqrt((filtered**2).mean(axis=0))


def features(data: np.ndarray, fs: float) -> dict[str, float]:
    """Amplitude and gain-free features of a hold."""
    rms = band_rms(data, fs)
    freqs, psd = signal.welch(data - data.mean(axis=0), fs=fs, nperseg=512, axis=0)
    band = (freqs >= 20) & (freqs <= 450)
    total = psd[band].sum(axis=1)
    cumulative = np.cumsum(total)
    summed = data.sum(axis=1) - data.sum(axis=1).mean()
    return {
        "rms_mean_uv": float(rms.mean()),
        "rms_max_uv": float(rms.max()),
        "mnf_hz": float((freqs[band] * total).sum() / total.sum()),
        "mdf_hz": float(np.interp(cumulative[-1] / 2.0, cumulative, freqs[band])),
        "rms_cov": float(rms.std() / rms.mean()),
        "kurtosis": float(((summed - summed.mean()) ** 4).mean() / summed.var() ** 2),
    }


def hold(layout: str, condition: str, severity: str, mvc: float, seed: int, fat_mm: float | None = None) -> dict:
    from simulators import emg
    from simulators.emg import EmgSimulator, SimulationConfig

    config = SimulationConfig(
        layout=layout, condition=condition, severity=severity, profile="hold", mvc_percent=mvc,
        gesture="wrist_flexion" if layout.startswith("ring") else None, tissue="fibres", artifacts=(),
        fatigue_rate=0.0, seed=seed,
    )
    # the templates do not depend on the force: build each subject's once (same seed, same draws)
    key = (layout, condition, severity, seed, fat_mm)
    if emg.surface.surface_templates is not _cached_templates:
        _TEMPLATES["original"] = emg.surface.surface_templates
        emg.surface.surface_templates = _cached_templates
    _TEMPLATES["key"] = key
    original = emg.draw_subject
    if fat_mm is not None:  # the same subject with another fat layer
        def with_fat(condition: str, rng: np.random.Generator):  # noqa: ANN202
            from dataclasses import replace

            return replace(original(condition, rng), fat_thickness_mm=fat_mm)

        emg.draw_subject = with_fat
    try:
        sim = EmgSimulator(config)
    finally:
        emg.draw_subject = original
    data = sim.generate(3.0)[int(0.5 * sim.fs) :].astype(np.float64)
    return {"fat_mm": sim.subject.fat_thickness_mm, **features(data, sim.fs), "drive": sim.ground_truth()["drive"]}


_TEMPLATES: dict = {}


def _cached_templates(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
    key = _TEMPLATES["key"]
    if key not in _TEMPLATES:
        _TEMPLATES[key] = _TEMPLATES["original"](*args, **kwargs)
    return _TEMPLATES[key]


def real_vastus() -> dict:
    """RMS (20-450 Hz) of the shared monopolar 13x5 vastus-lateralis grid in 1 s windows, by force (%MVC)."""
    from scipy import io

    mat = io.loadmat(str(VASTUS))
    data = np.asarray(mat["Data"][0, 0], dtype=np.float64)
    fs = float(np.ravel(mat["SamplingFrequency"])[0])
    grid, force = data[:, :64], data[:, 74]
    sos = signal.butter(4, (20.0, 450.0), btype="bandpass", fs=fs, output="sos")
    filtered = signal.sosfiltfilt(sos, grid, axis=0)
    window = int(fs)
    rows = []
    for start in range(0, filtered.shape[0] - window, window):
        part = filtered[start : start + window]
        rows.append((float(force[start : start + window].mean()), float(np.sqrt((part**2).mean(axis=0)).mean())))
    plateau = force > 0.9 * force.max()
    return {
        "windows_force_pct_rms_uv": [(round(f, 1), round(r, 1)) for f, r in rows],
        "plateau": {"force_pct": float(force[plateau].mean()), **features(grid[plateau], fs)},
    }


def speed(seconds: float = 10.0) -> dict[str, float]:
    """Build time and streaming speed of a 256-channel (grid16x16) fibre-level surface hold at 2048 Hz, 50 %MVC,
    read in 64-sample chunks as a live stream is; wall and CPU seconds, with the load average."""
    import os
    import time

    from simulators.emg import EmgSimulator, SimulationConfig

    wall, cpu = time.perf_counter(), time.process_time()
    sim = EmgSimulator(
        SimulationConfig(layout="grid16x16", profile="hold", mvc_percent=50.0, tissue="fibres", seed=0)
    )
    build_wall, build_cpu = time.perf_counter() - wall, time.process_time() - cpu
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(int(seconds * sim.fs / 64)):
        sim.read(64)
    run_wall, run_cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "channels": sim.n_channels,
        "units": sim.n_motor_units,
        "build_wall_s": build_wall,
        "build_cpu_s": build_cpu,
        "realtime_factor_wall": seconds / run_wall,
        "realtime_factor_cpu": seconds / run_cpu,
        "load_average": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run from this one on")
    parser.add_argument("--layout", default="grid8x8")
    parser.add_argument("--only", choices=("levels", "conditions", "fat", "real", "speed", "all"), default="all")
    args = parser.parse_args()
    if args.seeds < 1:
        raise SystemExit("--seeds must be at least 1")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    out: dict[str, object] = {"layout": args.layout, "seeds": list(seeds)}
    if args.only in ("levels", "all"):
        out["healthy_by_level"] = {
            f"{mvc:g}": [hold(args.layout, "healthy", "moderate", mvc, seed) for seed in seeds]
            for mvc in LEVELS
        }
    if args.only in ("conditions", "all"):
        out["conditions_at_50"] = {
            f"{c}/{s}": [hold(args.layout, c, s, 50.0, seed) for seed in seeds] for c, s in GROUPS
        }
    if args.only in ("fat", "all"):
        out["fat_at_50"] = {
            f"{fat:g}": [hold(args.layout, "healthy", "moderate", 50.0, seed, fat) for seed in seeds]
            for fat in (1.0, 3.0, 6.0, 10.0)
        }
    if args.only in ("real", "all") and VASTUS.exists():
        out["real_vastus_lateralis"] = real_vastus()
    if args.only == "speed":
        out["speed"] = speed()
    emit("sim_surface", out)
    summary(out)


def summary(out: dict) -> None:
    def line(name: str, rows: list[dict]) -> str:
        keys = ("rms_mean_uv", "rms_max_uv", "mnf_hz", "mdf_hz", "rms_cov", "kurtosis", "drive")
        means = {k: float(np.mean([r[k] for r in rows])) for k in keys}
        lo = min(r["rms_mean_uv"] for r in rows)
        hi = max(r["rms_mean_uv"] for r in rows)
        return f"{name:24s} " + " ".join(f"{k}={v:.3g}" for k, v in means.items()) + f" rms_range={lo:.0f}-{hi:.0f}"

    for section in ("healthy_by_level", "conditions_at_50", "fat_at_50"):
        for name, rows in out.get(section, {}).items():
            print(section, line(name, rows))
    if math.isfinite(0.0) and "real_vastus_lateralis" in out:
        print("real", out["real_vastus_lateralis"]["windows_force_pct_rms_uv"])


if __name__ == "__main__":
    main()
