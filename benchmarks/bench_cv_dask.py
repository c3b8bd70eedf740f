"""Cross-validation wall time of the needle contenders as Dask tasks on 1 and 2 local worker processes (and, when
asked, in this process), models.needle_cv_tasks, on the shared clinical needle set.

    .venv/bin/python -m benchmarks.bench_cv_dask --workers 1 2          # ~5 min on a quiet 2-core machine
    .venv/bin/python -m benchmarks.bench_cv_dask --workers 2 --in-process  # the earlier comparison, ~5 min

Defaults to the two convolutional networks of the previous figures (the CV's costly part: 10 fits of similar cost,
so 2 workers can halve it; 5 equal folds of one network alone cannot beat 3 fold times: 1.67x at most). The data is
prepared once here (from the per-user signal cache) and the workers memory-map it. Each phase reports its wall time,
its CPU time (this process and its finished children: the workers), each worker's CPU time (its start and imports
included) and the load average before and after. On a busy machine wall times do not show a speed-up: the kernel
shares the CPU out per session (autogroup), so two workers of one command get no more of it than one; the busiest
worker's CPU time is then the figure to compare. JSON on stdout, with the largest out-of-fold difference from the
first run (0.0: identical).
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from typing import Any

import numpy as np

from benchmarks.common import emit, load_average

DEFAULT_CONTENDERS = ["neurofusionnet (conv+features+graph+attention)", "1-D CNN (windows, mean)"]


def _cpu_seconds() -> float:
    """CPU of this process and of its children that have ended (a Dask phase's workers once its cluster closed)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _worker_cpu_seconds() -> float:
    return time.process_time()


class MeasuredRunner:
    """``TaskRunner``'s local cluster (``compute_heavy``) that also reads each worker's CPU time before it closes."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.worker_cpu_s: list[float] = []

    def __call__(self, function: Any, calls: list[tuple]) -> list:
        from monitor.cohort.cluster import ClusterOptions, connect

        with connect(ClusterOptions(workers=self.workers, dashboard=False, compute_heavy=True)) as client:
            results = client.gather([client.submit(function, *call, pure=False) for call in calls])
            self.worker_cpu_s = sorted(round(v, 1) for v in client.run(_worker_cpu_seconds).values())
        return results


def _phase(results: dict[str, Any], label: str, run: Any) -> Any:
    load, wall, cpu = load_average(), time.perf_counter(), _cpu_seconds()
    value = run()
    results[label] = {"wall_s": round(time.perf_counter() - wall, 1), "cpu_s": round(_cpu_seconds() - cpu, 1),
                      "load_before": load, "load_after": load_average()}
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/needle-emg-clinical")
    parser.add_argument("--contenders", nargs="+", default=DEFAULT_CONTENDERS)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="local Dask worker processes")
    parser.add_argument("--in-process", action="store_true", help="also the folds in this process, first")
    args = parser.parse_args()

    import torch

    from models.needle_corpus import scan
    from models.needle_cv_tasks import FoldPlan, cross_validated_probabilities
    from models.needle_features import DEFAULT_CACHE
    from models.needle_training import prepare

    torch.set_num_threads(1)  # as in each worker, so that the folds are computed alike (and compared exactly)
    infos = scan(args.data)
    plan = FoldPlan(with_mup=False, cache_dir=str(DEFAULT_CACHE))
    results: dict[str, Any] = {"recordings": len(infos), "contenders": args.contenders, "folds": plan.folds,
                               "cores": os.cpu_count()}
    data = _phase(results, "prepare", lambda: prepare(infos, plan.n_variants, plan.seed, DEFAULT_CACHE,
                                                      plan.with_mup))
    reference = None
    if args.in_process:
        reference = _phase(results, "in_process",
                           lambda: cross_validated_probabilities(data, args.contenders, plan))
    for workers in args.workers:
        runner = MeasuredRunner(workers)
        label = f"dask_{workers}_worker{'s' if workers > 1 else ''}"
        # wall time from cluster start to the last fold back, the shared data's writing included
        out = _phase(results, label, lambda runner=runner: cross_validated_probabilities(
            data, args.contenders, plan, runner))
        results[label]["worker_cpu_s"] = runner.worker_cpu_s
        if reference is None:
            reference = out
        results[label]["max_abs_probability_difference"] = max(
            float(np.max(np.abs(reference[name] - out[name]))) for name in args.contenders)
    base = results.get("dask_1_worker", results.get("in_process"))
    if base is not None:
        results["speedup_vs_1_worker" if "dask_1_worker" in results else "speedup_vs_in_process"] = {
            label: round(base["wall_s"] / phase["wall_s"], 2) for label, phase in results.items()
            if label.startswith("dask_")}
    emit("cv_dask", results)


if __name__ == "__main__":
    main()
