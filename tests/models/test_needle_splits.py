"""Patient-wise splits and figures of the needle condition model, on real recordings of the clinical set."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.needle_corpus import LABELS, scan
from models.needle_splits import (
    bootstrap_intervals,
    classification_figures,
    final_test_patients,
    patient_folds,
    patient_probabilities,
)
from tests.conftest import NEEDLE_CLINICAL, needs_needle_clinical


def test_a_patient_with_four_recordings_counts_once():
    # healthy people give 4 recordings, patients 1-2: the verdict is the mean probability, one vote per person
    patients = ["healthy-1"] * 4 + ["myopathy-1"]
    probabilities = np.array([[0.9, 0.1, 0.0]] * 4 + [[0.2, 0.7, 0.1]])
    names, means, classes = patient_probabilities(patients, probabilities, [0, 0, 0, 0, 1])
    assert names == ["healthy-1", "myopathy-1"]
    np.testing.assert_allclose(means[0], [0.9, 0.1, 0.0])
    assert classes.tolist() == [0, 1]


def test_figures_of_a_known_confusion():
    truth = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 0, 1, 2, 2, 2])
    figures = classification_figures(truth, predicted)
    assert figures["sensitivity"] == {"healthy": 1.0, "myopathy": 0.5, "neuropathy": 1.0}
    assert figures["specificity"]["neuropathy"] == pytest.approx(0.75)
    assert figures["balanced_accuracy"] == pytest.approx(2.5 / 3)
    assert figures["confusion_matrix"] == [[2, 0, 0], [0, 1, 1], [0, 0, 2]]
    low, high = bootstrap_intervals(truth, predicted, np.arange(6), n_boot=200)["balanced_accuracy"]
    assert low < figures["balanced_accuracy"] <= high


def test_a_person_with_two_labels_is_refused():
    with pytest.raises(ValueError, match="two classes"):
        final_test_patients(["a", "a", "b"], [0, 1, 0])


@needs_needle_clinical
def test_test_patients_and_folds_never_share_a_person():
    infos = scan(NEEDLE_CLINICAL)
    patients = [i.patient for i in infos]
    labels = [i.label_index for i in infos]
    test = set(final_test_patients(patients, labels))
    # 20 % of each class's people, drawn once with the seed
    for label in LABELS:
        people = {p for p, i in zip(patients, infos, strict=True) if i.label == label}
        assert abs(len(people & test) - 0.2 * len(people)) <= 1
    assert test == set(final_test_patients(patients, labels))
    dev = [k for k, p in enumerate(patients) if p not in test]
    seen: set[str] = set()
    for train, held in patient_folds([patients[k] for k in dev], [labels[k] for k in dev]):
        held_people = {patients[dev[k]] for k in held}
        assert not held_people & {patients[dev[k]] for k in train}
        assert not held_people & test and not held_people & seen
        seen |= held_people
    assert seen == {patients[k] for k in dev}


@needs_needle_clinical
def test_training_pipeline_on_a_small_subset_keeps_people_apart(tmp_path):
    from models.needle_run import run

    infos = scan(NEEDLE_CLINICAL)
    first_of: dict[str, object] = {}
    for info in infos:  # one recording per person, kept cheap
        first_of.setdefault(info.patient, info)
    subset = []
    for label in LABELS:  # the first 10 people of each class
        people = sorted(p for p, i in first_of.items() if i.label == label)[:10]
        subset += [first_of[p] for p in people]
    report = run(subset, tmp_path / "out", only=["LDA"], n_boot=20, n_variants=1, with_mup=False,
                 cache_dir=tmp_path / "cache", log=lambda _: None)
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    test = set(written["final_test_patients"])
    folds = [set(fold) for fold in written["folds"]]
    assert len(test) == 6 and all(len(fold & test) == 0 for fold in folds)
    assert {p.split("-")[0] for p in test} == set(LABELS)  # stratified: 2 of each class
    assert sum(len(f) for f in folds) == len(set().union(*folds)) == 24
    cv = report["cross_validation"]["LDA, time-domain features"]["per_patient"]
    assert cv["n"] == 24 and sum(map(sum, cv["confusion_matrix"])) == 24
    final = report["final_test"]["LDA, time-domain features"]["per_patient"]
    assert final["n"] == 6
    assert set(report["robustness_final_test_per_patient"]["LDA, time-domain features"]) == {
        "4 kHz", "8 kHz", "+6 dB", "-6 dB"}


@needs_needle_clinical
def test_cross_validation_folds_as_dask_tasks_give_the_folds_computed_here(tmp_path):
    """Every (contender, fold) a task on a real local Dask cluster of two worker processes, each preparing the data
    from the recordings' descriptions itself: the out-of-fold probabilities are those computed in this process."""
    from models.needle_cv_tasks import FoldPlan, cross_validated_probabilities
    from models.needle_training import prepare
    from monitor.cohort.cluster import ClusterOptions, TaskRunner

    first_of: dict[str, object] = {}
    for info in scan(NEEDLE_CLINICAL):
        first_of.setdefault(info.patient, info)
    subset = [first_of[p] for label in LABELS for p in sorted(p for p, i in first_of.items() if i.label == label)[:8]]
    plan = FoldPlan(n_variants=1, with_mup=False, cache_dir=str(tmp_path / "cache"))
    data = prepare(subset, plan.n_variants, plan.seed, tmp_path / "cache", plan.with_mup)
    names = ["LDA, time-domain features"]
    here = cross_validated_probabilities(data, names, plan)
    on_dask = cross_validated_probabilities(data, names, plan, TaskRunner(ClusterOptions(workers=2, dashboard=False)))
    test_people = final_test_patients(data.patients, data.labels)
    assert here[names[0]].shape == (len(subset) - len(test_people), 3) and len(test_people) >= 3
    assert np.allclose(here[names[0]], on_dask[names[0]], atol=1e-9)


@needs_needle_clinical
def test_train_takes_the_needle_protocol_for_a_needle_study(tmp_path):
    from monitor.commands.train import is_needle_study

    manifest = tmp_path / "site.csv"
    manifest.write_text("file,patient,label,muscle\nx.asc,p1,healthy,biceps\n")
    assert is_needle_study(str(NEEDLE_CLINICAL)) and is_needle_study(str(manifest))
    gestures = NEEDLE_CLINICAL.parent / "myo-gestures"
    assert not is_needle_study(str(gestures)) and not is_needle_study("simulator")
