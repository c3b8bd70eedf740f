"""Patient-wise splits and patient-level figures for the needle condition model.

A person's verdict comes from the mean of their recordings' class probabilities, so how many recordings they have
(healthy people in the shared set give four, patients one or two) can never be read as evidence of the class.
Intervals are percentile bootstraps over patients (resampling whole people, with all their recordings).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from models.needle_corpus import LABELS


def patient_table(patients: Sequence[str], labels: Sequence[int]) -> tuple[list[str], np.ndarray]:
    """(sorted unique patients, their class index); ValueError when one person carries two labels."""
    label_of: dict[str, int] = {}
    for patient, label in zip(patients, labels, strict=True):
        if label_of.setdefault(patient, int(label)) != int(label):
            raise ValueError(f"patient {patient} has recordings of two classes")
    names = sorted(label_of)
    return names, np.array([label_of[name] for name in names])


def final_test_patients(patients: Sequence[str], labels: Sequence[int], fraction: float = 0.2,
                        seed: int = 0) -> list[str]:
    """The patients set aside at the start: ``fraction`` of each class, drawn with ``seed``."""
    names, classes = patient_table(patients, labels)
    _, test = train_test_split(names, test_size=fraction, stratify=classes, random_state=seed)
    return sorted(test)


def patient_folds(patients: Sequence[str], labels: Sequence[int], n_folds: int = 5,
                  seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds over people -> (train recording indices, test recording indices) per fold."""
    names, classes = patient_table(patients, labels)
    patients = np.asarray(patients)
    folds = []
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for _train_people, test_people in splitter.split(names, classes):
        test_set = {names[i] for i in test_people}
        in_test = np.array([p in test_set for p in patients])
        folds.append((np.flatnonzero(~in_test), np.flatnonzero(in_test)))
    return folds


def patient_probabilities(patients: Sequence[str], probabilities: np.ndarray,
                          labels: Sequence[int]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(patients, mean probability of their recordings (P, K), their class)."""
    names, classes = patient_table(patients, labels)
    patients = np.asarray(patients)
    means = np.stack([probabilities[patients == name].mean(axis=0) for name in names])
    return names, means, classes


def _sensitivity_and_specificity(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per class, from a confusion matrix (rows: truth); NaN for a class with no true (or no other) cases."""
    n_classes = len(matrix)
    positives = matrix.sum(axis=1)
    sensitivity = np.divide(np.diag(matrix), positives, out=np.full(n_classes, np.nan), where=positives > 0)
    negatives = matrix.sum() - positives
    false_positive = matrix.sum(axis=0) - np.diag(matrix)
    specificity = np.divide(negatives - false_positive, negatives, out=np.full(n_classes, np.nan),
                            where=negatives > 0)
    return sensitivity, specificity


def classification_figures(truth: np.ndarray, predicted: np.ndarray, n_classes: int = 3) -> dict[str, object]:
    """Balanced accuracy, per-class sensitivity/specificity, macro F1 and the confusion matrix (rows: truth)."""
    matrix = confusion_matrix(truth, predicted, labels=list(range(n_classes)))
    sensitivity, specificity = _sensitivity_and_specificity(matrix)
    return {
        "n": int(len(truth)),
        "balanced_accuracy": float(np.nanmean(sensitivity)),
        "sensitivity": {LABELS[k]: float(sensitivity[k]) for k in range(n_classes)},
        "specificity": {LABELS[k]: float(specificity[k]) for k in range(n_classes)},
        "macro_f1": float(f1_score(truth, predicted, labels=list(range(n_classes)), average="macro",
                                   zero_division=0)),
        "confusion_matrix": matrix.tolist(),
    }


def headline_figures(truth: np.ndarray, predicted: np.ndarray, n_classes: int = 3) -> dict[str, object]:
    """``classification_figures``' balanced accuracy, sensitivity, specificity and macro F1, to the last bit, from a
    confusion matrix counted with ``np.bincount``: scikit-learn's input checks cost ~3 ms a call, which 2000
    bootstrap draws per contender made ~6 s of CPU (~1 min of this loaded machine). Macro F1 is scikit-learn's
    2 tp / (true + predicted) per class, 0 where both are 0, averaged (tests/models/test_needle_headline_figures.py)."""
    truth, predicted = np.asarray(truth, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    matrix = np.bincount(truth * n_classes + predicted, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    sensitivity, specificity = _sensitivity_and_specificity(matrix)
    denominator = (matrix.sum(axis=1) + matrix.sum(axis=0)).astype(np.float64)
    f1 = np.divide(2.0 * np.diag(matrix), denominator, out=np.zeros(n_classes), where=denominator > 0)
    return {
        "balanced_accuracy": float(np.nanmean(sensitivity)),
        "sensitivity": {LABELS[k]: float(sensitivity[k]) for k in range(n_classes)},
        "specificity": {LABELS[k]: float(specificity[k]) for k in range(n_classes)},
        "macro_f1": float(np.average(f1)),
    }


def bootstrap_intervals(truth: np.ndarray, predicted: np.ndarray, groups: np.ndarray, n_boot: int = 1000,
                        seed: int = 0) -> dict[str, list[float]]:
    """95 % percentile intervals of the headline figures, resampling whole patients (``groups``)."""
    rng = np.random.default_rng(seed)
    people = np.unique(groups)
    rows_of = {person: np.flatnonzero(groups == person) for person in people}
    samples: dict[str, list[float]] = {}
    for _ in range(n_boot):
        drawn = rng.choice(people, size=len(people), replace=True)
        rows = np.concatenate([rows_of[p] for p in drawn])
        figures = headline_figures(truth[rows], predicted[rows])
        values = {"balanced_accuracy": figures["balanced_accuracy"], "macro_f1": figures["macro_f1"],
                  **{f"sensitivity_{k}": v for k, v in figures["sensitivity"].items()},
                  **{f"specificity_{k}": v for k, v in figures["specificity"].items()}}
        for key, value in values.items():
            samples.setdefault(key, []).append(value)
    return {key: [float(np.nanpercentile(v, 2.5)), float(np.nanpercentile(v, 97.5))] for key, v in samples.items()}


def evaluate(patients: Sequence[str], labels: Sequence[int], probabilities: np.ndarray,
             n_boot: int = 1000) -> dict[str, dict[str, object]]:
    """Per-recording and per-patient figures with patient-bootstrap intervals for recording probabilities."""
    labels = np.asarray(labels)
    patients_arr = np.asarray(patients)
    per_recording = classification_figures(labels, probabilities.argmax(axis=1))
    per_recording["interval_95"] = bootstrap_intervals(labels, probabilities.argmax(axis=1), patients_arr, n_boot)
    names, means, classes = patient_probabilities(patients, probabilities, labels)
    per_patient = classification_figures(classes, means.argmax(axis=1))
    per_patient["interval_95"] = bootstrap_intervals(classes, means.argmax(axis=1), np.asarray(names), n_boot)
    return {"per_recording": per_recording, "per_patient": per_patient}
