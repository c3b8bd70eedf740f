"""What BLAS threads cost `train --mode needle`'s scikit-learn contenders, and that one thread gives the same answer.

    .venv/bin/python -m benchmarks.bench_needle_train_threads [--fold 0] [--people 0]

Prepares the shared clinical set as the protocol does (window statistics of every recording and its 3 perturbed
copies; no MUP measures: none of these contenders reads them), then fits each contender below on one CV fold's
training people and predicts its held-out recordings twice: with OpenBLAS's default threads (one per core) and with
``threadpoolctl.threadpool_limits(1)`` (what `train` now runs under). Prints wall and CPU of each and the largest
difference between the two runs' probabilities (JSON). On a busy 2-core machine the default threads spin for each
other; the fits are small (hundreds of rows x 124 statistics), so one thread is all they can use.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from benchmarks.common import REPO, emit

NEEDLE_SET = REPO.parent / "shared" / "data" / "needle-emg-clinical"
CONTENDERS = ("LDA, time-domain features", "SVM, time-domain features", "logistic regression, recording statistics")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fold", type=int, default=0, help="the CV fold whose training people are fitted")
    parser.add_argument("--people", type=int, default=0, help="use every n-th recording only (0: all)")
    args = parser.parse_args()
    from threadpoolctl import threadpool_info, threadpool_limits

    from models.needle_corpus import scan
    from models.needle_cv_tasks import FoldPlan, fold_probabilities
    from models.needle_features import DEFAULT_CACHE
    from models.needle_training import STATISTICS_MODEL, prepare

    infos = scan(NEEDLE_SET)
    if args.people:
        infos = infos[:: args.people]
    started = time.process_time()
    data = prepare(infos, 4, 0, DEFAULT_CACHE, with_mup=False)
    prepare_cpu = time.process_time() - started
    plan = FoldPlan(with_mup=False)
    rows = {}
    for name in (*CONTENDERS, STATISTICS_MODEL):
        runs = {}
        for label, limit in (("default_threads", None), ("one_thread", 1)):
            wall, cpu = time.perf_counter(), time.process_time()
            if limit is None:
                probabilities = fold_probabilities(data, name, args.fold, plan)
            else:
                with threadpool_limits(limits=limit):
                    probabilities = fold_probabilities(data, name, args.fold, plan)
            runs[label] = (time.perf_counter() - wall, time.process_time() - cpu, probabilities)
        rows[name] = {label: {"wall_s": round(w, 2), "cpu_s": round(c, 2)} for label, (w, c, _) in runs.items()}
        rows[name]["max_abs_probability_difference"] = float(
            np.abs(runs["default_threads"][2] - runs["one_thread"][2]).max())
        rows[name]["same_labels"] = bool(np.array_equal(runs["default_threads"][2].argmax(1),
                                                         runs["one_thread"][2].argmax(1)))  # fmt: skip
    emit("needle_train_threads", {
        "recordings": len(infos), "fold": args.fold, "prepare_cpu_s": round(prepare_cpu, 1),
        "blas": [{"api": i["internal_api"], "default_threads": i["num_threads"]} for i in threadpool_info()],
        "contenders": rows, "load_average_after": [round(v, 2) for v in os.getloadavg()],
    })


if __name__ == "__main__":
    main()
