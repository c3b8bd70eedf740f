"""Cross-validation wall time of the needle contenders with the folds in this process and as Dask tasks on 2 local
worker processes (models.needle_cv_tasks), on the shared clinical needle set.

    .venv/bin/python -m benchmarks.bench_cv_dask --data ../shared/data/needle-emg-clinical

Defaults to the four statistics classifiers and the bundled network configuration (the full protocol's other
networks take ~25 min more and scale the same way). Each worker prepares the data itself from the per-user cache,
which the in-process run has filled. JSON on stdout, with the out-of-fold agreement between the two runs.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from benchmarks.common import emit, load_average

DEFAULT_CONTENDERS = ["LDA, time-domain features", "SVM, time-domain features",
                      "logistic regression, recording statistics", "gradient boosting, recording statistics",
                      "NFN - conv - graph"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/needle-emg-clinical")
    parser.add_argument("--contenders", nargs="+", default=DEFAULT_CONTENDERS)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import torch

    from models.needle_corpus import scan
    from models.needle_cv_tasks import FoldPlan, cross_validated_probabilities
    from models.needle_features import DEFAULT_CACHE
    from models.needle_training import prepare
    from monitor.cohort.cluster import ClusterOptions, TaskRunner

    torch.set_num_threads(1)
    infos = scan(args.data)
    plan = FoldPlan(with_mup=False, cache_dir=str(DEFAULT_CACHE))
    started = time.perf_counter()
    data = prepare(infos, plan.n_variants, plan.seed, DEFAULT_CACHE, plan.with_mup)
    prepare_s = time.perf_counter() - started
    results: dict[str, Any] = {"recordings": len(infos), "contenders": args.contenders, "folds": plan.folds,
                               "prepare_s": round(prepare_s, 1), "load_before": load_average()}
    started = time.perf_counter()
    here = cross_validated_probabilities(data, args.contenders, plan)
    results["in_process_s"] = round(time.perf_counter() - started, 1)
    results["load_between"] = load_average()
    started = time.perf_counter()
    tasks = cross_validated_probabilities(data, args.contenders, plan,
                                          TaskRunner(ClusterOptions(workers=args.workers, dashboard=False)))
    results[f"dask_{args.workers}_workers_s"] = round(time.perf_counter() - started, 1)
    results["speedup"] = round(results["in_process_s"] / results[f"dask_{args.workers}_workers_s"], 2)
    results["load_after"] = load_average()
    # in this process a contender's folds share one generator, as tasks each fold has its own: deterministic models
    # agree exactly, stochastic ones within their randomness
    results["max_abs_probability_difference"] = {name: float(np.max(np.abs(here[name] - tasks[name])))
                                                 for name in args.contenders}
    emit("cv_dask", results)


if __name__ == "__main__":
    main()
