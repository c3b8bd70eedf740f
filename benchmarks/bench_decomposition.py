"""Motor-unit decomposition (dsp.decomposition, dsp.decomposition_live) against a reference and against the truth.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.bench_decomposition --sections real live simulated

- real: the 64-channel vastus lateralis file (32.5 s, 2048 Hz), decomposed offline as a whole; each of the 5
  reference units of the file (the amplifier maker's decomposition, columns 64-68) against the unit found that
  agrees best: rate of agreement (RoA = common / (common + only ours + only reference), +-0.5 ms after aligning
  the lag within +-50 ms), sensitivity, precision; wall time;
- live: calibrated on a segment (default 8-20 s) only, then the whole file streamed through the causal live
  decomposer in 32-sample chunks (16 ms, an LSL amplifier's chunk): RoA on the whole file and outside the
  calibration segment, processing time per chunk (median, p99) and the real-time factor; that random chunking finds
  the same discharges as one block;
- simulated: grids 8x8 and 13x5 at a 20 % MVC hold; per unit found, sensitivity and precision against the true
  discharges of the simulated unit it matches; the share of active units found by size (the simulator's
  recruitment rank: size 1 = smallest, up to ~30).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from benchmarks.common import REPO, emit

HDEMG = REPO.parent / "shared" / "data" / "hdemg-vastus-lateralis" / "otb_testfile.mat"
FS = 2048.0
TOLERANCE = 1  # samples: +-0.5 ms at 2048 Hz
MAX_LAG = 100  # samples: +-49 ms, more than a unit's source lags its discharge (extension + MUAP)
SIZE_BINS = (1.0, 2.0, 4.0, 7.0, 40.0)


def load_reference_file() -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """(grid (N, 64) µV in the file's column order, the 5 reference discharge trains (sample indices), force %MVC)."""
    import scipy.io

    table = scipy.io.loadmat(HDEMG)["Data"][0, 0]
    return table[:, :64].astype(np.float64), [np.flatnonzero(table[:, c]) for c in range(64, 69)], table[:, 74]


def simulated_grid(
    layout: str, seconds: float, mvc_percent: float, seed: int
) -> tuple[np.ndarray, dict[int, np.ndarray], np.ndarray]:
    """(data (N, C) µV, true discharges per active unit (sample of the first sample at or after the discharge),
    unit sizes) of a simulated hold without fatigue."""
    from simulators.emg import EmgSimulator, SimulationConfig

    config = SimulationConfig(layout=layout, fs=FS, profile="hold", mvc_percent=mvc_percent, seed=seed,
                              record_spikes=True, fatigue_rate=0.0)  # fmt: skip
    simulator = EmgSimulator(config)
    data = simulator.generate(seconds).astype(np.float64)
    units = np.concatenate([block[0] for block in simulator.spike_log])
    times = np.concatenate([block[1] for block in simulator.spike_log])
    samples = np.ceil(times * FS - 1e-9).astype(np.int64)
    inside = samples < data.shape[0]
    truth = {int(u): samples[inside & (units == u)] for u in np.unique(units[inside])}
    return data, truth, simulator.pool.size


def score_against_truth(found: list[np.ndarray], truth: dict[int, np.ndarray]) -> list[dict[str, Any]]:
    """Each found unit against the true unit it agrees with best."""
    from dsp.decomposition import agreement

    rows = []
    for index, train in enumerate(found):
        scored = [(unit, agreement(train, true, TOLERANCE, MAX_LAG)) for unit, true in truth.items()]
        unit, best = max(scored, key=lambda pair: pair[1].rate_of_agreement)
        rows.append({"found": index, "true_unit": unit, "sensitivity": round(best.sensitivity, 4),
                     "precision": round(best.precision, 4), "roa": round(best.rate_of_agreement, 4),
                     "lag_samples": best.lag})  # fmt: skip
    return rows


def real(starts: int) -> dict[str, Any]:
    from dsp.decomposition import DecompositionSettings, decompose, match_to_reference

    grid, reference, _ = load_reference_file()
    started = time.perf_counter()
    result = decompose(grid, FS, DecompositionSettings(starts=starts))
    wall = time.perf_counter() - started
    found = [unit.discharges for unit in result.units]
    matches = match_to_reference(found, reference, TOLERANCE, MAX_LAG)
    return {
        "starts": starts, "wall_s": round(wall, 1), "units": len(result.units),
        "sil": [round(unit.sil, 3) for unit in result.units],
        "rejected_below_sil": result.rejected_sil, "duplicates_removed": result.duplicates_removed,
        "reference": [_row(i, train, match) for i, (train, match) in enumerate(zip(reference, matches, strict=True))],
    }  # fmt: skip


def _row(index: int, train: np.ndarray, match: tuple[int, Any]) -> dict[str, Any]:
    unit, score = match
    return {"reference_unit": index, "discharges": int(len(train)), "unit": unit,
            "roa": round(score.rate_of_agreement, 4), "sensitivity": round(score.sensitivity, 4),
            "precision": round(score.precision, 4), "lag_samples": score.lag}  # fmt: skip


def stream(decomposition: Any, data: np.ndarray, chunks: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Discharges per unit from the live decomposer over ``data`` cut at ``chunks`` sizes, and seconds per chunk."""
    from dsp.decomposition_live import LiveDecomposer

    live = LiveDecomposer(decomposition)
    found: list[list[int]] = [[] for _ in range(live.n_units)]
    seconds = []
    position = 0
    for size in chunks:
        chunk = data[position : position + size]
        if len(chunk) == 0:
            break
        started = time.perf_counter()
        result = live.process(chunk, (position + np.arange(len(chunk))) / FS, position)
        seconds.append(time.perf_counter() - started)
        for unit, counter in zip(result.units.tolist(), result.counters.tolist(), strict=True):
            found[unit].append(counter)
        position += len(chunk)
    last = live.finish()
    for unit, counter in zip(last.units.tolist(), last.counters.tolist(), strict=True):
        found[unit].append(counter)
    return [np.asarray(train, dtype=np.int64) for train in found], np.asarray(seconds)


def live(starts: int, calibration: tuple[float, float], chunk: int) -> dict[str, Any]:
    from dsp.decomposition import DecompositionSettings, decompose, match_to_reference

    grid, reference, _ = load_reference_file()
    lo, hi = int(calibration[0] * FS), int(calibration[1] * FS)
    started = time.perf_counter()
    result = decompose(grid[lo:hi], FS, DecompositionSettings(starts=starts))
    calibration_s = time.perf_counter() - started
    sizes = np.full(grid.shape[0] // chunk + 1, chunk)
    found, seconds = stream(result, grid, sizes)
    random_sizes = np.random.default_rng(0).integers(1, 400, grid.shape[0])
    found_random, _ = stream(result, grid, random_sizes)
    chunk_invariant = all(np.array_equal(a, b) for a, b in zip(found, found_random, strict=True))
    whole = match_to_reference(found, reference, TOLERANCE, MAX_LAG)
    outside = [np.concatenate([train[train < lo], train[train >= hi]]) for train in found]
    reference_outside = [np.concatenate([train[train < lo], train[train >= hi]]) for train in reference]
    outside_matches = match_to_reference(outside, reference_outside, TOLERANCE, MAX_LAG)
    return {
        "calibration_s": list(calibration), "starts": starts, "calibration_wall_s": round(calibration_s, 1),
        "units": len(result.units), "chunk_samples": chunk, "chunk_invariant": chunk_invariant,
        "chunk_ms_median": round(float(np.median(seconds)) * 1e3, 3),
        "chunk_ms_p99": round(float(np.percentile(seconds, 99)) * 1e3, 3),
        "real_time_factor": round(grid.shape[0] / FS / float(seconds.sum()), 1),
        "detection_delay_ms": round(result.settings.peak_half_window_s * 1e3, 1),
        "whole_file": [_row(i, t, m) for i, (t, m) in enumerate(zip(reference, whole, strict=True))],
        "outside_calibration": [_row(i, t, m) for i, (t, m) in enumerate(zip(reference_outside, outside_matches,
                                                                             strict=True))],
    }  # fmt: skip


def simulated(layouts: list[str], seeds: int, seconds: float, mvc: float, starts: int) -> dict[str, Any]:
    from dsp.decomposition import DecompositionSettings, decompose

    out: dict[str, Any] = {"seconds": seconds, "mvc_percent": mvc, "starts": starts}
    for layout in layouts:
        units, found_sizes, active_sizes, walls = [], [], [], []
        for seed in range(seeds):
            data, truth, size = simulated_grid(layout, seconds, mvc, seed)
            started = time.perf_counter()
            result = decompose(data, FS, DecompositionSettings(starts=starts))
            walls.append(time.perf_counter() - started)
            rows = score_against_truth([unit.discharges for unit in result.units], truth)
            units += [{**row, "seed": seed, "size": round(float(size[row["true_unit"]]), 2)} for row in rows]
            matched = {row["true_unit"] for row in rows if row["sensitivity"] >= 0.9 and row["precision"] >= 0.9}
            active_sizes += [float(size[unit]) for unit in truth]
            found_sizes += [float(size[unit]) for unit in matched]
        sensitivity = np.array([row["sensitivity"] for row in units])
        precision = np.array([row["precision"] for row in units])
        bins = []
        for lo, hi in zip(SIZE_BINS[:-1], SIZE_BINS[1:], strict=True):
            active = sum(lo <= s < hi for s in active_sizes)
            got = sum(lo <= s < hi for s in found_sizes)
            bins.append({"size": f"{lo:g}-{hi:g}", "active": active, "found": got,
                         "share": round(got / active, 3) if active else None})  # fmt: skip
        out[layout] = {
            "units_found": len(units),
            "active_units": len(active_sizes),
            "sensitivity_min": round(float(sensitivity.min()), 4) if units else None,
            "sensitivity_median": round(float(np.median(sensitivity)), 4) if units else None,
            "precision_min": round(float(precision.min()), 4) if units else None,
            "precision_median": round(float(np.median(precision)), 4) if units else None,
            "units_at_90_90": int(((sensitivity >= 0.9) & (precision >= 0.9)).sum()),
            "share_found_by_size": bins,
            "decompose_wall_s": [round(w, 1) for w in walls],
            "per_unit": units,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", nargs="+", default=["real", "live", "simulated"],
                        choices=("real", "live", "simulated"))  # fmt: skip
    parser.add_argument("--starts", type=int, default=64, help="fixed-point starts (default 64)")
    parser.add_argument("--calibration", type=float, nargs=2, default=(8.0, 20.0), help="live calibration (s)")
    parser.add_argument("--chunk", type=int, default=32, help="live chunk in samples (default 32)")
    parser.add_argument("--layouts", nargs="+", default=["grid8x8", "grid13x5"])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0, help="simulated hold length")
    parser.add_argument("--mvc", type=float, default=20.0)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    if "real" in args.sections:
        results["real"] = real(args.starts)
    if "live" in args.sections:
        results["live"] = live(args.starts // 2, tuple(args.calibration), args.chunk)
    if "simulated" in args.sections:
        results["simulated"] = simulated(args.layouts, args.seeds, args.seconds, args.mvc, args.starts // 2)
    emit("decomposition", results)


if __name__ == "__main__":
    main()
