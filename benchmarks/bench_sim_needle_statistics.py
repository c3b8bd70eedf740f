"""Where do simulated needle recordings fall among real ones, in the statistics the needle model reads?

    nice -n 10 .venv/bin/python -m benchmarks.bench_sim_needle_statistics --seeds 3 --mvc 10,30 \
        --real ../shared/data/needle-emg-clinical

Real side: every recording of the clinical set, conditioned and cut into windows as the needle model does
(``models.needle_features.recording_windows``, told the rate it was recorded at), then the recording-level
statistics the bundled statistics model reads (``models.needle_training.recording_statistics``: mean, SD, 10th and
90th percentile over windows of each of the 31 window statistics, 124 numbers). Simulated side: ``--seeds``
subjects of ``SimulationConfig(tissue="fibres")`` per condition and severity at each ``--mvc`` (force), the default
needle site and artifacts, ``--seconds`` at 16384 Hz, the same statistics. For every simulated recording and every
statistic: its percentile in the real recordings of the same diagnosis (0-100, the share of real values below it,
ties half) and its robust z (distance from the real median in units of the real IQR / 1.349). Printed per group
(condition/severity at one effort): the median percentile and median z over its subjects; per statistic and
condition: the median percentile over all its simulated subjects at each effort; and the statistics furthest outside
(largest median |z| over a condition's subjects). Nothing is fitted: a measurement of realism, not of a model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from benchmarks.common import emit

CONDITIONS = ("healthy", "myopathy", "neuropathy")
SIM_FS = 16384.0
SUMMARIES = ("mean", "sd", "p10", "p90")


def statistic_names() -> list[str]:
    from models.needle_features import FEATURE_NAMES

    return [f"{name}.{summary}" for summary in SUMMARIES for name in FEATURE_NAMES]


def recording_statistic_vector(signal: np.ndarray, source_fs: float) -> np.ndarray:
    """The 124 recording statistics of one recording at ``NEEDLE_FS`` (as the statistics model computes them)."""
    from models.needle_features import recording_windows
    from models.needle_training import recording_statistics

    _, features = recording_windows(np.asarray(signal, dtype=np.float32), source_fs)
    return recording_statistics([features])[0]


def real_statistics(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(statistics (R, 124), label index (R,)) of every real recording in ``folder``."""
    from models.needle_corpus import scan
    from models.needle_features import load_signals

    infos = scan(folder)
    signals = load_signals(infos)
    rows = [recording_statistic_vector(s, float(i.fs or SIM_FS)) for s, i in zip(signals, infos, strict=True)]
    return np.array(rows), np.array([CONDITIONS.index(i.label) for i in infos])


def simulated_statistics(condition: str, severity: str, mvc: float, seed: int, seconds: float) -> np.ndarray:
    from simulators.emg import EmgSimulator, SimulationConfig

    config = SimulationConfig(layout="needle", fs=SIM_FS, condition=condition, severity=severity, profile="hold",
                              mvc_percent=mvc, tissue="fibres", seed=seed)
    return recording_statistic_vector(EmgSimulator(config).generate(seconds)[:, 0], SIM_FS)


def percentile_in(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per column, the percentile (0-100) of ``values`` (N, F) among ``reference`` (R, F), ties counted half."""
    below = (reference[None, :, :] < values[:, None, :]).mean(axis=1)
    equal = (reference[None, :, :] == values[:, None, :]).mean(axis=1)
    return 100.0 * (below + 0.5 * equal)


def robust_z(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    median = np.median(reference, axis=0)
    spread = np.subtract(*np.percentile(reference, [75, 25], axis=0)) / 1.349
    return (values - median) / np.maximum(spread, 1e-9)


def parse_efforts(text: str) -> list[float]:
    try:
        efforts = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        efforts = []
    if not efforts or any(not 0 < e <= 100 for e in efforts):
        print(f"error: --mvc wants comma-separated %MVC values in (0, 100], got {text!r}", file=sys.stderr)
        raise SystemExit(2)
    return efforts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--mvc", default="10,30", help="comma-separated %%MVC (force) values")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--real", type=Path, required=True, help="the clinical needle set (label folders)")
    parser.add_argument("--groups", help="comma-separated prefixes of the groups to run (default: all)")
    parser.add_argument("--worst", type=int, default=12, help="statistics listed as furthest outside per condition")
    parser.add_argument("--save", type=Path, help="also write every recording's statistics here (.npz)")
    args = parser.parse_args()
    efforts = parse_efforts(args.mvc)
    if args.seeds < 1 or args.seconds < 1.0:
        print("error: --seeds must be >= 1 and --seconds >= 1", file=sys.stderr)
        raise SystemExit(2)
    if not args.real.is_dir():
        print(f"error: {args.real} is not a folder", file=sys.stderr)
        raise SystemExit(2)

    from simulators.emg import FIBRE_MODEL_VERSION
    from simulators.tissue import SEVERITIES

    names = statistic_names()
    real_x, real_y = real_statistics(args.real)
    cases = [("healthy", "moderate")] + [(c, s) for c in ("myopathy", "neuropathy") for s in SEVERITIES]
    groups: dict[str, dict] = {}
    per_condition: dict[tuple[str, float], dict[str, list[np.ndarray]]] = {}
    for mvc in efforts:
        for condition, severity in cases:
            name = condition if condition == "healthy" else f"{condition}/{severity}"
            if args.groups and not any(name.startswith(prefix) for prefix in args.groups.split(",")):
                continue
            reference = real_x[real_y == CONDITIONS.index(condition)]
            sim = np.array([simulated_statistics(condition, severity, mvc, seed, args.seconds)
                            for seed in range(args.seeds)])
            percentiles, z = percentile_in(reference, sim), robust_z(reference, sim)
            store = per_condition.setdefault((condition, mvc), {"percentile": [], "z": [], "value": []})
            store["percentile"].append(percentiles)
            store["z"].append(z)
            store["value"].append(sim)
            groups[f"{name}@{mvc:g}"] = {
                "median_percentile": dict(zip(names, np.round(np.median(percentiles, 0), 1).tolist(), strict=True)),
                "median_z": dict(zip(names, np.round(np.median(z, 0), 2).tolist(), strict=True)),
            }
    conditions_out: dict[str, dict] = {}
    for (condition, mvc), store in per_condition.items():
        percentiles, z = np.concatenate(store["percentile"]), np.concatenate(store["z"])
        values = np.concatenate(store["value"])
        median_z = np.median(z, 0)
        # the source rate's Nyquist is a constant of the recording chain (8.19 kHz on both sides), not of the muscle
        read = np.array(["source_nyquist_khz" not in n for n in names])
        median_percentile = np.median(percentiles, 0)
        order = np.argsort(-np.abs(np.where(read, median_z, 0.0)))[: args.worst]
        conditions_out[f"{condition}@{mvc:g}"] = {
            "subjects": int(len(z)),
            "median_percentile": dict(zip(names, np.round(median_percentile, 1).tolist(), strict=True)),
            "outside_10_90_share": round(float(np.mean(((median_percentile < 10) | (median_percentile > 90))[read])),
                                         3),
            "furthest_outside": [{"statistic": names[i], "median_z": round(float(median_z[i]), 2),
                                  "median_percentile": round(float(np.median(percentiles[:, i])), 1),
                                  "real_median": round(float(np.median(real_x[real_y == CONDITIONS.index(condition),
                                                                               i])), 4),
                                  "sim_median": round(float(np.median(values[:, i])), 4)} for i in order],
        }
    if args.save is not None:
        np.savez(args.save, names=np.array(names), real=real_x, real_labels=real_y,
                 **{f"{c}@{m:g}": np.concatenate(v["value"]) for (c, m), v in per_condition.items()})
    real_summary = {c: int(np.sum(real_y == k)) for k, c in enumerate(CONDITIONS)}
    emit("sim_needle_statistics", {"fibre_model": FIBRE_MODEL_VERSION, "seeds": args.seeds, "mvc_percent": efforts,
                                   "seconds": args.seconds, "real_recordings": real_summary,
                                   "per_condition": conditions_out, "per_group": groups})


if __name__ == "__main__":
    main()
