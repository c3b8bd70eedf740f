"""How much faster than real time the motor-unit simulator generates EMG (offline, one process, one thread of ours).

    .venv/bin/python -m benchmarks.bench_simulator --seconds 20 --repeats 3

Each case generates ``--seconds`` of a sustained 50 %MVC contraction (the costliest profile: every muscle active,
most units recruited) with the default artifacts (mains, wander, noise at 30 dB), after a 1 s warm-up, and reports
the median over ``--repeats`` fresh simulators of simulated seconds per wall-clock second and per CPU second of
this process (all threads), plus the construction time. Real-time factor = simulated s / wall s.
The simulator limits BLAS to one thread while it generates a block (its matrix products are small; on a loaded
2-core machine spinning OpenBLAS threads made 256 channels 10x slower); ``--blas-threads N`` sets the process-wide
limit around that (threadpoolctl), for comparison.
"""

from __future__ import annotations

import argparse
import statistics
import time

from benchmarks.common import emit

CASES = (
    ("ring8 x 2000 Hz (Myo-like armband, 8 forearm muscles)", "ring8", 2000.0),
    ("grid8x8 x 2048 Hz (64 ch HD-EMG)", "grid8x8", 2048.0),
    ("grid16x16 x 2048 Hz (256 ch HD-EMG)", "grid16x16", 2048.0),
    ("needle x 10000 Hz", "needle", 10000.0),
    ("needle fibres x 16384 Hz (fibre-level tissue model, moderate neuropathy)", "needle", 16384.0),
    ("grid16x16 x 2048 Hz endurance fatigue (256 ch, fatigue_model=endurance)", "grid16x16", 2048.0),
)
CASE_SETTINGS: dict[str, dict[str, str]] = {
    "needle fibres x 16384 Hz (fibre-level tissue model, moderate neuropathy)": {
        "tissue": "fibres", "condition": "neuropathy", "severity": "moderate"
    },
    "grid16x16 x 2048 Hz endurance fatigue (256 ch, fatigue_model=endurance)": {"fatigue_model": "endurance"},
}


def measure(layout: str, fs: float, seconds: float, settings: dict[str, str] | None = None) -> dict[str, float]:
    from simulators.emg import EmgSimulator, SimulationConfig

    tissue = settings or {}
    started = time.perf_counter()
    simulator = EmgSimulator(
        SimulationConfig(layout=layout, fs=fs, profile="hold", mvc_percent=50.0, seed=1, **tissue)  # type: ignore[arg-type]
    )
    built = time.perf_counter() - started
    simulator.generate(1.0)
    wall, cpu = time.perf_counter(), time.process_time()
    data = simulator.generate(seconds)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert data.shape == (int(round(seconds * fs)), simulator.n_channels)
    return {"build_s": built, "wall_s": wall, "cpu_s": cpu, "channels": simulator.n_channels}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", help="run only the cases whose title contains this text (e.g. 'fibres')")
    parser.add_argument("--blas-threads", type=int, help="limit BLAS threads (default: the library's own choice)")
    args = parser.parse_args()
    if args.blas_threads:
        import numpy  # noqa: F401 - load OpenBLAS so that the limit applies to it
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.blas_threads, user_api="blas")
    results = {}
    for title, layout, fs in CASES:
        if args.only and args.only not in title:
            continue
        runs = [measure(layout, fs, args.seconds, CASE_SETTINGS.get(title)) for _ in range(args.repeats)]
        wall = statistics.median(run["wall_s"] for run in runs)
        cpu = statistics.median(run["cpu_s"] for run in runs)
        results[title] = {
            "layout": layout,
            "fs_hz": fs,
            "channels": runs[0]["channels"],
            "simulated_s": args.seconds,
            "median_wall_s": round(wall, 3),
            "real_time_factor": round(args.seconds / wall, 1),
            "real_time_factor_per_cpu_s": round(args.seconds / cpu, 1),
            "median_build_s": round(statistics.median(run["build_s"] for run in runs), 3),
        }
    settings = {"seconds": args.seconds, "repeats": args.repeats, "blas_threads": args.blas_threads or "default"}
    emit("simulator_generation_speed", {**settings, "cases": results})


if __name__ == "__main__":
    main()
