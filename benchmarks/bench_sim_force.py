"""Recruitment at matched force in the fibre-level needle model: units, MVC, drive, units firing and their rate.

    nice .venv/bin/python -m benchmarks.bench_sim_force --seeds 3 --mvc 10

For each condition and severity, ``--seeds`` subjects (``tissue="fibres"``); the force model's drive for ``--mvc``
%MVC of a healthy muscle, the units it recruits and their mean rate (steady state, from the pool's rate coding);
means over subjects.
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.common import emit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--mvc", type=float, default=10.0)
    args = parser.parse_args()

    from simulators.emg import EmgSimulator, SimulationConfig
    from simulators.tissue import SEVERITIES

    cases = [("healthy", "moderate")] + [(c, s) for c in ("myopathy", "neuropathy") for s in SEVERITIES]
    table = {}
    for condition, severity in cases:
        rows = []
        for seed in range(args.seeds):
            sim = EmgSimulator(SimulationConfig(layout="needle", fs=10000.0, condition=condition, severity=severity,
                                                profile="hold", mvc_percent=args.mvc, tissue="fibres", seed=seed))
            drive = float(sim.excitation(np.array([args.mvc / 100.0]))[0])
            rates = sim.pool.firing_rate(np.full(sim.n_motor_units, drive), slice(0, sim.n_motor_units))
            rows.append([sim.n_motor_units, sim.force.max_force, drive, (rates > 0).sum(), rates[rates > 0].mean()])
        mean = np.mean(rows, axis=0)
        name = condition if condition == "healthy" else f"{condition}/{severity}"
        table[name] = {"units": round(mean[0], 1), "mvc_x_healthy": round(mean[1], 2), "drive": round(mean[2], 3),
                       "units_firing": round(mean[3], 1), "mean_rate_hz": round(mean[4], 1)}
    emit("sim_force", {"mvc_percent": args.mvc, "seeds": args.seeds, "groups": table})


if __name__ == "__main__":
    main()
