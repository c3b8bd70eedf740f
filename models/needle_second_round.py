"""The second round of the needle condition model's study (docs/needle-model.md): recording-level feature sets and
cheap classifiers in the protocol's own cross-validation folds (seed 0, the 123 development people; the final-test
people are never read), with a robustness column from the perturbed copies of the held-out folds.

    nice -n 10 .venv/bin/python -m models.needle_second_round features      # window + recording features, 4 copies
    nice -n 10 .venv/bin/python -m models.needle_second_round mup           # dsp.mup_reading per recording (slow)
    nice -n 10 .venv/bin/python -m models.needle_second_round evaluate W:logbias:aug W+Mi:logistic:raw ...
    nice -n 10 .venv/bin/python -m models.needle_second_round live          # 3 s stretches of held-out recordings

A spec is ``FEATURES:MODEL:ROWS``: FEATURES joined by ``+`` from W (recording statistics of the window statistics),
R (``models.needle_recording_features``), M / Mm / Mi / Mr (MUP analysis: all / MUP measures / interference /
recruitment), muscle (biceps = 1); MODEL one of logistic, logbias (logistic + inner-fold class bias: the bundled
model), lda, boosting; ROWS ``aug`` (with the 3 perturbed copies) or ``raw``. Everything is cached under the per-user
cache (``~/.cache/neurofusion/needle-explore``); M is computed on the recordings as recorded only.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from models.needle_features import DEFAULT_CACHE

DATA = Path(__file__).resolve().parents[1] / "../shared/data/needle-emg-clinical"
CACHE = DEFAULT_CACHE.parent / "needle-explore"
MUP_KEYS = ("duration_ms", "amplitude_uv", "phases", "turns", "size_index", "thickness_ms", "area_uv_ms")
N_COPIES = 4  # as recorded + 3 perturbed copies, drawn as models.needle_training.prepare draws them


def extract_features(infos: list[Any], signals: list[np.ndarray]) -> None:
    """Window statistics and recording features of every recording and of its perturbed copies, one file per copy."""
    from models.needle_features import condition, cut_windows, perturbed, window_features
    from models.needle_recording_features import recording_feature_vector

    CACHE.mkdir(parents=True, exist_ok=True)
    for copy in range(N_COPIES):
        path = CACHE / f"features-v{copy}.npz"
        if path.exists():
            continue
        rng = np.random.default_rng([0, copy])
        windows, recording = [], []
        for signal in signals:
            rate = 32768.0
            if copy:
                signal, rate = perturbed(signal, rng)
            conditioned = condition(signal)
            windows.append(window_features(cut_windows(conditioned), rate))
            recording.append(recording_feature_vector(conditioned))
        counts = np.array([len(w) for w in windows])
        np.savez(path, windows=np.concatenate(windows), counts=counts, recording=np.array(recording))


def extract_mup(infos: list[Any], signals: list[np.ndarray]) -> None:
    """``dsp.mup_reading.analyse_needle`` of every recording as recorded (with its muscle), without templates."""
    from dsp.mup_reading import analyse_needle
    from dsp.resample import NEEDLE_FS

    path = CACHE / "mup.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    for index, (signal, info) in enumerate(zip(signals, infos, strict=True)):
        key = Path(info.path).name
        if key in stored:
            continue
        try:
            report = analyse_needle(signal, NEEDLE_FS, muscle=info.muscle).to_dict()
            report.pop("references", None)
            stored[key] = report
        except ValueError as error:
            stored[key] = {"error": str(error)}
        if index % 20 == 0:
            path.write_text(json.dumps(stored))
    path.write_text(json.dumps(stored))


def mup_block(infos: list[Any]) -> np.ndarray | None:
    """(R, 22): log number of MUPs, median and largest of each MUP measure (log amplitude/area), polyphasic share
    (16, "Mm"); interference turns/s, amplitude, envelope (3, "Mi"); recruitment rates and ratio (3, "Mr")."""
    path = CACHE / "mup.json"
    if not path.exists():
        return None
    stored = json.loads(path.read_text())
    rows = []
    for info in infos:
        report = stored.get(Path(info.path).name)
        if report is None:
            return None
        ok = "error" not in report
        units = [u["measures"] for u in report.get("units", [])] if ok else []
        row = [float(np.log1p(len(units)))]
        for key in MUP_KEYS:
            values = np.array([u[key] for u in units if u.get(key) is not None], float)
            if key in ("amplitude_uv", "area_uv_ms"):
                values = np.log(np.maximum(values, 1.0))
            row += [float(np.median(values)), float(values.max())] if values.size else [np.nan, np.nan]
        row.append(float(np.mean([u.get("phases", 0) > 4 for u in units])) if units else np.nan)
        interference = report.get("interference", [{}])[0] if ok else {}
        recruitment = report["recruitment"][0] if ok and report.get("recruitment") else {}
        row += [np.log1p(interference.get("turns_per_s") or 0), np.log1p(interference.get("mean_amplitude_uv") or 0),
                np.log1p(interference.get("envelope_uv") or 0), recruitment.get("highest_rate_hz") or np.nan,
                recruitment.get("first_units_rate_hz") or np.nan, np.log1p(recruitment.get("recruitment_ratio") or 0)]
        rows.append(row)
    return np.array(rows, float)


class Study:
    """The cached features, the people and the protocol's development folds."""

    def __init__(self) -> None:
        from types import SimpleNamespace

        from models.needle_corpus import scan
        from models.needle_cv_tasks import FoldPlan, development_rows
        from models.needle_training import recording_statistics

        self.infos = scan(DATA)
        self.patients = np.array([i.patient for i in self.infos])
        self.labels = np.array([i.label_index for i in self.infos])
        self.dev, self.folds = development_rows(SimpleNamespace(patients=self.patients, labels=self.labels),
                                                FoldPlan())
        copies = [np.load(CACHE / f"features-v{copy}.npz", allow_pickle=False) for copy in range(N_COPIES)]
        self.windows = [np.split(c["windows"], np.cumsum(c["counts"])[:-1]) for c in copies]
        self.blocks: list[dict[str, np.ndarray]] = []
        mup = mup_block(self.infos)
        muscle = np.array([i.muscle == "biceps" for i in self.infos], float)[:, None]
        for copy, loaded in enumerate(copies):
            block = {"W": recording_statistics(self.windows[copy]), "R": loaded["recording"], "muscle": muscle}
            if mup is not None:  # as recorded only: every copy gets the original's MUP features
                block.update({"M": mup, "Mm": mup[:, :16], "Mi": mup[:, 16:19], "Mr": mup[:, 19:]})
            self.blocks.append(block)

    def features(self, names: list[str], copy: int) -> np.ndarray:
        return np.concatenate([self.blocks[copy][name] for name in names], axis=1)

    def patient_figures(self, probabilities: np.ndarray) -> dict[str, Any]:
        from models.needle_splits import classification_figures, patient_probabilities

        _, means, classes = patient_probabilities(self.patients[self.dev], probabilities, self.labels[self.dev])
        return classification_figures(classes, means.argmax(1))


class _Biased:
    def __init__(self, model: Any, bias: np.ndarray) -> None:
        self.model, self.bias = model, bias

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = np.exp(self.model.predict_log_proba(x) + self.bias)
        return p / p.sum(1, keepdims=True)


def classifier(name: str) -> Callable[[np.ndarray, np.ndarray, np.ndarray], Any]:
    """fit(x, y, groups) -> model with predict_proba; every choice on patient-grouped inner folds of the rows."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from models.needle_training import fit_statistics_logistic

    if name == "logistic":
        return lambda x, y, g: fit_statistics_logistic(x, y, g, with_bias=False)[0]
    if name == "logbias":
        return lambda x, y, g: _Biased(*fit_statistics_logistic(x, y, g, with_bias=True)[:2])
    if name == "lda":
        return lambda x, y, g: make_pipeline(StandardScaler(), LinearDiscriminantAnalysis(
            solver="lsqr", shrinkage="auto")).fit(x, y)
    if name == "boosting":
        return lambda x, y, g: HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.05, max_depth=3, l2_regularization=1.0, class_weight="balanced",
            random_state=0).fit(x, y)
    raise SystemExit(f"unknown model {name!r} (logistic, logbias, lda, boosting)")


def cross_validate(study: Study, spec: str) -> dict[str, Any]:
    """Out-of-fold patient figures of one ``FEATURES:MODEL:ROWS`` spec, as recorded and on the 3 perturbed copies."""
    from models.needle_splits import evaluate

    feature_names, model_name, rows = spec.split(":")
    names = feature_names.split("+")
    fit = classifier(model_name)
    clean = (lambda x: x) if model_name == "boosting" else (lambda x: np.nan_to_num(x, nan=0.0))
    copies = N_COPIES if rows == "aug" else 1
    recorded = np.zeros((len(study.dev), 3))
    perturbed = np.zeros((N_COPIES - 1, len(study.dev), 3))
    for train_rows, test_rows in study.folds:
        train, test = study.dev[train_rows], study.dev[test_rows]
        x = np.concatenate([study.features(names, c)[train] for c in range(copies)])
        model = fit(clean(x), np.tile(study.labels[train], copies), np.tile(study.patients[train], copies))
        recorded[test_rows] = model.predict_proba(clean(study.features(names, 0)[test]))
        for c in range(1, N_COPIES):
            perturbed[c - 1, test_rows] = model.predict_proba(clean(study.features(names, c)[test]))
    figures = evaluate(study.patients[study.dev], study.labels[study.dev], recorded, 1000)["per_patient"]
    return {"spec": spec, "balanced_accuracy": figures["balanced_accuracy"],
            "interval_95": figures["interval_95"]["balanced_accuracy"], "sensitivity": figures["sensitivity"],
            "perturbed_copies": [study.patient_figures(p)["balanced_accuracy"] for p in perturbed]}


def live_stretches(study: Study, stretch_windows: int = 11) -> dict[str, float]:
    """The bundled recipe (W, logbias, copies) judged on the first / middle / last ``stretch_windows`` windows
    (11 = 3 s) of the held-out recordings, in the same folds."""
    from models.needle_training import recording_statistics

    fit = classifier("logbias")
    names = ("whole", "first", "middle", "last")
    probabilities = {name: np.zeros((len(study.dev), 3)) for name in names}
    for train_rows, test_rows in study.folds:
        train, test = study.dev[train_rows], study.dev[test_rows]
        x = np.concatenate([study.blocks[c]["W"][train] for c in range(N_COPIES)])
        model = fit(x, np.tile(study.labels[train], N_COPIES), np.tile(study.patients[train], N_COPIES))
        probabilities["whole"][test_rows] = model.predict_proba(study.blocks[0]["W"][test])
        for name in names[1:]:
            stretches = []
            for i in test:
                n = len(study.windows[0][i])
                start = {"first": 0, "middle": (n - stretch_windows) // 2, "last": n - stretch_windows}[name]
                stretches.append(study.windows[0][i][start:start + stretch_windows])
            probabilities[name][test_rows] = model.predict_proba(recording_statistics(stretches))
    return {name: study.patient_figures(p)["balanced_accuracy"] for name, p in probabilities.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("features", "mup", "evaluate", "live"))
    parser.add_argument("specs", nargs="*", help="FEATURES:MODEL:ROWS for evaluate")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"the shared clinical set is not at {DATA}", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore")  # scikit-learn's convergence and log(0) chatter
    if args.step in ("features", "mup"):
        from models.needle_corpus import scan
        from models.needle_features import load_signals

        infos = scan(DATA)
        signals = load_signals(infos)
        (extract_features if args.step == "features" else extract_mup)(infos, signals)
        return 0
    study = Study()
    if args.step == "live":
        print(json.dumps(live_stretches(study)))
        return 0
    for spec in args.specs:
        if spec.count(":") != 2:
            print(f"bad spec {spec!r}: FEATURES:MODEL:ROWS, e.g. W:logbias:aug", file=sys.stderr)
            return 2
        print(json.dumps(cross_validate(study, spec)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
