"""Analysis of the handcrafted feature space (the paper's steps 9-11): PCA, Random Forest importance, selection.

Features are computed per window and channel (``dsp.features``) and flattened to one vector per window, columns
named ``<channel>:<feature>``. On standardised columns:

- PCA: explained variance per component and how many components keep ``variance_target`` of it;
- Random Forest (impurity) importance per column, summed per feature name (which features matter for the task)
  and per channel (which electrodes matter);
- selection: the ``k`` feature names with the highest summed importance, for the baselines to use instead of all.

``analyse`` returns JSON-safe figures, ``plot_analysis`` draws them (scree plot + importance bars) with matplotlib,
and ``compare_selection`` measures what selection and PCA do to a baseline's held-out accuracy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dsp.features import MODEL_FEATURES, expand_names, feature_matrix


@dataclass
class FeatureTable:
    """(N, C*F) feature values with their column names, built from windows (N, C, S)."""

    values: np.ndarray
    feature_names: list[str]
    channel_labels: list[str]

    @property
    def columns(self) -> list[str]:
        return [f"{channel}:{feature}" for channel in self.channel_labels for feature in self.feature_names]

    @classmethod
    def from_windows(
        cls, windows: np.ndarray, fs: float, channel_labels: list[str] | None = None,
        names: Iterable[str] = MODEL_FEATURES,
    ) -> FeatureTable:
        names = expand_names(names)
        matrix = feature_matrix(windows, fs, names)  # (N, C, F)
        labels = channel_labels or [f"ch{i + 1}" for i in range(matrix.shape[1])]
        return cls(matrix.reshape(len(matrix), -1).astype(np.float64), names, list(labels))

    def select(self, feature_names: list[str]) -> np.ndarray:
        """Columns of the chosen feature names (every channel), in table order."""
        keep = [i for i, column in enumerate(self.columns) if column.split(":", 1)[1] in feature_names]
        return self.values[:, keep]


def _standardise(values: np.ndarray) -> np.ndarray:
    from sklearn.preprocessing import StandardScaler

    return StandardScaler().fit_transform(np.nan_to_num(values))


def pca_figures(table: FeatureTable, variance_target: float = 0.95) -> dict[str, Any]:
    from sklearn.decomposition import PCA

    pca = PCA().fit(_standardise(table.values))
    ratios = pca.explained_variance_ratio_
    cumulative = np.cumsum(ratios)
    kept = int(np.searchsorted(cumulative, variance_target) + 1)
    shown = min(len(ratios), max(20, kept + 5))  # enough of the curve to see where the target is reached
    first = pca.components_[0]
    top_loadings = np.argsort(-np.abs(first))[:5]
    return {
        "dimensions": int(table.values.shape[1]),
        "variance_target": variance_target,
        "components_kept": min(kept, len(ratios)),
        "explained_variance_ratio": [round(float(r), 5) for r in ratios[:shown]],
        "cumulative_variance": [round(float(c), 5) for c in cumulative[:shown]],
        "first_component_top_loadings": {table.columns[i]: round(float(first[i]), 4) for i in top_loadings},
    }


def forest_importance(table: FeatureTable, labels: np.ndarray, seed: int = 0, trees: int = 100) -> dict[str, Any]:
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(n_estimators=trees, random_state=seed, n_jobs=1, min_samples_leaf=2)
    forest.fit(np.nan_to_num(table.values), labels)
    per_column = forest.feature_importances_.reshape(len(table.channel_labels), len(table.feature_names))
    by_feature = dict(zip(table.feature_names, per_column.sum(axis=0).tolist(), strict=True))
    by_channel = dict(zip(table.channel_labels, per_column.sum(axis=1).tolist(), strict=True))
    ranked = sorted(by_feature, key=lambda name: -by_feature[name])
    return {
        "by_feature": {name: round(by_feature[name], 5) for name in ranked},
        "by_channel": {name: round(value, 5) for name, value in by_channel.items()},
        "ranking": ranked,
    }


def select_features(importance: dict[str, Any], k: int) -> list[str]:
    """The ``k`` most important feature names (for the baselines' ``feature_names``)."""
    if k < 1:
        raise ValueError("select at least one feature")
    return list(importance["ranking"][:k])


def analyse(table: FeatureTable, labels: np.ndarray, variance_target: float = 0.95, seed: int = 0) -> dict[str, Any]:
    return {"pca": pca_figures(table, variance_target), "random_forest": forest_importance(table, labels, seed)}


def plot_analysis(analysis: dict[str, Any], path: str | Path, title: str = "feature analysis") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pca = analysis["pca"]
    forest = analysis["random_forest"]
    figure, (scree, bars) = plt.subplots(1, 2, figsize=(11, 4))
    ratios = pca["explained_variance_ratio"]
    components = np.arange(1, len(ratios) + 1)
    scree.bar(components, ratios, color="tab:blue", label="per component")
    scree.plot(components, pca["cumulative_variance"], "o-", color="tab:orange", label="cumulative")
    scree.axhline(pca["variance_target"], color="grey", linestyle="--", linewidth=1)
    scree.axvline(pca["components_kept"], color="grey", linestyle=":", linewidth=1)
    scree.set_xlabel("principal component")
    scree.set_ylabel("explained variance")
    scree.set_title(f"PCA: {pca['components_kept']} of {pca['dimensions']} keep {pca['variance_target']:.0%}")
    scree.legend(loc="center right")
    names = forest["ranking"]
    bars.barh(names[::-1], [forest["by_feature"][n] for n in names[::-1]], color="tab:green")
    bars.set_xlabel("Random Forest importance (summed over channels)")
    bars.set_title("feature importance")
    figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def compare_selection(
    train: FeatureTable, train_labels: np.ndarray, test: FeatureTable, test_labels: np.ndarray, k: int = 5,
    variance_target: float = 0.95, seed: int = 0, importance: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Held-out accuracy of LDA on all features, on the top-``k`` by forest importance (ranked on the training
    set only; ``importance`` passes a ranking already made, e.g. on a subsample), and on the PCA components keeping
    ``variance_target`` (fitted on the training set only)."""
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def accuracy(model, x_train: np.ndarray, x_test: np.ndarray) -> float:
        model.fit(np.nan_to_num(x_train), train_labels)
        return round(float(np.mean(model.predict(np.nan_to_num(x_test)) == test_labels)), 4)

    chosen = select_features(importance or forest_importance(train, train_labels, seed), k)
    return {
        "all_features": {
            "columns": train.values.shape[1],
            "accuracy": accuracy(make_pipeline(StandardScaler(), LinearDiscriminantAnalysis()), train.values,
                                 test.values),  # fmt: skip
        },
        "selected": {
            "features": chosen,
            "columns": train.select(chosen).shape[1],
            "accuracy": accuracy(make_pipeline(StandardScaler(), LinearDiscriminantAnalysis()), train.select(chosen),
                                 test.select(chosen)),  # fmt: skip
        },
        "pca": {
            "variance_target": variance_target,
            "accuracy": accuracy(
                make_pipeline(StandardScaler(), PCA(variance_target, random_state=seed), LinearDiscriminantAnalysis()),
                train.values, test.values,
            ),
        },
    }
