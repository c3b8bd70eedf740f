"""Sim-to-real: a classifier trained only on the fibre-level needle simulator, tried on the real clinical set.

    nice .venv/bin/python -m benchmarks.bench_sim_to_real --per-condition 24 --real ../shared/data/needle-emg-clinical

Training: ``--per-condition`` simulated subjects per condition (``tissue="fibres"``; myopathy and neuropathy cycle
through mild/moderate/severe), each one needle site (tip drawn within 3 mm of the muscle's centre) holding a force
drawn from 5-30 %MVC (the real recordings' effort is unknown) for 5 s at 16384 Hz with the default artifacts.
Features: the needle model's window statistics (``models.needle_features.recording_windows``), mean and SD over a
recording's windows; ``all`` uses every statistic, ``gain_free`` drops the amplitude ones (the simulator's absolute
amplitude is the least certain of its figures). Classifier: standardise + multinomial logistic regression (C = 1),
fixed beforehand, nothing chosen on real data. Test: every real recording once; balanced accuracy over recordings
and per-class recall, with a 95 % bootstrap interval over patients (1000 resamples of (class, patient)).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.common import emit

CONDITIONS = ("healthy", "myopathy", "neuropathy")
SEVERITIES = ("mild", "moderate", "severe")
SIM_FS = 16384.0


def recording_vector(signal: np.ndarray, keep: np.ndarray) -> np.ndarray:
    from models.needle_features import recording_windows

    _, features = recording_windows(np.asarray(signal, dtype=np.float32), SIM_FS)
    features = features[:, keep]
    return np.concatenate([features.mean(axis=0), features.std(axis=0)])


def simulated_set(per_condition: int, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from simulators.electrodes import ElectrodeLayout
    from simulators.emg import EmgSimulator, SimulationConfig

    rows, labels = [], []
    for c, condition in enumerate(CONDITIONS):
        for k in range(per_condition):
            rng = np.random.default_rng([1000 + c, k])
            radius, angle = 3.0 * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
            config = SimulationConfig(
                layout=ElectrodeLayout.needle((radius * np.cos(angle), radius * np.sin(angle))), fs=SIM_FS,
                condition=condition, severity=SEVERITIES[k % 3], profile="hold",
                mvc_percent=float(rng.uniform(5.0, 30.0)), tissue="fibres", seed=10_000 + 100 * c + k,
            )
            rows.append(recording_vector(EmgSimulator(config).generate(5.0)[:, 0], keep))
            labels.append(c)
    return np.array(rows), np.array(labels)


def real_set(folder: Path, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from models.needle_corpus import scan
    from models.needle_features import load_signals

    infos = scan(folder)
    signals = load_signals(infos)
    rows = [recording_vector(s, keep) for s in signals]
    labels = np.array([CONDITIONS.index(i.label) for i in infos])
    patients = [f"{i.label}/{i.patient}" for i in infos]
    return np.array(rows), labels, patients


def balanced(truth: np.ndarray, predicted: np.ndarray) -> tuple[float, list[float]]:
    recalls = [float(np.mean(predicted[truth == c] == c)) for c in range(len(CONDITIONS)) if np.any(truth == c)]
    return float(np.mean(recalls)), recalls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-condition", type=int, default=24)
    parser.add_argument("--real", type=Path, required=True)
    args = parser.parse_args()

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from models.needle_features import FEATURE_NAMES, GAIN_FEATURES

    names = np.array(FEATURE_NAMES)
    every = np.flatnonzero(names != "source_nyquist_khz")
    gain_free = np.flatnonzero([n not in GAIN_FEATURES and n != "source_nyquist_khz" for n in names])
    sim_x, sim_y = simulated_set(args.per_condition, every)
    real_x, real_y, patients = real_set(args.real, every)
    half = every.size
    results = {}
    for name, columns in (("all", np.arange(2 * half)),
                          ("gain_free", np.concatenate([np.searchsorted(every, gain_free),
                                                        half + np.searchsorted(every, gain_free)]))):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        model.fit(sim_x[:, columns], sim_y)
        predicted = model.predict(real_x[:, columns])
        score, recalls = balanced(real_y, predicted)
        unique = sorted(set(patients))
        index = {p: np.flatnonzero(np.array(patients) == p) for p in unique}
        rng = np.random.default_rng(0)
        boot = []
        for _ in range(1000):
            chosen = np.concatenate([index[p] for p in rng.choice(unique, len(unique))])
            boot.append(balanced(real_y[chosen], predicted[chosen])[0])
        confusion = [[int(np.sum((real_y == t) & (predicted == p))) for p in range(3)] for t in range(3)]
        results[name] = {
            "balanced_accuracy": round(score, 3), "ci95_over_patients": [round(float(q), 3) for q in
                                                                         np.percentile(boot, [2.5, 97.5])],
            "recall": dict(zip(CONDITIONS, [round(r, 3) for r in recalls], strict=True)),
            "confusion_rows_truth": confusion,
            "train_accuracy_sim": round(float(model.score(sim_x[:, columns], sim_y)), 3),
        }
    emit("sim_to_real", {"per_condition": args.per_condition, "real_recordings": int(real_y.size),
                         "real_patients": len(set(patients)), "chance": round(1 / 3, 3), "models": results})


if __name__ == "__main__":
    main()
