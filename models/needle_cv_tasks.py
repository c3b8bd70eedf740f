"""The needle contenders' cross-validation folds as independent tasks, so that a runner (``run_tasks``, e.g. Dask
tasks on a cluster: ``monitor.cohort.cluster.TaskRunner``) can spread them over processes or machines.

Data. The command has already prepared the data (window statistics and conv crops of every recording and its
perturbed copies); before the tasks run it writes them once into a private folder as flat ``.npy`` arrays, and a task
on this machine memory-maps them: no worker prepares the data again (that cost each worker ~22 s of a 2-core machine,
more than a short CV's folds) and no signal passes through a scheduler, only the folder's path. A worker that cannot
read the folder (another machine of an existing cluster) prepares the data itself from the recordings' descriptions,
once, and keeps it for its next folds.

Randomness. Fold k's generator is the protocol's generator (``seed``) after k seed draws: when a contender's folds
ran one after another on one shared generator, each network fit drew one seed and the other contenders none, so this
is the generator each fold saw then (the figures in docs/needle-model.md), computed for any fold alone. A fold thus
gives the same probabilities wherever and in whatever order it runs (given the same torch thread count).

Order. The tasks are handed over the costliest first (network fits, ~10x a statistics classifier's), so that the
cheap ones fill the workers' gaps at the end instead of leaving one worker alone with the last network folds.
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.needle_corpus import NeedleRecordingInfo
from models.needle_splits import final_test_patients, patient_folds

Contender = str | Callable[..., Any]  # a name of needle_training.contenders(), or a fit function itself


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


@dataclass(frozen=True)
class SharedData:
    """What a task receives instead of signals: the recordings' descriptions (to prepare from, where ``folder`` is
    out of reach) and the folder the command wrote the prepared data to, with the token that names this run's."""

    infos: tuple[NeedleRecordingInfo, ...]
    folder: str
    token: str


def development_rows(data: object, plan: FoldPlan) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Recording indices outside the final test, and the patient-wise folds over them."""
    test_people = set(final_test_patients(data.patients, data.labels, plan.test_fraction, plan.seed))
    dev = np.flatnonzero([p not in test_people for p in data.patients])
    return dev, patient_folds(data.patients[dev], data.labels[dev], plan.folds, plan.seed)


def fold_generator(seed: int, fold: int) -> np.random.Generator:
    """The generator fold ``fold`` of a contender starts from: ``seed``'s after ``fold`` network seed draws."""
    rng = np.random.default_rng(seed)
    for _ in range(fold):
        rng.integers(1 << 30)  # what needle_training.network_model's fit draws, once per fold
    return rng


def write_shared(data: object, folder: Path, token: str) -> None:
    """The prepared data as flat arrays (per variant: all windows' statistics, all conv crops, each recording's
    first window), the MUP summaries and readings; ``token`` marks the folder as this run's."""
    folder.mkdir(parents=True, exist_ok=True)
    for number, view in enumerate(data.variants):
        starts = np.cumsum([0] + [len(f) for f in view.features]).astype(np.int64)
        np.save(folder / f"starts-{number}.npy", starts)
        np.save(folder / f"features-{number}.npy", np.concatenate(view.features))
        np.save(folder / f"crops-{number}.npy", np.concatenate(view.crops))
    np.save(folder / "mup.npy", np.asarray(data.mup))
    # written last: a folder without it (a write cut short) is not read
    (folder / "meta.json").write_text(json.dumps({"token": token, "variants": len(data.variants),
                                                  "readings": list(data.readings)}))


def read_shared(shared: SharedData) -> object | None:
    """The ``NeedleData`` of ``write_shared`` (crops memory-mapped, not copied), or None when the folder is not
    this run's or not reachable from here."""
    from models.needle_training import NeedleData, NeedleView

    folder = Path(shared.folder)
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("token") != shared.token:
        return None
    variants = []
    for number in range(meta["variants"]):
        starts = np.load(folder / f"starts-{number}.npy")
        features = np.load(folder / f"features-{number}.npy")  # small, and torch wants writable arrays
        crops = np.load(folder / f"crops-{number}.npy", mmap_mode="r")  # the bulk: shared through the page cache
        pairs = list(zip(starts[:-1], starts[1:], strict=True))
        variants.append(NeedleView([features[a:b] for a, b in pairs], [crops[a:b] for a, b in pairs]))
    infos = list(shared.infos)
    return NeedleData(infos, np.array([i.patient for i in infos]), np.array([i.label_index for i in infos]),
                      variants, np.load(folder / "mup.npy"), list(meta["readings"]))


@functools.lru_cache(maxsize=1)
def _worker_data(shared: SharedData, plan: FoldPlan) -> object:
    """A worker's data, read once and kept for its next folds."""
    data = read_shared(shared)
    if data is not None:
        return data
    from models.needle_training import prepare

    return prepare(list(shared.infos), plan.n_variants, plan.seed, Path(plan.cache_dir) if plan.cache_dir else None,
                   plan.with_mup, plan.default_fs)


def fold_probabilities(data: object, contender: Contender, fold: int, plan: FoldPlan) -> np.ndarray:
    """Class probabilities of the held-out recordings of ``fold`` from ``contender`` trained on the others.

    ``data`` is the prepared ``NeedleData`` (in this process) or a ``SharedData`` (in a worker).
    """
    from models.needle_training import contenders

    limits = None
    if isinstance(data, SharedData):  # a task in a worker process: one thread, as the worker's other tasks use the rest
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(1)
        limits = threadpool_limits(limits=1)  # BLAS too: spinning BLAS threads cost scikit-learn's fits 6-8x CPU
        data = _worker_data(data, plan)
    try:
        dev, folds = development_rows(data, plan)
        train_rows, test_rows = folds[fold]
        fit = contenders()[contender] if isinstance(contender, str) else contender
        predict = fit(data, dev[train_rows], fold_generator(plan.seed, fold))
        return np.asarray(predict(data.variants[0], list(dev[test_rows])))
    finally:
        if limits is not None:
            limits.restore_original_limits()


def _is_network(contender: Contender) -> bool:
    from models.needle_training import contenders

    fit = contenders().get(contender) if isinstance(contender, str) else contender
    return getattr(fit, "__qualname__", "").startswith("network_model.")


def cross_validated_probabilities(data: object, names: list[str], plan: FoldPlan,
                                  run_tasks: Callable[[Callable, list[tuple]], list] | None = None,
                                  fits: dict[str, Callable[..., Any]] | None = None) -> dict[str, np.ndarray]:
    """(development recordings x classes) out-of-fold probabilities per contender; every (contender, fold) one task
    through ``run_tasks``, or in this process one after another when it is None. ``fits`` gives a name's fit
    function (default: needle_training.contenders() by name, looked up where the fold runs)."""
    dev, folds = development_rows(data, plan)
    pairs = [((fits or {}).get(name, name), fold) for name in names for fold in range(plan.folds)]
    if run_tasks is None:
        results = [fold_probabilities(data, contender, fold, plan) for contender, fold in pairs]
    else:
        # costliest first; results come back in the order handed over and are put back in ``pairs``' order
        order = sorted(range(len(pairs)), key=lambda i: not _is_network(pairs[i][0]))
        folder = Path(tempfile.mkdtemp(prefix="cv-prepared-", dir=_private_dir(plan)))  # mode 0700
        try:
            shared = SharedData(tuple(data.infos), str(folder), uuid.uuid4().hex)
            write_shared(data, folder, shared.token)
            handed = run_tasks(fold_probabilities, [(shared, *pairs[i], plan) for i in order])
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        results = [None] * len(pairs)
        for position, i in enumerate(order):
            results[i] = handed[position]
    out = {}
    for index, name in enumerate(names):
        probabilities = np.zeros((len(dev), results[0].shape[1]))
        for fold, (_, test_rows) in enumerate(folds):
            probabilities[test_rows] = results[index * plan.folds + fold]
        out[name] = probabilities
    return out


def _private_dir(plan: FoldPlan) -> str | None:
    """The user's cache folder when the plan has one (a disk, not a RAM /tmp), else the system's temporary one."""
    if plan.cache_dir is None:
        return None
    Path(plan.cache_dir).mkdir(parents=True, exist_ok=True)
    return plan.cache_dir
