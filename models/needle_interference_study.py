"""The third round of the needle condition model's study: interference-pattern features (``models.needle_interference``)
as the candidates fixed in docs/needle-model.md ("Third round"), in the protocol's own development folds (seed 0, the
123 development people; the final-test people are never read).

    nice -n 10 .venv/bin/python -m models.needle_interference_study features   # IP measures, 4 copies, cached
    nice -n 10 .venv/bin/python -m models.needle_interference_study evaluate   # baseline W + the 3 candidates

Needs the second round's window statistics (``python -m models.needle_second_round features``), whose perturbed copies
it redraws identically (same generator, same order). Prints one JSON line per spec, and a paired bootstrap over people
of each candidate's patient balanced accuracy minus the baseline's.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from models.needle_interference import CloudLimits, cloud_fractions, fit_cloud
from models.needle_second_round import CACHE, DATA, N_COPIES

CANDIDATES = ("W", "W+I", "W+I+C", "I+C")  # W first: the bundled recipe, the baseline
CROSS_FIT_GROUPS = 5


def extract(signals: list[np.ndarray]) -> None:
    """Interference measures and cloud points of every recording and its 3 perturbed copies (one file per copy)."""
    from models.needle_features import condition, cut_windows, perturbed
    from models.needle_interference import window_interference

    CACHE.mkdir(parents=True, exist_ok=True)
    for copy in range(N_COPIES):
        path = CACHE / f"interference-v{copy}.npz"
        if path.exists():
            continue
        rng = np.random.default_rng([0, copy])  # as models.needle_second_round.extract_features draws them
        features, points = [], []
        for signal in signals:
            if copy:
                signal, _ = perturbed(signal, rng)
            f, p = window_interference(cut_windows(condition(signal)))
            features.append(f)
            points.append(p)
        np.savez(path, features=np.concatenate(features), points=np.concatenate(points),
                 counts=np.array([len(f) for f in features]))


class InterferenceStudy:
    """The second round's study (W, people, folds) with the interference windows of every copy."""

    def __init__(self) -> None:
        from models.needle_second_round import Study
        from models.needle_training import recording_statistics

        self.base = Study()
        self.features: list[list[np.ndarray]] = []
        self.points: list[list[np.ndarray]] = []
        for copy in range(N_COPIES):
            loaded = np.load(CACHE / f"interference-v{copy}.npz", allow_pickle=False)
            counts = loaded["counts"]
            if not np.array_equal(counts, [len(w) for w in self.base.windows[copy]]):
                raise SystemExit(f"interference-v{copy}.npz does not match the window statistics: delete it")
            split = np.cumsum(counts)[:-1]
            self.features.append(np.split(loaded["features"], split))
            self.points.append(np.split(loaded["points"], split))
        self.interference = [recording_statistics(f) for f in self.features]

    def cloud_blocks(self, train: np.ndarray) -> list[np.ndarray]:
        """Per copy, (R, 8) recording statistics of the cloud fractions, limits from the healthy people of
        ``train`` (as recorded); a healthy training person's rows use limits fitted without their group."""
        from models.needle_training import recording_statistics

        patients, labels = self.base.patients, self.base.labels
        healthy_people = np.unique(patients[train][labels[train] == 0])
        groups = np.array_split(np.random.default_rng(0).permutation(healthy_people), CROSS_FIT_GROUPS)
        limits_of: dict[str, CloudLimits] = {}
        all_healthy = [i for i in train if labels[i] == 0]
        overall = fit_cloud([self.points[0][i] for i in all_healthy])
        for group in groups:
            members = set(group)
            limits = fit_cloud([self.points[0][i] for i in all_healthy if patients[i] not in members])
            limits_of.update({person: limits for person in members})
        blocks = []
        for copy in range(N_COPIES):
            fractions = [cloud_fractions(self.points[copy][i], limits_of.get(patients[i], overall))
                         for i in range(len(patients))]
            blocks.append(recording_statistics(fractions))
        return blocks

    def block(self, names: list[str], copy: int, cloud: list[np.ndarray] | None) -> np.ndarray:
        parts = []
        for name in names:
            if name == "W":
                parts.append(self.base.blocks[copy]["W"])
            elif name == "I":
                parts.append(self.interference[copy])
            elif name == "C":
                assert cloud is not None
                parts.append(cloud[copy])
            else:
                raise SystemExit(f"unknown block {name!r} (W, I, C)")
        return np.concatenate(parts, axis=1)


def out_of_fold(study: InterferenceStudy, spec: str) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """(recorded (D, 3), perturbed (3, D, 3)) out-of-fold probabilities of the development recordings, and each
    fold's inner choices; the bundled recipe (logistic + inner-fold bias, 3 perturbed copies in training)."""
    from models.needle_training import fit_statistics_logistic

    names = spec.split("+")
    base = study.base
    recorded = np.zeros((len(base.dev), 3))
    perturbed = np.zeros((N_COPIES - 1, len(base.dev), 3))
    choices = []
    for train_rows, test_rows in base.folds:
        train, test = base.dev[train_rows], base.dev[test_rows]
        cloud = study.cloud_blocks(train) if "C" in names else None
        x = np.concatenate([study.block(names, c, cloud)[train] for c in range(N_COPIES)])
        model, bias, info = fit_statistics_logistic(np.nan_to_num(x), np.tile(base.labels[train], N_COPIES),
                                                    np.tile(base.patients[train], N_COPIES), with_bias=True)
        choices.append(info)

        for c in range(N_COPIES):
            p = np.exp(model.predict_log_proba(np.nan_to_num(study.block(names, c, cloud)[test])) + bias)
            p /= p.sum(1, keepdims=True)
            if c == 0:
                recorded[test_rows] = p
            else:
                perturbed[c - 1, test_rows] = p
    return recorded, perturbed, choices


def paired_difference(study: Any, candidate: np.ndarray, baseline: np.ndarray, n_boot: int = 1000, seed: int = 0,
                      extra_level: float | None = None) -> dict[str, Any]:
    """Patient BA of candidate minus baseline, and its 95 % percentile interval resampling the same people for
    both (whole people, as ``models.needle_splits.bootstrap_intervals`` does); with ``extra_level`` (0.9875 for a
    Bonferroni-corrected 95 % over four candidates) that interval too, as ``interval_98_75``."""
    from models.needle_splits import classification_figures, patient_probabilities

    patients, labels = study.base.patients[study.base.dev], study.base.labels[study.base.dev]
    _, cand_means, classes = patient_probabilities(patients, candidate, labels)
    _, base_means, _ = patient_probabilities(patients, baseline, labels)
    cand_pred, base_pred = cand_means.argmax(1), base_means.argmax(1)

    def ba(rows: np.ndarray, predicted: np.ndarray) -> float:
        return float(classification_figures(classes[rows], predicted[rows])["balanced_accuracy"])

    everyone = np.arange(len(classes))
    rng = np.random.default_rng(seed)
    draws = [rng.choice(everyone, size=len(everyone), replace=True) for _ in range(n_boot)]
    differences = [ba(rows, cand_pred) - ba(rows, base_pred) for rows in draws]

    def interval(level: float) -> list[float]:
        tail = (1 - level) / 2 * 100
        return [round(float(np.percentile(differences, q)), 4) for q in (tail, 100 - tail)]

    figures = {"difference": round(ba(everyone, cand_pred) - ba(everyone, base_pred), 4),
               "interval_95": interval(0.95)}
    if extra_level is not None:
        figures[f"interval_{100 * extra_level:g}".replace(".", "_")] = interval(extra_level)
    return figures


def evaluate(study: Any, specs: list[str], fold_predictions: Callable[[Any, str], tuple] | None = None,
             cache_prefix: str = "oof-ip", choices_row: Callable[[list], Any] | None = None,
             extra_level: float | None = None) -> list[dict[str, Any]]:
    """One row per candidate ``spec`` (the first is the baseline): patient figures of its out-of-fold
    probabilities (``fold_predictions(study, spec)``: recorded, perturbed copies, inner choices), the perturbed
    copies' BA and the paired difference from the baseline; each printed as a JSON line and its probabilities
    kept in ``CACHE``. The fourth round (models/needle_fourth_round.py) runs through here with its own folds."""
    from models.needle_splits import evaluate as patient_figures

    fold_predictions = fold_predictions or out_of_fold
    choices_row = choices_row or (lambda choices: [{"C": c["C"], "bias": c["bias"]} for c in choices])
    rows = []
    baseline = None
    for spec in specs:
        recorded, perturbed, choices = fold_predictions(study, spec)
        figures = patient_figures(study.base.patients[study.base.dev], study.base.labels[study.base.dev],
                                  recorded, 1000)["per_patient"]
        row = {"spec": spec, "balanced_accuracy": round(figures["balanced_accuracy"], 4),
               "interval_95": [round(v, 3) for v in figures["interval_95"]["balanced_accuracy"]],
               "sensitivity": {k: round(v, 3) for k, v in figures["sensitivity"].items()},
               "specificity": {k: round(v, 3) for k, v in figures["specificity"].items()},
               "macro_f1": round(figures["macro_f1"], 3), "confusion": figures["confusion_matrix"],
               "perturbed_copies": [round(study.base.patient_figures(p)["balanced_accuracy"], 3)
                                    for p in perturbed],
               "inner_choices": choices_row(choices)}
        if baseline is None:
            baseline = recorded
        else:
            row["minus_baseline"] = paired_difference(study, recorded, baseline, extra_level=extra_level)
        np.save(CACHE / f"{cache_prefix}-{spec.replace(':', '-')}.npy", recorded)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("features", "evaluate"))
    parser.add_argument("specs", nargs="*", default=list(CANDIDATES),
                        help="blocks joined by + (W, I, C); the first is the baseline")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"the shared clinical set is not at {DATA}", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore")  # scikit-learn's convergence chatter
    if args.step == "features":
        from models.needle_corpus import scan
        from models.needle_features import load_signals

        extract(load_signals(scan(DATA)))
        return 0
    evaluate(InterferenceStudy(), args.specs or list(CANDIDATES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
