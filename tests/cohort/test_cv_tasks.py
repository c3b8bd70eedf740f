"""The needle cross-validation's folds as Dask tasks (models.needle_cv_tasks): the same out-of-fold probabilities as
in this process for a stochastic network too, from the data the command prepared (no worker prepares it again)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from models.needle_corpus import LABELS, NeedleRecordingInfo, scan
from models.needle_cv_tasks import (
    FoldPlan,
    SharedData,
    cross_validated_probabilities,
    fold_generator,
    read_shared,
    write_shared,
)
from models.needle_training import CNN_1D, NeedleData, NeedleView, NetTraining, network_model, prepare
from tests.conftest import NEEDLE_CLINICAL, needs_needle_clinical


def test_a_folds_generator_is_the_one_it_saw_when_the_folds_shared_one():
    shared = np.random.default_rng(7)
    for fold in range(4):
        alone = fold_generator(7, fold)
        assert alone.bit_generator.state == shared.bit_generator.state
        shared.integers(1 << 30)  # a network fit's one seed draw


def _synthetic_data(recordings: int = 5, variants: int = 2) -> NeedleData:
    rng = np.random.default_rng(0)
    infos = [NeedleRecordingInfo(Path(f"/nowhere/r{i}.asc"), f"{LABELS[i % 3]}-{i}", LABELS[i % 3], "biceps")
             for i in range(recordings)]
    views = [NeedleView([rng.normal(size=(3 + i, 6)).astype(np.float32) for i in range(recordings)],
                        [rng.normal(size=(3 + i, 16)).astype(np.float16) for i in range(recordings)])
             for _ in range(variants)]
    return NeedleData(infos, np.array([i.patient for i in infos]), np.array([i.label_index for i in infos]), views,
                      rng.normal(size=(recordings, 9)), ["normal"] * recordings)


def test_the_prepared_data_comes_back_from_the_shared_folder_and_only_for_its_own_run(tmp_path):
    data = _synthetic_data()
    write_shared(data, tmp_path, "token-1")
    back = read_shared(SharedData(tuple(data.infos), str(tmp_path), "token-1"))
    for mine, theirs in zip(data.variants, back.variants, strict=True):
        for a, b in zip(mine.features + mine.crops, theirs.features + theirs.crops, strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b)
    assert np.array_equal(back.mup, data.mup) and back.readings == data.readings
    assert np.array_equal(back.patients, data.patients) and np.array_equal(back.labels, data.labels)
    assert read_shared(SharedData(tuple(data.infos), str(tmp_path), "another run")) is None
    assert read_shared(SharedData(tuple(data.infos), str(tmp_path / "elsewhere"), "token-1")) is None


def _tiny_network() -> object:
    fit = network_model(CNN_1D, NetTraining(steps=8, batch=8, eval_every=4))

    def checked_fit(data, train, rng):  # noqa: ANN001, ANN202 (a contender's fit)
        from distributed import get_worker

        try:
            get_worker()
        except ValueError:  # in this process
            pass
        else:  # Dask's MALLOC_TRIM_THRESHOLD_ makes a fit 1.6x the CPU: the runner's workers go without it
            assert "MALLOC_TRIM_THRESHOLD_" not in os.environ
        return fit(data, train, rng)
    return checked_fit


@needs_needle_clinical
def test_network_and_lda_folds_on_two_dask_workers_are_those_computed_here(tmp_path):
    import torch

    from monitor.cohort.cluster import ClusterOptions, TaskRunner

    first_of: dict[str, NeedleRecordingInfo] = {}
    for info in scan(NEEDLE_CLINICAL):
        first_of.setdefault(info.patient, info)
    subset = [first_of[p] for label in LABELS for p in sorted(p for p, i in first_of.items() if i.label == label)[:8]]
    plan = FoldPlan(folds=3, n_variants=1, with_mup=False, cache_dir=str(tmp_path / "cache"))
    data = prepare(subset, plan.n_variants, plan.seed, tmp_path / "cache", plan.with_mup)
    # recordings the workers cannot read: a worker that prepared the data itself would fail
    data.infos = [dataclasses.replace(info, path=tmp_path / "gone" / info.path.name) for info in data.infos]
    names, fits = ["tiny network", "LDA, time-domain features"], {"tiny network": _tiny_network()}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a worker: a sum split over other threads rounds differently
    try:
        here = cross_validated_probabilities(data, names, plan, fits=fits)
    finally:
        torch.set_num_threads(threads)
    on_dask = cross_validated_probabilities(data, names, plan, TaskRunner(ClusterOptions(workers=2, dashboard=False)),
                                            fits=fits)
    for name in names:
        assert here[name].shape == on_dask[name].shape and np.array_equal(here[name], on_dask[name]), name
    assert not list((tmp_path / "cache").glob("cv-prepared-*"))  # the shared folder is gone with the run
