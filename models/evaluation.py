"""Classification metrics and figures shared by train, evaluate and calibrate.

Sensitivity, specificity and precision are one-vs-rest per class, then averaged over classes (macro), so a
dominant class (rest, in gesture data) cannot hide a class the model misses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score


def classification_metrics(truth: np.ndarray, predicted: np.ndarray, classes: list[str]) -> dict[str, Any]:
    labels = np.arange(len(classes))
    matrix = confusion_matrix(truth, predicted, labels=labels)
    true_positive = np.diag(matrix).astype(float)
    false_negative = matrix.sum(axis=1) - true_positive
    false_positive = matrix.sum(axis=0) - true_positive
    true_negative = matrix.sum() - true_positive - false_negative - false_positive
    present = matrix.sum(axis=1) > 0  # classes absent from the test set do not count in the averages

    def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
        return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)

    sensitivity = ratio(true_positive, true_positive + false_negative)
    specificity = ratio(true_negative, true_negative + false_positive)
    precision = ratio(true_positive, true_positive + false_positive)
    return {
        "n_windows": int(len(truth)),
        "accuracy": float(accuracy_score(truth, predicted)),
        "sensitivity": float(sensitivity[present].mean()),
        "specificity": float(specificity[present].mean()),
        "precision": float(precision[present].mean()),
        "macro_f1": float(f1_score(truth, predicted, labels=labels[present], average="macro", zero_division=0)),
        "per_class_sensitivity": {name: float(value) for name, value in zip(classes, sensitivity, strict=True)},
        "confusion_matrix": matrix.tolist(),
        "classes": list(classes),
    }


def write_json(path: str | Path, data: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def plot_history(history: dict[str, list[float]], path: str | Path) -> Path:
    """Loss and accuracy per epoch, training and validation (matplotlib Agg, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = np.arange(1, len(history["train_loss"]) + 1)
    loss_axes.plot(epochs, history["train_loss"], label="training")
    loss_axes.plot(epochs, history["validation_loss"], label="validation")
    loss_axes.set(xlabel="epoch", ylabel="cross-entropy", title="Loss")
    accuracy_axes.plot(epochs, 100 * np.asarray(history["train_accuracy"]), label="training")
    accuracy_axes.plot(epochs, 100 * np.asarray(history["validation_accuracy"]), label="validation")
    accuracy_axes.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    for axes in (loss_axes, accuracy_axes):
        axes.axvline(history.get("best_epoch", 0) + 1, color="grey", linestyle=":", label="best (kept)")
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


def plot_confusion(matrix: list[list[int]] | np.ndarray, classes: list[str], path: str | Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix, dtype=float)
    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = 2.5 + 0.6 * len(classes)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    axes.set_yticks(range(len(classes)), classes)
    axes.set(xlabel="predicted", ylabel="true", title=title)
    for row in range(len(classes)):
        for col in range(len(classes)):
            colour = "white" if normalised[row, col] > 0.5 else "black"
            axes.text(col, row, f"{int(matrix[row, col])}", ha="center", va="center", color=colour, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)
