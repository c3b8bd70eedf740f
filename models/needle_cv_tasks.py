"""The needle contenders' cross-validation folds as independent tasks, so that a runner (``run_tasks``, e.g. Dask
tasks on a cluster: ``monitor.cohort.cluster.TaskRunner``) can spread them over processes or machines.

A task receives the recordings' descriptions, not their signals: each worker prepares the data itself (from the
per-user cache) once and keeps it for its next folds, so no signal passes through a scheduler. As tasks, every fold
draws from its own generator (seed, fold), so it gives the same probabilities wherever and in whatever order it runs;
in this process one generator runs through a contender's folds in order (the figures in docs/needle-model.md), so
the two ways agree within the folds' randomness, not to the digit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.needle_corpus import NeedleRecordingInfo
from models.needle_splits import final_test_patients, patient_folds


@dataclass(frozen=True)
class FoldPlan:
    """Everything that fixes the data and the split, the same in every task."""

    seed: int = 0
    folds: int = 5
    test_fraction: float = 0.2
    n_variants: int = 4
    with_mup: bool = True
    default_fs: float | None = None
    cache_dir: str | None = None


def development_rows(data: object, plan: FoldPlan) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Recording indices outside the final test, and the patient-wise folds over them."""
    test_people = set(final_test_patients(data.patients, data.labels, plan.test_fraction, plan.seed))
    dev = np.flatnonzero([p not in test_people for p in data.patients])
    return dev, patient_folds(data.patients[dev], data.labels[dev], plan.folds, plan.seed)


@functools.lru_cache(maxsize=1)
def _prepared(infos: tuple[NeedleRecordingInfo, ...], plan: FoldPlan) -> object:
    from models.needle_training import prepare

    return prepare(list(infos), plan.n_variants, plan.seed, Path(plan.cache_dir) if plan.cache_dir else None,
                   plan.with_mup, plan.default_fs)


def fold_probabilities(data: object, name: str, fold: int, plan: FoldPlan,
                       rng: np.random.Generator | None = None) -> np.ndarray:
    """Class probabilities of the held-out recordings of ``fold`` from contender ``name`` trained on the others.

    ``data`` is the prepared ``NeedleData`` (in this process) or the tuple of recording descriptions (in a worker);
    ``rng`` defaults to the fold's own generator (seed, fold).
    """
    from models.needle_training import contenders

    if isinstance(data, tuple):  # a task in a worker process: one thread, as the worker's other tasks use the rest
        import torch

        torch.set_num_threads(1)
        data = _prepared(data, plan)
    dev, folds = development_rows(data, plan)
    train_rows, test_rows = folds[fold]
    rng = rng if rng is not None else np.random.default_rng([plan.seed, fold])
    predict = contenders()[name](data, dev[train_rows], rng)
    return np.asarray(predict(data.variants[0], list(dev[test_rows])))


def cross_validated_probabilities(data: object, names: list[str], plan: FoldPlan,
                                  run_tasks: Callable[[Callable, list[tuple]], list] | None = None
                                  ) -> dict[str, np.ndarray]:
    """(development recordings x classes) out-of-fold probabilities per contender; every (contender, fold) one task
    through ``run_tasks``, or in this process one after another when it is None."""
    dev, folds = development_rows(data, plan)
    if run_tasks is None:
        results = []
        for name in names:  # in this process one generator runs through a contender's folds in order
            rng = np.random.default_rng(plan.seed)
            results += [fold_probabilities(data, name, fold, plan, rng) for fold in range(plan.folds)]
    else:
        shipped = tuple(data.infos)
        results = run_tasks(fold_probabilities, [(shipped, name, fold, plan) for name in names
                                                 for fold in range(plan.folds)])
    out = {}
    for index, name in enumerate(names):
        probabilities = np.zeros((len(dev), results[0].shape[1]))
        for fold, (_, test_rows) in enumerate(folds):
            probabilities[test_rows] = results[index * plan.folds + fold]
        out[name] = probabilities
    return out
