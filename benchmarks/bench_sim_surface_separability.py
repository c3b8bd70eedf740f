"""Issue 18, surface side: do the fibre-level model's conditions separate by amplitude alone, and what do gain-free
features leave? Surface RMS at 20 and 50 %MVC on the forearm ring, per condition and severity.

    nice -n 10 .venv/bin/python -m benchmarks.bench_sim_surface_separability --subjects 10

Each group (healthy; myopathy and neuropathy at mild / moderate / severe) has its own subjects (distinct seeds, so
every subject has its own anatomy and armband rotation), each holding a wrist flexion (ring8, bipolar, 2048 Hz,
noise- and artifact-free, fresh muscle) at 20 and 50 %MVC of its own force (the fibre model's force model), RMS
and features as in ``bench_sim_surface`` (20-450 Hz, seconds 0.5-3).

Separability, patient-wise (leave one subject out; both efforts of a subject are in the same fold), condition
(3 classes) by standardised shrinkage LDA (Ledoit-Wolf, equal priors) on
- amplitude only: log RMS (channel mean and largest channel) at 20 and 50 %MVC, with no gain difference between
  subjects (the best case for amplitude), and with each subject's gain drawn within +-12 dB (what the training
  corpus assumes: electrode contact, skin and amplifier differ between patients);
- gain-free features: spectral shape (mean / median frequency, the share of power in 20-60, 60-150, 150-450 Hz)
  and normalised statistics (kurtosis of the summed signal and mean channel kurtosis, the channels' RMS spread,
  the RMS ratio 50 / 20 %MVC), none of which an amplifier gain changes;
- both together.
Balanced accuracy (chance 33 %) with a 95 % bootstrap interval over subjects. A fixed, untuned classifier: no choice
is made on these subjects, so there is no held-out set to protect (LDA replaced a logistic regression on the
synthetic rows of tests/simulators/test_surface_separability_bench.py, before any simulated row was classified: the
regression missed a middle class that one feature separated perfectly, with few healthy subjects).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from scipy import signal

from benchmarks.bench_sim_surface import GROUPS, hold
from benchmarks.common import emit

EFFORTS = (20.0, 50.0)
MYO = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "myo-gestures"
BANDS = ((20.0, 60.0), (60.0, 150.0), (150.0, 450.0))
GAIN_FREE = ("mnf_hz", "mdf_hz", "band_20_60", "band_60_150", "band_150_450", "kurtosis", "channel_kurtosis",
             "rms_cov")


def shape_features(layout: str, condition: str, severity: str, mvc: float, seed: int) -> dict[str, float]:
    """``bench_sim_surface.hold``'s features plus band shares and mean channel kurtosis of the same hold."""
    from simulators.emg import EmgSimulator, SimulationConfig

    row = hold(layout, condition, severity, mvc, seed)
    # the same hold again for the extra features (its templates are cached by hold(): seconds)
    config = SimulationConfig(layout=layout, condition=condition, severity=severity, profile="hold", mvc_percent=mvc,
                              gesture="wrist_flexion", tissue="fibres", artifacts=(), fatigue_rate=0.0, seed=seed)
    sim = EmgSimulator(config)
    data = sim.generate(3.0)[int(0.5 * sim.fs):].astype(np.float64)
    sos = signal.butter(4, (20.0, 450.0), btype="bandpass", fs=sim.fs, output="sos")
    filtered = signal.sosfiltfilt(sos, data, axis=0)
    freqs, psd = signal.welch(filtered, fs=sim.fs, nperseg=512, axis=0)
    total = psd.sum(axis=1)
    in_band = total[(freqs >= 20) & (freqs <= 450)].sum()
    for low, high in BANDS:
        row[f"band_{low:g}_{high:g}"] = float(total[(freqs >= low) & (freqs < high)].sum() / in_band)
    centred = filtered - filtered.mean(axis=0)
    # channels with no signal at all (a bipolar pair equally far from every active unit) have no kurtosis
    live = centred.var(axis=0) > 1e-12 * centred.var(axis=0).max()
    row["channel_kurtosis"] = float(np.mean((centred[:, live] ** 4).mean(axis=0) / centred[:, live].var(axis=0) ** 2))
    return row


def subject_rows(subjects: int, first_seed: int, layout: str, log: Path | None) -> list[dict]:
    rows = []
    # every group's i-th subject before any group's (i+1)-th: a run cut short still has as many in every group
    for index in range(subjects):
        for group_index, (condition, severity) in enumerate(GROUPS):
            seed = first_seed + 100 * group_index + index
            row = {"condition": condition, "severity": severity, "seed": seed}
            for mvc in EFFORTS:
                row[f"{mvc:g}"] = shape_features(layout, condition, severity, mvc, seed)
            rows.append(row)
            if log is not None:
                with log.open("a") as stream:
                    stream.write(json.dumps(row) + "\n")
            print(f"{time.strftime('%H:%M:%S')} {condition}/{severity} seed {seed}: "
                  + " ".join(f"{m:g}%={row[f'{m:g}']['rms_mean_uv']:.0f}uV" for m in EFFORTS), flush=True)
    return rows


def design(rows: list[dict], kind: str, gain_db: float, seed: int = 0) -> np.ndarray:
    """Per-subject feature matrix: 'amplitude', 'gain_free' or 'both'."""
    gains = 10 ** (np.random.default_rng(seed).uniform(-gain_db, gain_db, len(rows)) / 20)
    amplitude = np.array([[np.log(row[f"{m:g}"][key] * gain) for m in EFFORTS for key in ("rms_mean_uv", "rms_max_uv")]
                          for row, gain in zip(rows, gains, strict=True)])
    gain_free = np.array([[row[f"{m:g}"][key] for m in EFFORTS for key in GAIN_FREE]
                          + [np.log(row["50"]["rms_mean_uv"] / row["20"]["rms_mean_uv"])] for row in rows])
    return {"amplitude": amplitude, "gain_free": gain_free, "both": np.hstack([amplitude, gain_free])}[kind]


def leave_one_subject_out(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    predicted = np.empty_like(labels)
    priors = np.full(len(np.unique(labels)), 1.0 / len(np.unique(labels)))  # equal: healthy has 1/7 of the subjects
    for held in range(len(labels)):
        train = np.arange(len(labels)) != held
        # shrinkage LDA: a fixed, standard linear classifier that copes with 17 features on ~70 subjects
        model = make_pipeline(StandardScaler(),
                              LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto", priors=priors))
        model.fit(features[train], labels[train])
        predicted[held] = model.predict(features[held:held + 1])[0]
    return predicted


def balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean([np.mean(predicted[labels == c] == c) for c in np.unique(labels)]))


def interval(labels: np.ndarray, predicted: np.ndarray, draws: int = 1000) -> tuple[float, float]:
    """95 % bootstrap interval of the balanced accuracy over subjects (resampled within each condition)."""
    rng = np.random.default_rng(0)
    classes = np.unique(labels)
    values = []
    for _ in range(draws):
        picks = np.concatenate([rng.choice(np.flatnonzero(labels == c), (labels == c).sum()) for c in classes])
        values.append(balanced_accuracy(labels[picks], predicted[picks]))
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def separability(rows: list[dict]) -> dict[str, dict]:
    conditions = sorted({row["condition"] for row in rows})
    labels = np.array([conditions.index(row["condition"]) for row in rows])
    out = {}
    for name, kind, gain_db in (("amplitude, no gain difference", "amplitude", 0.0),
                                ("amplitude, gain +-12 dB", "amplitude", 12.0),
                                ("gain-free features", "gain_free", 0.0),
                                ("gain-free + amplitude at +-12 dB", "both", 12.0)):
        predicted = leave_one_subject_out(design(rows, kind, gain_db), labels)
        low, high = interval(labels, predicted)
        confusion = [[int(((labels == t) & (predicted == p)).sum()) for p in range(len(conditions))]
                     for t in range(len(conditions))]
        out[name] = {"balanced_accuracy": balanced_accuracy(labels, predicted), "interval_95": [low, high],
                     "confusion_rows_true": confusion, "classes": conditions}
    return out


def myo_spatial_spread(root: Path = MYO) -> dict[str, dict[str, float]]:
    """The real Myo armband (healthy, ~200 Hz, int8 counts: no µV scale) in wrist flexion (label 1): per session,
    the channels' RMS spread (CoV over the 8 electrodes) and largest / mean channel RMS, each flexion segment
    after its first 0.5 s, the rest level's power subtracted per channel; both are free of the unknown gain, so they
    compare with the simulated ring's ``rms_cov`` (a check of the spatial pattern, not of amplitude)."""
    out = {}
    for session in sorted(path for path in root.iterdir() if path.is_dir()):
        table = np.loadtxt(session / "1.txt", delimiter=",")
        emg, label = table[:, :8] - table[:, :8].mean(axis=0), table[:, 8].astype(int)
        rest_power = (emg[label == 0] ** 2).mean(axis=0)
        edges = np.flatnonzero(np.diff(np.r_[0, (label == 1).astype(int), 0]))
        spreads, peaks = [], []
        for start, end in zip(edges[::2], edges[1::2], strict=True):
            segment = emg[start + 100 : end - 20]  # ~0.5 s of movement skipped at ~200 Hz
            if len(segment) < 200:
                continue
            rms = np.sqrt(np.maximum((segment**2).mean(axis=0) - rest_power, 0.0))
            spreads.append(float(rms.std() / rms.mean()))
            peaks.append(float(rms.max() / rms.mean()))
        out[session.name] = {"segments": len(spreads), "rms_cov_median": float(np.median(spreads)),
                             "rms_cov_min": float(min(spreads)), "rms_cov_max": float(max(spreads)),
                             "max_over_mean_median": float(np.median(peaks))}
    return out


def group_table(rows: list[dict]) -> dict[str, dict]:
    table = {}
    for condition, severity in GROUPS:
        members = [row for row in rows if (row["condition"], row["severity"]) == (condition, severity)]
        entry = {}
        for mvc in EFFORTS:
            for key in ("rms_mean_uv", "rms_max_uv", "mnf_hz", "mdf_hz", "kurtosis", "rms_cov", "drive"):
                values = np.array([row[f"{mvc:g}"][key] for row in members], dtype=float)
                entry[f"{key}@{mvc:g}"] = [float(np.median(values)), float(values.min()), float(values.max())]
        table[f"{condition}/{severity}"] = entry
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=10, help="subjects per condition x severity (default 10)")
    parser.add_argument("--first-seed", type=int, default=500, help="group g, subject i: seed first + 100 g + i")
    parser.add_argument("--layout", default="ring8")
    parser.add_argument("--rows", type=Path, help="append each subject's features here (JSON lines); an existing file "
                        "is read back instead of simulating (a run cut short: its complete rounds of groups)")
    args = parser.parse_args()
    if args.subjects < 2:
        raise SystemExit("--subjects must be at least 2")
    started = time.time()
    if args.rows is not None and args.rows.is_file():
        rows = [json.loads(line) for line in args.rows.read_text().splitlines() if line.strip()]
        rows = rows[: len(rows) - len(rows) % len(GROUPS)]  # complete rounds only: the same count in every group
    else:
        rows = subject_rows(args.subjects, args.first_seed, args.layout, args.rows)
    out = {"layout": args.layout, "subjects_per_group": args.subjects, "efforts_mvc": list(EFFORTS),
           "groups": group_table(rows), "separability": separability(rows),
           "wall_s": time.time() - started, "load_average_end": os.getloadavg()}
    if MYO.is_dir() and args.layout.startswith("ring"):
        out["real_myo_wrist_flexion"] = myo_spatial_spread()
    emit("sim_surface_separability", out)


if __name__ == "__main__":
    main()
