"""Training and judging the needle condition model on patients: data, the contenders, the cross-validation.

``prepare`` reads every recording once (``models.needle_features``), computes the window statistics of the original
and of ``n_variants - 1`` perturbed copies (other rates, gains, mains, high-pass: ``needle_features.perturbed``) and
the quantitative MUP measures (``dsp.mup_reading.analyse_needle``, cached under a hash of ``dsp/mup*.py`` so the MUP
analysis' fixes are picked up). ``CONTENDERS`` maps a name to a function ``fit(data, train_idx, rng) -> predict``,
where ``predict(data_view)`` gives recording probabilities; all of them see the same folds.

Every choice is made inside the training fold: scikit-learn hyperparameters by an inner patient-grouped grid
search, the network's stopping step on an inner validation split of the training fold's patients.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.needle_corpus import LABELS, NeedleRecordingInfo
from models.needle_features import (
    DEFAULT_CACHE,
    FEATURE_NAMES,
    NEEDLE_FS,
    condition,
    cut_windows,
    load_signals,
    perturbed,
    window_features,
)
from models.needle_splits import classification_figures, final_test_patients, patient_probabilities

TIME_DOMAIN = [name for name in FEATURE_NAMES if not (name.startswith(("log_band", "rel_band")) or name.endswith(
    "_freq") or name == "source_nyquist_khz")]
MUP_MEASURES = ("amplitude_uv", "duration_ms", "phases", "turns", "area_uv_ms", "thickness_ms", "size_index")
READING_CLASS = {"normal": 0, "myopathic": 1, "neurogenic": 2}
CONV_SAMPLES = 4096


@dataclass
class NeedleView:
    """Recordings as a model sees them: per recording, window statistics (W, F) and conv crops (W, CONV_SAMPLES)."""

    features: list[np.ndarray]
    crops: list[np.ndarray]


@dataclass
class NeedleData:
    infos: list[NeedleRecordingInfo]
    patients: np.ndarray
    labels: np.ndarray
    variants: list[NeedleView]  # variants[0] is the recordings as recorded
    mup: np.ndarray  # (R, len(MUP_MEASURES) + 2): units, polyphasic %, mean measures
    readings: list[str]
    signals: list[np.ndarray] = field(repr=False, default_factory=list)


def _views_code() -> str:
    """What a recording's window statistics and crops depend on besides its samples and rate: the feature code,
    the crop size and the numerical libraries."""
    import scipy

    from models import needle_features

    digest = hashlib.sha1(Path(needle_features.__file__).read_bytes())
    digest.update(f"|{CONV_SAMPLES}|{NEEDLE_FS}|{np.__version__}|{scipy.__version__}".encode())
    return digest.hexdigest()[:16]


def _view_key(signal: np.ndarray, fs: float, code: str) -> str:
    """The recording's content (samples, dtype, rate) and ``code``: a perturbed copy drawn again is found again."""
    samples = np.ascontiguousarray(signal)
    digest = hashlib.sha1(samples.view(np.uint8).ravel())
    digest.update(f"|{samples.dtype.str}|{samples.shape}|{float(fs)!r}|{code}".encode())
    return digest.hexdigest()[:24]


def view_of(signals: list[np.ndarray], source_fs: list[float], cache_dir: Path | None = None) -> NeedleView:
    """Window statistics and conv crops of every signal; with ``cache_dir``, each read from
    ``cache_dir/views/<content hash>.npz`` when there (hash-checked), else computed and stored: a second `train`
    on the same recordings skips the feature extraction of every recording and perturbed copy (~0.03 s of CPU
    each, ~1000 of them)."""
    from models.weight_cache import is_verified, write_verified

    features, crops = [], []
    start = (int(0.5 * NEEDLE_FS) - CONV_SAMPLES) // 2
    code = _views_code() if cache_dir is not None else ""
    for signal, fs in zip(signals, source_fs, strict=True):
        stored = None if cache_dir is None else Path(cache_dir) / "views" / f"{_view_key(signal, fs, code)}.npz"
        if stored is not None and is_verified(stored):
            with np.load(stored, allow_pickle=False) as arrays:
                features.append(arrays["features"])
                crops.append(arrays["crops"])
            continue
        windows = cut_windows(condition(signal))
        features.append(window_features(windows, fs))
        crops.append(windows[:, start:start + CONV_SAMPLES].astype(np.float16))
        if stored is not None:
            write_verified(stored, lambda stream, f=features[-1], c=crops[-1]: np.savez(stream, features=f, crops=c))
    return NeedleView(features, crops)


def mup_code_hash() -> str:
    root = Path(__file__).resolve().parents[1] / "dsp"
    digest = hashlib.sha1()
    for path in sorted(root.glob("mup*.py")) + [root / "interference.py"]:
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def mup_measures(infos: list[NeedleRecordingInfo], signals: list[np.ndarray],
                 cache_dir: Path | None) -> tuple[np.ndarray, list[str]]:
    """(R, 2 + len(MUP_MEASURES)) MUP summary per recording and the rule reading, cached per MUP code version."""
    from dsp.mup_reading import analyse_needle

    cache = cache_dir / f"mup-{mup_code_hash()}.json" if cache_dir is not None else None
    stored = json.loads(cache.read_text()) if cache is not None and cache.is_file() else {}
    rows, readings = [], []
    for info, signal in zip(infos, signals, strict=True):
        key = str(Path(info.path).name)
        if key not in stored:
            try:
                report = analyse_needle(signal, NEEDLE_FS)
                summary = report.summary
                stored[key] = {"row": [summary.n_units, summary.polyphasic_percent]
                               + [summary.mean.get(name, float("nan")) for name in MUP_MEASURES],
                               "reading": report.reading.label}
            except ValueError:
                stored[key] = {"row": [0.0, float("nan")] + [float("nan")] * len(MUP_MEASURES),
                               "reading": "not assessed"}
        rows.append(stored[key]["row"])
        readings.append(stored[key]["reading"])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(stored))
    return np.array(rows, dtype=np.float64), readings


def prepare(infos: list[NeedleRecordingInfo], n_variants: int = 4, seed: int = 0,
            cache_dir: Path | None = DEFAULT_CACHE, with_mup: bool = True,
            default_fs: float | None = None) -> NeedleData:
    signals = load_signals(infos, cache_dir, default_fs)
    fs = [float(info.fs or default_fs or NEEDLE_FS) for info in infos]
    variants = [view_of(signals, fs, cache_dir)]
    for variant in range(1, n_variants):
        rng = np.random.default_rng([seed, variant])
        copies = [perturbed(signal, rng) for signal in signals]
        variants.append(view_of([c for c, _ in copies], [f for _, f in copies], cache_dir))
    if with_mup:
        mup, readings = mup_measures(infos, signals, cache_dir)
    else:
        mup, readings = np.full((len(infos), 2 + len(MUP_MEASURES)), np.nan), ["not assessed"] * len(infos)
    return NeedleData(infos, np.array([i.patient for i in infos]), np.array([i.label_index for i in infos]),
                      variants, mup, readings, signals)


def recording_statistics(features: list[np.ndarray], columns: list[int] | None = None) -> np.ndarray:
    """Per recording: mean, SD, 10th and 90th percentile of each window statistic over its windows."""
    rows = []
    for f in features:
        f = f if columns is None else f[:, columns]
        rows.append(np.concatenate([f.mean(0), f.std(0), np.percentile(f, 10, 0), np.percentile(f, 90, 0)]))
    return np.stack(rows)


def sample_weights(patients: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each class weighs the same, each person the same within it, whatever their number of recordings."""
    weights = np.zeros(len(labels))
    for label in np.unique(labels):
        people = np.unique(patients[labels == label])
        for person in people:
            rows = patients == person
            weights[rows] = 1.0 / (len(people) * rows.sum())
    return weights / weights.sum()


# ---- scikit-learn contenders -------------------------------------------------------------------------------------

Predictor = Callable[[NeedleView, list[int]], np.ndarray]


def _grid_search(estimator: Any, grid: dict[str, list[Any]], x: np.ndarray, y: np.ndarray, groups: np.ndarray,
                 weights: np.ndarray) -> Any:
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold

    search = GridSearchCV(estimator, grid, cv=StratifiedGroupKFold(n_splits=3, shuffle=True, random_state=0),
                          scoring="balanced_accuracy", n_jobs=1)
    search.fit(x, y, groups=groups)
    return search.best_estimator_


def _augmented_rows(data: NeedleData, train: np.ndarray, columns: list[int] | None,
                    variants: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    chosen = data.variants if variants is None else data.variants[:variants]
    x = np.concatenate([recording_statistics([v.features[i] for i in train], columns) for v in chosen])
    y = np.tile(data.labels[train], len(chosen))
    groups = np.tile(data.patients[train], len(chosen))
    return x, y, groups


def statistics_model(kind: str, columns: list[str] | None = None) -> Callable[..., Predictor]:
    """LDA / SVM / logistic regression / gradient boosting on recording statistics of the named window statistics."""
    def fit(data: NeedleData, train: np.ndarray, rng: np.random.Generator) -> Predictor:
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        index = None if columns is None else [FEATURE_NAMES.index(c) for c in columns]
        x, y, groups = _augmented_rows(data, train, index)
        weights = np.tile(sample_weights(data.patients[train], data.labels[train]), len(data.variants))
        if kind == "lda":
            model = make_pipeline(StandardScaler(), LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"))
            model.fit(x, y)
        elif kind == "svm":
            import warnings

            base = make_pipeline(StandardScaler(), SVC(probability=True, class_weight="balanced", random_state=0))
            with warnings.catch_warnings():  # scikit-learn 1.9 deprecates probability=True (still works to 1.11)
                warnings.simplefilter("ignore", FutureWarning)
                model = _grid_search(base, {"svc__C": [0.3, 1.0, 3.0, 10.0]}, x, y, groups, weights)
        elif kind == "logistic":
            base = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, class_weight="balanced"))
            model = _grid_search(base, {"logisticregression__C": [0.03, 0.1, 0.3, 1.0]}, x, y, groups, weights)
        elif kind == "boosting":
            # fixed, not searched: a grid of 4 settings x 3 inner folds cost 15 min of this shared machine
            model = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, max_depth=3,
                                                   class_weight="balanced", random_state=0).fit(x, y)
        else:
            raise ValueError(kind)

        def predict(view: NeedleView, rows: list[int]) -> np.ndarray:
            return model.predict_proba(recording_statistics([view.features[i] for i in rows], index))
        return predict
    return fit


STATISTICS_C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0)
BIAS_GRID = (-0.5, -0.25, 0.0, 0.25, 0.5, 0.75)


def fit_statistics_logistic(x: np.ndarray, y: np.ndarray, groups: np.ndarray, with_bias: bool = True,
                            inner_folds: int = 3) -> tuple[Any, np.ndarray, dict[str, Any]]:
    """A class-balanced multinomial logistic regression on standardised recording statistics, everything chosen on
    ``groups``-wise (patient-wise) inner folds of the rows given: C from ``STATISTICS_C_GRID`` (inner balanced
    accuracy), then, with ``with_bias``, an additive log-bias per class (``BIAS_GRID``, healthy fixed at 0) that
    maximises the inner out-of-fold *patient-level* balanced accuracy (ties: the smallest biases), since a person's
    verdict is the mean of their recordings'. -> (fitted pipeline, biases (K,), {"C", "bias", "inner_patient_ba"})."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    splitter = StratifiedGroupKFold(n_splits=inner_folds, shuffle=True, random_state=0)
    base = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, class_weight="balanced"))
    search = GridSearchCV(base, {"logisticregression__C": list(STATISTICS_C_GRID)}, cv=splitter,
                          scoring="balanced_accuracy", n_jobs=1).fit(x, y, groups=groups)
    model = search.best_estimator_
    n_classes = len(np.unique(y))
    info: dict[str, Any] = {"C": float(search.best_params_["logisticregression__C"])}
    bias = np.zeros(n_classes)
    if with_bias and n_classes == 3:
        inner = cross_val_predict(model, x, y, groups=groups, cv=splitter, method="predict_log_proba")
        best = (-1.0, 0.0, bias)
        for b1 in BIAS_GRID:
            for b2 in BIAS_GRID:
                candidate = np.array([0.0, b1, b2])
                _, means, classes = patient_probabilities(groups, np.exp(inner + candidate), y)
                accuracy = float(classification_figures(classes, means.argmax(1))["balanced_accuracy"])
                if (accuracy, -np.abs(candidate).sum()) > best[:2]:
                    best = (accuracy, -float(np.abs(candidate).sum()), candidate)
        bias = best[2]
        info["inner_patient_ba"] = round(best[0], 4)
    info["bias"] = [float(v) for v in bias]
    return model, bias, info


def statistics_network(with_bias: bool = True) -> Callable[..., Predictor]:
    """The bundled form of the logistic regression on recording statistics: fitted by ``fit_statistics_logistic``
    on the training fold (every perturbed copy too) and copied into a ``NeedleStatisticsNet``, which predicts."""
    def fit(data: NeedleData, train: np.ndarray, rng: np.random.Generator) -> Predictor:
        import torch

        from models.needle_net import NeedleStatisticsConfig, NeedleStatisticsNet

        x, y, groups = _augmented_rows(data, train, None)
        model, bias, info = fit_statistics_logistic(x, y, groups, with_bias)
        network = NeedleStatisticsNet(NeedleStatisticsConfig(n_features=len(FEATURE_NAMES)))
        scaler, logistic = model[0], model[-1]
        with torch.no_grad():
            network.statistics_mean.copy_(torch.from_numpy(scaler.mean_))
            network.statistics_scale.copy_(torch.from_numpy(scaler.scale_))
            network.classifier.weight.copy_(torch.from_numpy(logistic.coef_))
            network.classifier.bias.copy_(torch.from_numpy(logistic.intercept_ + bias))
        network.eval()
        predict = lambda view, rows: network_probabilities(network, view, rows)  # noqa: E731
        predict.network = network  # type: ignore[attr-defined]
        predict.info = info  # type: ignore[attr-defined]
        return predict
    return fit


def window_forest(data: NeedleData, train: np.ndarray, rng: np.random.Generator) -> Predictor:
    """The issue's floor: a plain random forest on window statistics, a recording the mean of its windows."""
    from sklearn.ensemble import RandomForestClassifier

    x = np.concatenate([data.variants[0].features[i] for i in train])
    y = np.concatenate([[data.labels[i]] * len(data.variants[0].features[i]) for i in train])
    model = RandomForestClassifier(n_estimators=200, random_state=0, n_jobs=1).fit(x, y)
    return lambda view, rows: np.stack([model.predict_proba(view.features[i]).mean(0) for i in rows])


def mup_classifier(data: NeedleData, train: np.ndarray, rng: np.random.Generator) -> Predictor:
    """Gradient boosting on the quantitative MUP measures (NaN where no MUP was found: boosting routes it)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, max_depth=3,
                                           class_weight="balanced", random_state=0)
    model.fit(data.mup[train], data.labels[train])
    return lambda view, rows: model.predict_proba(data.mup[rows])


def rule_reading(data: NeedleData, train: np.ndarray, rng: np.random.Generator) -> Predictor:
    """dsp.mup_reading's reading as a verdict (nothing learned); not assessed / indeterminate -> uniform."""
    def predict(view: NeedleView, rows: list[int]) -> np.ndarray:
        out = np.full((len(rows), 3), 1.0 / 3)
        for row, i in enumerate(rows):
            if data.readings[i] in READING_CLASS:
                out[row] = np.eye(3)[READING_CLASS[data.readings[i]]] * 0.98 + 0.02 / 3
        return out
    return predict


# ---- the network ---------------------------------------------------------------------------------------------------

@dataclass
class NetTraining:
    steps: int = 300
    batch: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    eval_every: int = 50
    min_windows: int = 12
    validation_fraction: float = 0.2


def _batch(data: NeedleData, rows: np.ndarray, weights: np.ndarray, settings: NetTraining,
           rng: np.random.Generator, use_conv: bool) -> tuple[Any, Any, Any]:
    import torch

    chosen = rng.choice(rows, size=settings.batch, p=weights)
    n_windows = min(len(data.variants[0].features[i]) for i in chosen)
    size = int(rng.integers(settings.min_windows, n_windows + 1))
    features, crops = [], []
    for i in chosen:
        view = data.variants[int(rng.integers(len(data.variants)))]
        start = int(rng.integers(0, len(view.features[i]) - size + 1))
        features.append(view.features[i][start:start + size])
        if use_conv:
            crops.append(view.crops[i][start:start + size].astype(np.float32))
    return (torch.from_numpy(np.stack(features)), torch.from_numpy(np.stack(crops)) if use_conv else None,
            torch.from_numpy(data.labels[chosen]))


def network_probabilities(network: Any, view: NeedleView, rows: list[int] | np.ndarray) -> np.ndarray:
    import torch

    network.eval()
    out = []
    with torch.no_grad():
        for i in rows:
            crops = torch.from_numpy(view.crops[i].astype(np.float32))[None] if network.config.use_conv else None
            out.append(torch.softmax(network(torch.from_numpy(view.features[i])[None], crops), -1)[0].numpy())
    return np.stack(out)


def _patient_balanced_accuracy(data: NeedleData, rows: np.ndarray, probabilities: np.ndarray) -> float:
    _, means, classes = patient_probabilities(data.patients[rows], probabilities, data.labels[rows])
    return float(classification_figures(classes, means.argmax(1))["balanced_accuracy"])


def train_network(data: NeedleData, train: np.ndarray, config: dict[str, Any], settings: NetTraining,
                  seed: int = 0) -> tuple[Any, dict[str, Any]]:
    """A NeedleFusionNet trained on ``train`` recordings; its stopping step chosen on an inner validation split of
    the training patients (stratified), then kept. -> (network, {"best_step", "validation_balanced_accuracy"})."""
    import torch

    from models.needle_net import NeedleFusionNet, NeedleNetConfig

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    inner_test = set(final_test_patients(data.patients[train], data.labels[train], settings.validation_fraction,
                                         seed=seed + 1))
    in_validation = np.array([p in inner_test for p in data.patients[train]])
    fit_rows, validation_rows = train[~in_validation], train[in_validation]
    network = NeedleFusionNet(NeedleNetConfig.from_dict({"n_features": len(FEATURE_NAMES), **config}))
    network.set_feature_statistics(torch.from_numpy(np.concatenate(
        [v.features[i] for v in data.variants for i in fit_rows])))
    optimiser = torch.optim.AdamW(network.parameters(), lr=settings.learning_rate,
                                  weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, settings.learning_rate, total_steps=settings.steps)
    weights = sample_weights(data.patients[fit_rows], data.labels[fit_rows])
    best = (-1.0, 0.0, 0, None)
    for step in range(1, settings.steps + 1):
        network.train()
        features, crops, labels = _batch(data, fit_rows, weights, settings, rng, network.config.use_conv)
        loss = torch.nn.functional.cross_entropy(network(features, crops), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % settings.eval_every == 0 or step == settings.steps:
            probabilities = network_probabilities(network, data.variants[0], validation_rows)
            accuracy = _patient_balanced_accuracy(data, validation_rows, probabilities)
            log_loss = -float(np.mean(np.log(probabilities[np.arange(len(validation_rows)),
                                                           data.labels[validation_rows]] + 1e-6)))
            if (accuracy, -log_loss) > best[:2]:
                best = (accuracy, -log_loss, step, {k: v.clone() for k, v in network.state_dict().items()})
    network.load_state_dict(best[3])
    network.eval()
    return network, {"best_step": best[2], "validation_balanced_accuracy": best[0]}


def network_model(config: dict[str, Any], settings: NetTraining | None = None) -> Callable[..., Predictor]:
    def fit(data: NeedleData, train: np.ndarray, rng: np.random.Generator) -> Predictor:
        network, info = train_network(data, train, config, settings or NetTraining(), int(rng.integers(1 << 30)))
        predict = lambda view, rows: network_probabilities(network, view, rows)  # noqa: E731
        predict.network = network  # type: ignore[attr-defined]
        predict.info = info  # type: ignore[attr-defined]
        return predict
    return fit


NETWORK_VARIANTS: dict[str, dict[str, Any]] = {
    "neurofusionnet (conv+features+graph+attention)": {},
    "- graph": {"use_graph": False},
    "- attention": {"use_attention": False},
    "- conv": {"use_conv": False},
    "- handcrafted features": {"use_features": False},
    "- conv - graph": {"use_conv": False, "use_graph": False},
}
# ablation rows that convolve raw windows (about 3 min of CV each on the shared machine) and were shown not to help
# (docs/needle-model.md, first round): trained by `run(..., ablation=True)`, left out of the default protocol so that
# `train --mode needle` stays near the 30 minutes
ABLATION_ONLY = ("NFN - graph", "NFN - attention", "NFN - handcrafted features")
STATISTICS_MODEL = "statistics model (logistic, recording statistics, inner-CV bias)"
CNN_1D = {"use_features": False, "use_graph": False, "use_attention": False}


def contenders() -> dict[str, Callable[..., Predictor]]:
    return {
        "random forest, window statistics (issue's floor)": window_forest,
        "LDA, time-domain features": statistics_model("lda", TIME_DOMAIN),
        "SVM, time-domain features": statistics_model("svm", TIME_DOMAIN),
        "logistic regression, recording statistics": statistics_model("logistic"),
        "gradient boosting, recording statistics": statistics_model("boosting"),
        STATISTICS_MODEL: statistics_network(),
        "gradient boosting, MUP measures": mup_classifier,
        "rule reading (dsp.mup_reading)": rule_reading,
        "1-D CNN (windows, mean)": network_model(CNN_1D),
        **{f"NFN {name}" if name.startswith("-") else name: network_model(cfg)
           for name, cfg in NETWORK_VARIANTS.items()},
    }


def labels_text() -> str:
    return ", ".join(LABELS)


def timed(function: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start
