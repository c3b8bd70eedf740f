"""Feature analysis: PCA recovers a known rank, the forest ranks the feature that separates the classes first."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.feature_analysis import (
    FeatureTable,
    analyse,
    compare_selection,
    forest_importance,
    pca_figures,
    plot_analysis,
    select_features,
)

FS = 1000.0


def two_classes(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows (N, 4, 200): class 1 has 3x the amplitude of class 0 on every channel; same white spectrum."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n_per_class)
    scale = np.where(labels == 1, 3.0, 1.0) * rng.uniform(0.8, 1.25, len(labels))
    windows = rng.normal(0.0, 20.0, (len(labels), 4, 200)) * scale[:, None, None]
    return windows.astype(np.float32), labels


def test_pca_counts_the_components_of_a_known_rank():
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(500, 3))
    values = latent @ rng.normal(size=(3, 24)) + 1e-3 * rng.normal(size=(500, 24))
    table = FeatureTable(values, [f"f{i}" for i in range(6)], ["a", "b", "c", "d"])
    figures = pca_figures(table, variance_target=0.99)
    assert figures["components_kept"] == 3
    assert figures["cumulative_variance"][2] > 0.999
    assert figures["dimensions"] == 24


def test_forest_ranks_amplitude_features_first_when_amplitude_separates_classes():
    windows, labels = two_classes(150, seed=1)
    table = FeatureTable.from_windows(windows, FS)
    importance = forest_importance(table, labels)
    amplitude = {"log_MAV", "log_RMS", "log_WL", "WAMP"}  # WAMP counts differences above 10 µV: amplitude too
    assert set(importance["ranking"][:2]) <= amplitude
    shape_and_spectrum = ("MNF", "MDF", "PKF", "HJORTH_MOB", "HJORTH_COMP")
    assert sum(importance["by_feature"][n] for n in shape_and_spectrum) < 0.5 * importance["by_feature"][
        importance["ranking"][0]
    ]
    assert sum(importance["by_feature"].values()) == pytest.approx(1.0, abs=1e-3)
    assert set(importance["by_channel"]) == {"ch1", "ch2", "ch3", "ch4"}
    assert select_features(importance, 2) == importance["ranking"][:2]
    with pytest.raises(ValueError):
        select_features(importance, 0)


def test_selection_keeps_held_out_accuracy_with_fewer_columns():
    train_windows, train_labels = two_classes(150, seed=2)
    test_windows, test_labels = two_classes(100, seed=3)
    train = FeatureTable.from_windows(train_windows, FS)
    test = FeatureTable.from_windows(test_windows, FS)
    comparison = compare_selection(train, train_labels, test, test_labels, k=2)
    assert comparison["selected"]["columns"] == 8 < comparison["all_features"]["columns"]
    assert comparison["selected"]["accuracy"] >= 0.95
    assert comparison["pca"]["accuracy"] >= 0.9


def test_analysis_is_json_safe_and_plots(tmp_path):
    windows, labels = two_classes(60, seed=4)
    analysis = analyse(FeatureTable.from_windows(windows, FS), labels)
    assert json.loads(json.dumps(analysis)) == analysis
    path = plot_analysis(analysis, tmp_path / "features.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
