"""Classification metrics and figures shared by train, evaluate and calibrate.

Sensitivity, specificity and precision are one-vs-rest per class, then averaged over classes (macro), so a
dominant class (rest, in gesture data) cannot hide a class the model misses.

Choosing among configurations (NeuroFusionNet and its ablations) uses the validation groups only
(``select_on_validation``); the test groups then report the chosen configuration once, with an interval over
groups (subjects or sessions). Reading the test column to pick a configuration would make its figure optimistic.
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


ABLATIONS = ("no_gnn", "no_attention", "no_features", "no_regularisation")


def _time_per_window_ms(predict: Any, n_windows: int, repeats: int = 3) -> float:
    """Best of ``repeats`` runs over the whole test set (batched), in ms per window, features included."""
    import time

    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        predict()
        best = min(best, time.perf_counter() - started)
    return 1000.0 * best / max(n_windows, 1)


def accuracy_by_group(test: Any, predicted: np.ndarray) -> dict[str, float]:
    """Accuracy per held-out group (subject or session): errors on unseen subjects come whole subjects at a time."""
    return {str(group): round(float(np.mean(predicted[test.groups == group] == test.labels[test.groups == group])), 4)
            for group in sorted(set(test.groups.tolist()))}


SELECTION_CRITERION = "validation_macro_f1"
INTERVAL_RESAMPLES = 2000


def group_interval(test: Any, predicted: np.ndarray, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Percentile bootstrap interval of the pooled accuracy, resampling whole held-out groups (subjects or
    sessions), not windows: windows of one subject are not independent, and errors come subject by subject."""
    groups = sorted(set(test.groups.tolist()))
    correct = np.array([np.sum(predicted[test.groups == group] == test.labels[test.groups == group])
                        for group in groups], dtype=float)
    counts = np.array([np.sum(test.groups == group) for group in groups], dtype=float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(groups), size=(INTERVAL_RESAMPLES, len(groups)))
    accuracies = correct[draws].sum(axis=1) / counts[draws].sum(axis=1)
    low, high = np.quantile(accuracies, [(1 - level) / 2, (1 + level) / 2])
    return {"accuracy_interval": [float(low), float(high)], "interval_level": level, "interval_groups": len(groups)}


def select_on_validation(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The NeuroFusionNet configuration (the proposed row or an ablation) with the best validation macro F1, and
    its test figures: the one test figure that reports the chosen configuration. The test columns are never read
    to choose (ties go to the earlier row)."""
    candidates = [row for row in rows if row["kind"] in ("proposed", "ablation")]
    if not candidates:
        return {}
    chosen = max(candidates, key=lambda row: (row[SELECTION_CRITERION], -candidates.index(row)))
    return {"chosen": chosen["model"], "criterion": SELECTION_CRITERION,
            "validation_macro_f1": chosen["validation_macro_f1"],
            "validation_accuracy": chosen["validation_accuracy"], "test_accuracy": chosen["accuracy"],
            "test_macro_f1": chosen["macro_f1"],
            **{key: chosen[key] for key in ("accuracy_interval", "interval_level", "interval_groups")
               if key in chosen}}


def validation_figures(validation: Any, predicted: np.ndarray, classes: list[str]) -> dict[str, Any]:
    metrics = classification_metrics(validation.labels, predicted, classes)
    return {"validation_accuracy": metrics["accuracy"], "validation_macro_f1": metrics["macro_f1"]}


def _row(name: str, kind: str, metrics: dict[str, Any], ms_per_window: float, parameters: int,
         extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"model": name, "kind": kind, **{key: metrics[key] for key in
            ("accuracy", "sensitivity", "specificity", "precision", "macro_f1", "n_windows")},
            "ms_per_window": ms_per_window, "parameters": parameters, "confusion_matrix": metrics["confusion_matrix"],
            **(extra or {})}


SETTLED_MARGIN_S = 0.5  # windows this far from a label change: past the reaction time of cue-labelled recordings


def settled_accuracy(test: Any, predicted: np.ndarray, margin_s: float = SETTLED_MARGIN_S) -> dict[str, Any]:
    """Accuracy on the windows at least ``margin_s`` from any label change (empty when the data has no label
    changes, e.g. simulated subjects: every window there is settled)."""
    if getattr(test, "label_distance_s", None) is None or np.isinf(test.label_distance_s).all():
        return {}
    settled = test.settled(margin_s)
    return {"settled_accuracy": float(np.mean(predicted[settled] == test.labels[settled])),
            "settled_windows": int(settled.sum()), "settled_margin_s": margin_s}


def muscle_timed_accuracy(test: Any, predicted: np.ndarray) -> dict[str, Any]:
    """Accuracy against the labels moved to when the muscle moved, and how well those agree with the cue-timed
    labels: the most a classifier that follows the muscle can score on the plain figure (empty without them)."""
    muscle = getattr(test, "muscle_labels", None)
    if muscle is None:
        return {}
    return {"muscle_timed_accuracy": float(np.mean(predicted == muscle)),
            "muscle_cue_agreement": float(np.mean(muscle == test.labels))}


def held_out_breakdown(test: Any, predicted: np.ndarray) -> dict[str, Any]:
    """The figures every row carries beside the table's: settled-window and muscle-timed accuracy, accuracy per
    group."""
    return {**settled_accuracy(test, predicted), **muscle_timed_accuracy(test, predicted),
            "accuracy_by_group": accuracy_by_group(test, predicted)}


def compare_models(
    train: Any, validation: Any, test: Any, feature_names: list[str], config: Any,
    baselines: tuple[str, ...] = ("lda", "svm", "cnn", "lstm", "gru", "attention"),
    ablations: tuple[str, ...] = ABLATIONS,
    progress: Any = None,
) -> list[dict[str, Any]]:
    """Train every model on ``train`` (early stopping on ``validation``) and measure it on ``test``.

    Rows: NeuroFusionNet, the baselines, then the NeuroFusionNet ablations. ``progress(message)`` is told each step.
    Every row also carries its validation accuracy and macro F1 (what ``select_on_validation`` chooses by) and an
    interval of its test accuracy over the held-out groups.
    """
    import torch

    from models.baselines import NEURAL_BASELINES, classic_baseline, hudgins_features, neural_baseline
    from models.neurofusionnet import parameter_count
    from models.training import fit, predict_logits, to_tensors, train_neurofusionnet, window_augmenter

    say = progress or (lambda message: None)
    classes = list(train.classes)
    rows: list[dict[str, Any]] = []
    test_tensors = to_tensors(test, feature_names)

    def neural_row(name: str, kind: str, model: Any, tensors: Any, history: Any,
                   validation_tensors: Any) -> dict[str, Any]:
        predicted = predict_logits(model, tensors).argmax(dim=1).numpy()
        on_validation = predict_logits(model, validation_tensors).argmax(dim=1).numpy()

        def timed() -> None:
            from models.predictor import handcrafted_features

            features = torch.from_numpy(handcrafted_features(test.windows, test.fs, model_features(model)))
            predict_logits(model, type(tensors)(tensors.windows, features, tensors.labels, None), batch_size=256)

        return _row(name, kind, classification_metrics(test.labels, predicted, classes),
                    _time_per_window_ms(timed, len(test)), parameter_count(model),
                    {"epochs": len(history.train_loss), "best_epoch": history.best_epoch + 1,
                     **held_out_breakdown(test, predicted), **group_interval(test, predicted),
                     **validation_figures(validation, on_validation, classes)})

    def model_features(model: Any) -> list[str]:
        config_of = getattr(model, "config", None)
        return feature_names if config_of is not None and config_of.use_features else []

    say("NeuroFusionNet")
    model, history, _, _ = train_neurofusionnet(train, validation, feature_names, config)
    rows.append(neural_row("NeuroFusionNet", "proposed", model, test_tensors, history,
                           to_tensors(validation, feature_names)))

    for name in baselines:
        say(name)
        if name in ("lda", "svm"):
            classifier = classic_baseline(name, config.seed)
            classifier.fit(hudgins_features(train.windows, train.fs), train.labels)
            predicted = classifier.predict(hudgins_features(test.windows, test.fs))
            estimator = classifier[-1]
            fitted = [getattr(estimator, attribute, None) for attribute in
                      ("coef_", "intercept_", "support_vectors_", "dual_coef_", "means_")]
            parameters = int(sum(np.size(array) for array in fitted if array is not None))
            ms = _time_per_window_ms(lambda c=classifier: c.predict(hudgins_features(test.windows, test.fs)),
                                     len(test))
            on_validation = classifier.predict(hudgins_features(validation.windows, validation.fs))
            rows.append(_row(f"{name.upper()} (Hudgins TD)", "baseline",
                             classification_metrics(test.labels, predicted, classes), ms, parameters,
                             {**held_out_breakdown(test, predicted), **group_interval(test, predicted),
                              **validation_figures(validation, on_validation, classes)}))
        elif name in NEURAL_BASELINES:
            torch.manual_seed(config.seed)
            network = neural_baseline(name, train.n_channels, len(classes))
            train_tensors, validation_tensors = to_tensors(train, []), to_tensors(validation, [])
            network.fit_scale(train_tensors.windows)
            # the same window augmentation NeuroFusionNet trains with (none unless the config asks)
            augment = window_augmenter(config, train.layout, train.fs, [], classes)
            history = fit(network, train_tensors, validation_tensors, len(classes), config, augment=augment)
            label = {"cnn": "CNN", "lstm": "LSTM", "gru": "GRU", "attention": "Attention-only"}[name]
            rows.append(neural_row(label, "baseline", network, to_tensors(test, []), history, validation_tensors))
        else:
            raise ValueError(f"unknown baseline {name!r}")

    for ablation in ablations:
        say(ablation)
        options: dict[str, Any] = {}
        names, ablation_config = feature_names, config
        if ablation == "no_gnn":
            options["use_gnn"] = False
        elif ablation == "no_attention":
            options["use_attention"] = False
        elif ablation == "no_features":
            options["use_features"] = False
            names = []
        elif ablation == "no_regularisation":
            options.update(dropout=0.0, attention_dropout=0.0, drop_edge=0.0)
            ablation_config = config.without_regularisation()
        else:
            raise ValueError(f"unknown ablation {ablation!r}; known: {', '.join(ABLATIONS)}")
        model, history, _, _ = train_neurofusionnet(train, validation, names, ablation_config, **options)
        rows.append(neural_row(f"NeuroFusionNet {ablation.replace('_', ' ')}", "ablation", model,
                               to_tensors(test, names), history, to_tensors(validation, names)))
    return rows


def markdown_table(rows: list[dict[str, Any]], title: str) -> str:
    settled = any("settled_accuracy" in row for row in rows)
    muscle = any("muscle_timed_accuracy" in row for row in rows)
    margin = next((row["settled_margin_s"] for row in rows if "settled_margin_s" in row), SETTLED_MARGIN_S)
    header = ("| model | validation macro F1 | accuracy | sensitivity | specificity | precision | macro F1 | "
              "ms / window | parameters |")
    rule = "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    if settled:
        header += f" accuracy >= {margin:g} s from a label change |"
        rule += " ---: |"
    if muscle:
        header += " accuracy on muscle-timed labels |"
        rule += " ---: |"
    selection = select_on_validation(rows)
    lines = [f"### {title}", "", header, rule]
    for row in rows:
        name = row["model"] + (" (chosen on validation)" if row["model"] == selection.get("chosen") else "")
        validation = f"{100 * row['validation_macro_f1']:.2f}%" if "validation_macro_f1" in row else ""
        line = (
            f"| {name} | {validation} | {100 * row['accuracy']:.2f}% | {100 * row['sensitivity']:.2f}% | "
            f"{100 * row['specificity']:.2f}% | {100 * row['precision']:.2f}% | {100 * row['macro_f1']:.2f}% | "
            f"{row['ms_per_window']:.3f} | {row['parameters']:,} |"
        )
        for shown, key in ((settled, "settled_accuracy"), (muscle, "muscle_timed_accuracy")):
            if shown:
                line += f" {100 * row[key]:.2f}% |" if key in row else " |"
        lines.append(line)
    if selection:
        interval = (f" ({100 * selection['interval_level']:.0f}% interval over {selection['interval_groups']} "
                    f"test groups, bootstrap: {100 * selection['accuracy_interval'][0]:.2f}-"
                    f"{100 * selection['accuracy_interval'][1]:.2f}%)" if "accuracy_interval" in selection else "")
        lines += ["", "Chosen on validation macro F1 among NeuroFusionNet and its ablations: "
                  f"**{selection['chosen']}** ({100 * selection['validation_macro_f1']:.2f}% on validation). "
                  "Its test accuracy, "
                  f"{100 * selection['test_accuracy']:.2f}%{interval}, is the figure to report; the other rows' test "
                  "columns compare models and were not used to choose."]
    agreement = next((row["muscle_cue_agreement"] for row in rows if "muscle_cue_agreement" in row), None)
    if agreement is not None:
        lines += ["", f"The muscle-timed labels agree with the recorded ones on {100 * agreement:.2f}% of the test "
                  "windows: the most a causal classifier that follows the muscle can score in the accuracy column."]
    return "\n".join(lines) + "\n"
