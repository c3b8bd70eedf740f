"""Does the needle model trained on real patients recognise the simulated ones? (fibre-level needle model)

    nice .venv/bin/python -m benchmarks.bench_sim_needle_model --seeds 8 --mvc 10

For each condition and severity, ``--seeds`` subjects of ``SimulationConfig(tissue="fibres")`` hold ``--mvc`` %MVC
(force) for 5 s at 16384 Hz with the default artifacts (50 Hz mains, wander, white noise at 30 dB), one needle site
each; the bundled needle model (``models.needle_model.load_needle_model``) reads each recording whole. Prints the
share of subjects given their own condition per group and per condition (with a Wilson 95 % interval over
subjects), the confusion counts, and the model's id. The issue's bar: >= 75 % per condition.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from benchmarks.common import emit

SIM_FS = 16384.0


def wilson(successes: int, total: int) -> list[float]:
    if total == 0:
        return [0.0, 1.0]
    p, z = successes / total, 1.96
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return [round(centre - half, 3), round(centre + half, 3)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--mvc", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--groups", help="comma-separated prefixes of the groups to run (default: all)")
    args = parser.parse_args()

    from models.needle_model import load_needle_model
    from simulators.emg import EmgSimulator, SimulationConfig
    from simulators.tissue import SEVERITIES

    model = load_needle_model()
    cases = [("healthy", "moderate")] + [(c, s) for c in ("myopathy", "neuropathy") for s in SEVERITIES]
    groups: dict[str, dict[str, int]] = {}
    per_condition: dict[str, list[int]] = {}
    for condition, severity in cases:
        name = condition if condition == "healthy" else f"{condition}/{severity}"
        if args.groups and not any(name.startswith(prefix) for prefix in args.groups.split(",")):
            continue
        counts: dict[str, int] = {}
        for seed in range(args.seeds):
            config = SimulationConfig(layout="needle", fs=SIM_FS, condition=condition, severity=severity,
                                      profile="hold", mvc_percent=args.mvc, tissue="fibres", seed=seed)
            signal = EmgSimulator(config).generate(args.seconds)[:, 0]
            label = model.predict_recording(signal, SIM_FS)["label"]
            counts[label] = counts.get(label, 0) + 1
            per_condition.setdefault(condition, []).append(int(label == condition))
        groups[name] = counts
    recognised = {
        condition: {"share": round(float(np.mean(hits)), 3), "ci95": wilson(sum(hits), len(hits)), "n": len(hits)}
        for condition, hits in per_condition.items()
    }
    emit("sim_needle_model", {"model_id": model.model_id, "mvc_percent": args.mvc, "seeds": args.seeds,
                              "recognised": recognised, "labels_per_group": groups})


if __name__ == "__main__":
    main()
