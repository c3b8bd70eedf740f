"""The bootstrap's figures without scikit-learn's per-call checks are scikit-learn's figures to the last bit, so the
intervals in metrics.json did not move when the protocol's evaluation got ~30x cheaper."""

from __future__ import annotations

import warnings

import numpy as np

from models.needle_splits import classification_figures, headline_figures


def same(a: float, b: float) -> bool:
    return a == b or (np.isnan(a) and np.isnan(b))


def test_headline_figures_equal_classification_figures_exactly():
    rng = np.random.default_rng(1)
    for case in range(150):
        n = int(rng.integers(1, 60))
        truth, predicted = rng.integers(0, 3, n), rng.integers(0, 3, n)
        if case % 3 == 0:
            predicted = truth.copy()  # perfect: F1 1, specificity of absent classes
        if case % 7 == 0:
            truth[:] = 0  # classes absent from the truth: NaN sensitivities, F1 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = classification_figures(truth, predicted)
        fast = headline_figures(truth, predicted)
        assert same(fast["balanced_accuracy"], reference["balanced_accuracy"])
        assert fast["macro_f1"] == reference["macro_f1"]
        for kind in ("sensitivity", "specificity"):
            assert all(same(fast[kind][k], reference[kind][k]) for k in reference[kind])
