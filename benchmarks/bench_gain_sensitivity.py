"""How the condition decision depends on the unknown per-subject gain; JSON out.

A checkpoint (default: the bundled condition model) is scored on the simulated test subjects (every 5th subject of
each condition, unseen by `neurofusion train --subjects N`) with their gains drawn within +-G dB, for several G. Each
subject keeps its own draw, scaled to the range (the same subjects, the same direction, a wider spread), so the
figures differ only in how far amplitude stops meaning what it meant in training. With ``--statistics`` it also
fits LDA and gradient-boosted trees on gain-free window statistics (kurtosis, skewness, Hjorth, spectral moments,
zero crossings, spikiness, spatial spread), with and without the log amplitude: what is left to a model once
amplitude is unreliable.

    .venv/bin/python -m benchmarks.bench_gain_sensitivity [--subjects 200] [--gains 0 3 6 9 12] [--statistics]
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from benchmarks.common import emit


def held_out_subjects(corpus: Any) -> Any:
    """The split `neurofusion train` and `evaluate` use: every 5th subject of each condition is test."""
    groups = sorted(set(corpus.groups.tolist()))
    return corpus.in_groups([g for g in groups if (int(g.rsplit("-", 1)[1]) - 1000) // 3 % 5 == 0])


def subject_figures(truth: np.ndarray, predicted: np.ndarray, groups: np.ndarray) -> dict[str, Any]:
    per_subject = [float(np.mean(predicted[groups == g] == truth[groups == g])) for g in np.unique(groups)]
    return {
        "accuracy": round(100 * float(np.mean(predicted == truth)), 2),
        "subjects": len(per_subject),
        "subjects_below_90": int(sum(v < 0.9 for v in per_subject)),
        "subjects_mostly_right": round(100 * float(np.mean([v > 0.5 for v in per_subject])), 1),
    }


def gain_free_statistics(windows: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """-> (statistics that a gain cannot change (N, 9 C), log mean amplitude (N, 1)) of (N, C, S) windows."""
    from scipy.stats import kurtosis, skew

    x = windows.astype(np.float64)
    spread = x.std(axis=2) + 1e-9
    first = np.diff(x, axis=2)
    mobility = first.std(axis=2) / spread
    complexity = np.diff(first, axis=2).std(axis=2) / first.std(axis=2) / mobility
    power = np.abs(np.fft.rfft(x, axis=2)) ** 2
    frequencies = np.fft.rfftfreq(x.shape[2], 1 / fs)
    mean_frequency = (power * frequencies).sum(axis=2) / power.sum(axis=2)
    cumulative = np.cumsum(power, axis=2)
    median_frequency = frequencies[np.argmax(cumulative >= cumulative[..., -1:] / 2, axis=2)]
    zero_crossings = np.diff(np.signbit(x), axis=2).mean(axis=2)
    spikiness = (np.abs(x) > 3 * spread[..., None]).mean(axis=2)
    spatial = spread / spread.mean(axis=1, keepdims=True)
    statistics = np.concatenate([kurtosis(x, axis=2), np.abs(skew(x, axis=2)), mobility, complexity,
                                 mean_frequency, median_frequency, zero_crossings, spikiness, spatial], axis=1)
    return statistics, np.log(spread.mean(axis=1, keepdims=True))


def statistics_probe(subjects: int, gain_db: float) -> dict[str, Any]:
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from models.datasets import simulated_corpus

    corpus = simulated_corpus(subjects, subject_gain_db=gain_db)
    test = held_out_subjects(corpus)
    train = corpus.subset(~np.isin(corpus.groups, np.unique(test.groups)))
    train_free, train_amplitude = gain_free_statistics(train.windows, corpus.fs)
    test_free, test_amplitude = gain_free_statistics(test.windows, corpus.fs)
    results = {}
    for model_name, make in (("lda", lambda: make_pipeline(StandardScaler(), LinearDiscriminantAnalysis())),
                             ("boosted_trees", lambda: HistGradientBoostingClassifier(max_iter=200, random_state=0))):
        for inputs, (fit_on, score_on) in (("gain_free", (train_free, test_free)),
                                           ("gain_free_and_amplitude", (np.hstack([train_free, train_amplitude]),
                                                                        np.hstack([test_free, test_amplitude])))):
            predicted = make().fit(fit_on, train.labels).predict(score_on)
            results[f"{model_name}_{inputs}"] = subject_figures(test.labels, predicted, test.groups)
    return {"gain_db": gain_db, "training_windows": len(train), **results}


def main() -> None:
    from models.checkpoint import BUNDLED_CHECKPOINT, load_checkpoint
    from models.datasets import simulated_corpus
    from models.training import predict_classes

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(BUNDLED_CHECKPOINT))
    parser.add_argument("--subjects", type=int, default=200, help="subjects per condition (default 200)")
    parser.add_argument("--gains", type=float, nargs="+", default=[0.0, 3.0, 6.0, 9.0, 12.0])
    parser.add_argument("--statistics", action="store_true", help="also probe gain-free window statistics")
    args = parser.parse_args()
    model, card = load_checkpoint(args.checkpoint)
    by_gain = {}
    for gain_db in args.gains:
        test = held_out_subjects(simulated_corpus(args.subjects, subject_gain_db=gain_db))
        predicted = predict_classes(model, test, card.feature_names)
        by_gain[f"{gain_db:g}"] = subject_figures(test.labels, predicted, test.groups)
    results: dict[str, Any] = {"checkpoint": args.checkpoint, "model_id": card.model_id,
                               "subjects_per_condition": args.subjects, "accuracy_by_gain_range_db": by_gain}
    if args.statistics:
        results["gain_free_statistics"] = statistics_probe(args.subjects, max(args.gains))
    emit("gain_sensitivity", results)


if __name__ == "__main__":
    main()
