"""Where the fibre-level grid differs from the real vastus-lateralis grid: the shared far field or the local signal.

    nice .venv/bin/python -m benchmarks.bench_sim_grid_far_field --seeds 2

Real: ``../shared/data/hdemg-vastus-lateralis`` (OT Bioelettronica 13x5 monopolar grid), the plateau of its force
ramp (samples above 90 % of its peak %MVC, ~26 %MVC). Simulated: ``--seeds`` subjects of the fibre-level surface
model (``tissue="fibres"``) on grid13x5 holding the same force for 4 s (the first 1 s dropped), no artifacts, no
fatigue. Both band-passed 20-450 Hz (zero phase). Per signal: monopolar RMS and MDF (mean over channels); the
common mode (the grid's mean) RMS over the channels' RMS; the RMS and MDF left after removing the common mode;
single-differential RMS and MDF along the fibres (each electrode minus the next one down its column, 8 mm). The
real file's channel order is taken to be the simulator's grid13x5 order (OTB numbering assumed, not checked).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import io, signal

from benchmarks.common import REPO, emit

FS = 2048.0
REAL = REPO.parent / "shared" / "data" / "hdemg-vastus-lateralis"


def median_frequency(x: np.ndarray) -> float:
    freqs, power = signal.welch(x, fs=FS, nperseg=256, axis=0)
    cumulative = np.cumsum(power, axis=0)
    return float(np.mean([np.interp(c[-1] / 2.0, c, freqs) for c in cumulative.T]))


def figures(x: np.ndarray, grid_index: np.ndarray) -> dict[str, float]:
    rms = np.sqrt(np.mean(x**2, axis=0))
    common = x.mean(axis=1, keepdims=True)
    local = x - common
    below = {(int(r), int(c)): i for i, (r, c) in enumerate(grid_index)}
    pairs = [(i, below[(int(r) + 1, int(c))]) for i, (r, c) in enumerate(grid_index) if (int(r) + 1, int(c)) in below]
    differential = np.column_stack([x[:, i] - x[:, j] for i, j in pairs])
    return {
        "monopolar_rms_uv": round(float(rms.mean()), 1),
        "monopolar_mdf_hz": round(median_frequency(x), 1),
        "common_mode_share": round(float(np.sqrt(np.mean(common**2)) / rms.mean()), 3),
        "without_common_rms_uv": round(float(np.sqrt(np.mean(local**2, axis=0)).mean()), 1),
        "without_common_mdf_hz": round(median_frequency(local), 1),
        "single_differential_rms_uv": round(float(np.sqrt(np.mean(differential**2, axis=0)).mean()), 1),
        "single_differential_mdf_hz": round(median_frequency(differential), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--real", type=Path, default=REAL)
    args = parser.parse_args()
    from simulators.emg import EmgSimulator, SimulationConfig

    band = signal.butter(4, (20.0, 450.0), btype="bandpass", fs=FS, output="sos")
    grid = EmgSimulator(SimulationConfig(layout="grid13x5", profile="rest", artifacts=())).layout.grid_index
    out: dict[str, object] = {}
    files = sorted(args.real.glob("*.mat"))
    if files:
        data = io.loadmat(files[0])["Data"]
        data = data[0, 0] if data.dtype == object else data
        force = data[:, 74]
        plateau = signal.sosfiltfilt(band, data[:, :64].astype(np.float64), axis=0)[force > 0.9 * force.max()]
        out["real"] = {"mvc_percent": round(float(np.median(force[force > 0.9 * force.max()])), 1),
                       **figures(plateau, np.asarray(grid))}
    for seed in range(args.seeds):
        config = SimulationConfig(layout="grid13x5", fs=FS, profile="hold", mvc_percent=26.0, tissue="fibres",
                                  seed=seed, artifacts=(), fatigue_rate=0.0)
        sim = EmgSimulator(config)
        held = signal.sosfiltfilt(band, sim.generate(4.0).astype(np.float64), axis=0)[int(FS) :]
        out[f"sim seed {seed}"] = figures(held, np.asarray(sim.layout.grid_index))
    emit("sim_grid_far_field", out)


if __name__ == "__main__":
    main()
