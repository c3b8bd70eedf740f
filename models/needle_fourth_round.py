"""The fourth round of the needle condition model's study: the candidates fixed in docs/needle-model.md ("Fourth
round") before any of them was cross-validated, in the protocol's own development folds (seed 0, the 123 development
people; the final-test people are never read).

    nice -n 10 .venv/bin/python -m models.needle_fourth_round features   # F and S of 4 copies, cached by content
    nice -n 10 .venv/bin/python -m models.needle_fourth_round guard      # check (c): 12-16 kHz level by class
    nice -n 10 .venv/bin/python -m models.needle_fourth_round evaluate   # baseline W + the 4 candidates
    nice -n 10 .venv/bin/python -m models.needle_fourth_round describe   # after the verdict: F, S by class

- F, high-band spectrum: per 0.5 s window, the median-PSD level of 3.2-4.8 and 4.8-6.4 kHz relative to the
  window's 1.6-3.2 kHz level; a band is read only where the source rate carries it (its top <= 0.9 x Nyquist).
- S, shapes of individual spikes: per recording, percentiles of each spike's log peak-to-peak amplitude, energy
  duration, phases, turns and RMS frequency, the polyphasic share and the spike rate.
- W:sub: the bundled recipe with the myopathic training people split into two subclasses by the training fold's
  own inner out-of-fold predictions (mixture-discriminant idea, Hastie & Tibshirani 1996), a 4-class logistic
  regression, myopathy = the sum of its two subclasses.

Needs the second round's window statistics (``python -m models.needle_second_round features``), whose perturbed
copies it redraws identically (same generator, same order). Prints one JSON line per spec with a paired bootstrap
over people of its patient balanced accuracy minus the baseline's, at 95 % and at 98.75 % (Bonferroni, 4 candidates).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import warnings
from typing import Any

import numpy as np

from dsp.resample import NEEDLE_FS
from models.needle_second_round import CACHE, DATA, N_COPIES

CANDIDATES = ("W", "W+F", "W+S", "W+F+S", "W:sub")  # W first: the bundled recipe, the baseline
FEATURE_VERSION = "fourth-2"  # part of every cache key: change it when a definition below changes

# F: high-band spectrum
REFERENCE_BAND_HZ = (1600.0, 3200.0)
HIGH_BANDS_HZ = ((3200.0, 4800.0), (4800.0, 6400.0))
CARRIED_FRACTION_OF_NYQUIST = 0.9  # the anti-alias filter's transition: a band is carried below 0.9 x Nyquist

# S: spikes. Detection as dsp.mup detects MUP discharges (MupSettings at 2026-12-06: 300 Hz high-pass for
# detection only, 4 robust SDs of it, at least 30 µV, 3 ms apart), copied here so these features do not move when
# dsp/mup*.py is retuned; the shape measures are ours (fixed in the docs before any run, no clinical source)
DETECTION_HIGHPASS_HZ = 300.0
SPIKE_THRESHOLD_SD = 4.0
SPIKE_MIN_UV = 30.0
SPIKE_SEPARATION_S = 0.003
SPIKE_HALF_SEGMENT_S = 0.006
MAX_SPIKES = 400
ENERGY_SPAN = (0.1, 0.9)
PHASE_FRACTION = 0.1  # a phase / turn counts from 10 % of the spike's peak |x|
POLYPHASIC_PHASES = 4  # more than 4 phases: polyphasic (Stålberg et al. 1986, J Clin Neurophysiol 3:313)
MIN_SPIKES = 5
SPIKE_MEASURES = ("log_peak_to_peak", "energy_duration_ms", "phases", "turns", "rms_frequency_khz")
SPIKE_NAMES = tuple(f"spike_{m}_p{q}" for m in SPIKE_MEASURES for q in (10, 50, 90)) + (
    "spike_polyphasic_share", "spike_log_rate")

GUARD_BAND_HZ = (12000.0, 16000.0)
BONFERRONI_LEVEL = 1 - 0.05 / 4


def band_carried(source_fs: float) -> np.ndarray:
    """(2,) bool: which of ``HIGH_BANDS_HZ`` a recording made at ``source_fs`` carries."""
    top = CARRIED_FRACTION_OF_NYQUIST * min(source_fs, NEEDLE_FS) / 2
    return np.array([hi <= top for _, hi in HIGH_BANDS_HZ])


def high_band_windows(windows: np.ndarray) -> np.ndarray:
    """(W, 2) log median PSD of each high band minus that of the 1.6-3.2 kHz band, per conditioned window."""
    from scipy.signal import welch

    freqs, psd = welch(np.asarray(windows, dtype=np.float64), fs=NEEDLE_FS, nperseg=1024, axis=1)

    def level(lo: float, hi: float) -> np.ndarray:
        return np.log(np.median(psd[:, (freqs >= lo) & (freqs < hi)], axis=1) + 1e-6)

    reference = level(*REFERENCE_BAND_HZ)
    return np.column_stack([level(lo, hi) - reference for lo, hi in HIGH_BANDS_HZ]).astype(np.float32)


def spike_peaks(signal: np.ndarray) -> np.ndarray:
    """Indices of the largest peaks of the 300 Hz high-passed |x| above ``SPIKE_THRESHOLD_SD`` robust SDs (and
    ``SPIKE_MIN_UV``), larger first kept, none within ``SPIKE_SEPARATION_S`` of a kept one, at most
    ``MAX_SPIKES``, each with a whole segment inside the signal."""
    from scipy.signal import butter, sosfilt

    detection = sosfilt(butter(2, DETECTION_HIGHPASS_HZ, btype="highpass", fs=NEEDLE_FS, output="sos"),
                        np.asarray(signal, dtype=np.float64))
    absx = np.abs(detection)
    noise = np.median(np.abs(detection - np.median(detection))) / 0.6745  # Quiroga et al. 2004, as dsp.mup
    threshold = max(SPIKE_THRESHOLD_SD * noise, SPIKE_MIN_UV)
    half = int(round(SPIKE_HALF_SEGMENT_S * NEEDLE_FS))
    inner = absx[1:-1]
    candidates = np.flatnonzero((inner > threshold) & (inner >= absx[:-2]) & (inner > absx[2:])) + 1
    candidates = candidates[(candidates >= half) & (candidates < len(absx) - half)]
    order = candidates[np.argsort(-absx[candidates], kind="stable")]
    separation = int(round(SPIKE_SEPARATION_S * NEEDLE_FS))
    taken = np.zeros(len(absx), dtype=bool)
    kept: list[int] = []
    for index in order:
        if taken[index]:
            continue
        kept.append(int(index))
        taken[max(0, index - separation):index + separation + 1] = True
        if len(kept) == MAX_SPIKES:
            break
    return np.array(sorted(kept), dtype=np.int64)


def spike_shapes(signal: np.ndarray) -> np.ndarray:
    """(n, 5) per spike of a conditioned signal at ``NEEDLE_FS``: ``SPIKE_MEASURES``."""
    from dsp.mup_measures import count_turns

    x = np.asarray(signal, dtype=np.float64)
    peaks = spike_peaks(x)
    half = int(round(SPIKE_HALF_SEGMENT_S * NEEDLE_FS))
    rows = []
    for peak in peaks:
        segment = x[peak - half:peak + half + 1]
        height = abs(segment[half])
        energy = np.cumsum(segment**2)
        energy /= energy[-1]
        first, last = int(np.argmax(energy >= ENERGY_SPAN[0])), int(np.argmax(energy >= ENERGY_SPAN[1]))
        span = segment[first:last + 1]
        strong = span[np.abs(span) > PHASE_FRACTION * height]
        phases = int(np.count_nonzero(np.diff(np.sign(strong)) != 0)) + 1 if strong.size else 0
        turns = len(count_turns(span, PHASE_FRACTION * height))
        rms_ratio = np.sqrt(np.mean(np.diff(segment) ** 2) / (np.mean(segment**2) + 1e-12))
        rms_frequency = rms_ratio * NEEDLE_FS / (2 * np.pi)
        rows.append([np.log(np.ptp(segment) + 1e-3), (last - first + 1) / NEEDLE_FS * 1000.0, phases, turns,
                     rms_frequency / 1000.0])
    return np.array(rows, dtype=np.float64).reshape(-1, len(SPIKE_MEASURES))


def spike_summary(signal: np.ndarray) -> np.ndarray:
    """(17,) ``SPIKE_NAMES`` of a conditioned recording; NaN shapes where fewer than ``MIN_SPIKES`` spikes."""
    shapes = spike_shapes(signal)
    rate = np.log1p(len(shapes) / (len(signal) / NEEDLE_FS))
    if len(shapes) < MIN_SPIKES:
        return np.array([np.nan] * (len(SPIKE_NAMES) - 1) + [rate])
    percentiles = np.percentile(shapes, [10, 50, 90], axis=0).T.ravel()  # measure-major, as SPIKE_NAMES
    return np.concatenate([percentiles, [np.mean(shapes[:, 2] > POLYPHASIC_PHASES), rate]])


def _content_key(signal: np.ndarray, source_fs: float) -> str:
    digest = hashlib.sha1(np.ascontiguousarray(signal, dtype=np.float32).tobytes())
    digest.update(f"{source_fs}|{FEATURE_VERSION}|{NEEDLE_FS}".encode())
    return digest.hexdigest()[:20]


def recording_candidates(signal: np.ndarray, source_fs: float) -> tuple[np.ndarray, np.ndarray]:
    """(F windows (W, 2), S (17,)) of a raw recording at ``NEEDLE_FS`` made at ``source_fs``; cached by content."""
    from models.needle_features import condition, cut_windows

    folder = CACHE / "fourth"
    path = folder / f"{_content_key(signal, source_fs)}.npz"
    if path.exists():
        stored = np.load(path, allow_pickle=False)
        return stored["high"], stored["spikes"]
    conditioned = condition(signal)
    high, spikes = high_band_windows(cut_windows(conditioned)), spike_summary(conditioned)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(path, high=high, spikes=spikes)
    return high, spikes


def extract(signals: list[np.ndarray]) -> None:
    """F and S of every recording and its 3 perturbed copies, drawn as the second round draws them."""
    from models.needle_features import perturbed

    for copy in range(N_COPIES):
        rng = np.random.default_rng([0, copy])
        highs, spikes, rates = [], [], []
        for signal in signals:
            rate = 32768.0
            if copy:
                signal, rate = perturbed(signal, rng)
            high, spike = recording_candidates(signal, rate)
            highs.append(high)
            spikes.append(spike)
            rates.append(rate)
        np.savez(CACHE / f"fourth-v{copy}.npz", high=np.concatenate(highs), counts=[len(h) for h in highs],
                 spikes=np.array(spikes), rates=np.array(rates))
        print(f"copy {copy} done", flush=True)


# ---- check (c): is the band above the physiological range a set-up difference? -----------------------------------

def guard(infos: list[Any]) -> dict[str, Any]:
    """Per development recording as recorded (32768 Hz, not resampled) the log median PSD at 12-16 kHz; its AUC
    healthy vs patients over recordings and over people (person means), and the class quartiles. The final-test
    people are left out (never read)."""
    import lzma
    from types import SimpleNamespace

    from scipy.signal import welch
    from sklearn.metrics import roc_auc_score

    from models.needle_cv_tasks import FoldPlan, development_rows
    from monitor.recordings.asc import parse

    dev, _ = development_rows(SimpleNamespace(patients=np.array([i.patient for i in infos]),
                                              labels=np.array([i.label_index for i in infos])), FoldPlan())
    infos = [infos[i] for i in dev]
    levels = []
    for info in infos:
        with lzma.open(info.path) as handle:
            x = parse(handle.read(), info.path.name)[:, 0].astype(np.float64)
        freqs, psd = welch(x - x.mean(), fs=info.fs, nperseg=4096)
        inside = (freqs >= GUARD_BAND_HZ[0]) & (freqs < GUARD_BAND_HZ[1])
        levels.append(float(np.log(np.median(psd[inside]) + 1e-12)))
    levels_arr = np.array(levels)
    labels = np.array([i.label_index for i in infos])
    patients = np.array([i.patient for i in infos])
    people = np.unique(patients)
    person_level = np.array([levels_arr[patients == p].mean() for p in people])
    person_label = np.array([labels[patients == p][0] for p in people])
    return {
        "band_hz": GUARD_BAND_HZ,
        "auc_healthy_vs_patients_recordings": round(float(roc_auc_score(labels == 0, levels_arr)), 3),
        "auc_healthy_vs_patients_people": round(float(roc_auc_score(person_label == 0, person_level)), 3),
        "quartiles_log_psd_uv2_per_hz": {name: [round(float(v), 2) for v in np.percentile(
            levels_arr[labels == k], [25, 50, 75])] for k, name in enumerate(("healthy", "myopathy", "neuropathy"))},
        "note": "development recordings only (no model, no fold)",
    }


# ---- evaluation -------------------------------------------------------------------------------------------------

class FourthStudy:
    """The second round's study (W, people, folds) with F and S of every copy."""

    def __init__(self) -> None:
        from models.needle_second_round import Study
        from models.needle_training import recording_statistics

        self.base = Study()
        self.high, self.carried, self.spikes = [], [], []
        for copy in range(N_COPIES):
            loaded = np.load(CACHE / f"fourth-v{copy}.npz", allow_pickle=False)
            counts = loaded["counts"]
            if not np.array_equal(counts, [len(w) for w in self.base.windows[copy]]):
                raise SystemExit(f"fourth-v{copy}.npz does not match the window statistics: delete it")
            windows = np.split(loaded["high"], np.cumsum(counts)[:-1])
            carried = np.array([band_carried(rate) for rate in loaded["rates"]])  # (R, 2)
            statistics = recording_statistics(windows)  # (R, 8): mean, SD, p10, p90 of the 2 bands
            statistics[np.tile(~carried, 4)] = np.nan  # the block is [mean b1, mean b2, sd b1, sd b2, ...]
            self.high.append(statistics)
            self.carried.append(carried.astype(float))
            self.spikes.append(loaded["spikes"])

    def block(self, names: list[str], copy: int) -> np.ndarray:
        parts = []
        for name in names:
            if name == "W":
                parts.append(self.base.blocks[copy]["W"])
            elif name == "F":
                parts += [self.high[copy], self.carried[copy]]
            elif name == "S":
                parts.append(self.spikes[copy])
            else:
                raise SystemExit(f"unknown block {name!r} (W, F, S)")
        return np.concatenate(parts, axis=1)


def _impute(train_x: np.ndarray, others: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Missing numbers (a band not carried, too few spikes) -> the training rows' mean of that column."""
    means = np.nan_to_num(np.nanmean(train_x, axis=0), nan=0.0)

    def fill(x: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(x), means, x)
    return fill(train_x), [fill(x) for x in others]


def fit_subclass_logistic(x: np.ndarray, y: np.ndarray, groups: np.ndarray, inner_folds: int = 3
                          ) -> tuple[Any, np.ndarray, np.ndarray, dict[str, Any]]:
    """Candidate 4: myopathic people split by the inner out-of-fold predictions of the bundled recipe (no bias):
    mean p(neuropathy) > mean p(healthy) -> subclass 3 ("myopathy, neurogenic-looking"). A 4-class class-balanced
    logistic regression (each diagnosis the same total weight), C and the per-class log-bias (merged three classes)
    chosen on the same inner folds. -> (pipeline, merge (4, 3), bias (3,), info)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from models.needle_splits import classification_figures, patient_probabilities
    from models.needle_training import BIAS_GRID, STATISTICS_C_GRID, fit_statistics_logistic

    splitter = StratifiedGroupKFold(n_splits=inner_folds, shuffle=True, random_state=0)
    three, _, info3 = fit_statistics_logistic(x, y, groups, with_bias=False, inner_folds=inner_folds)
    inner = cross_val_predict(three, x, y, groups=groups, cv=splitter, method="predict_proba")
    y4 = y.copy()
    myopathic = np.unique(groups[y == 1])
    neurogenic = [p for p in myopathic if inner[groups == p, 2].mean() > inner[groups == p, 0].mean()]
    y4[np.isin(groups, neurogenic) & (y == 1)] = 3
    info: dict[str, Any] = {"neurogenic_looking_people": len(neurogenic), "myopathic_people": len(myopathic),
                            "C3": info3["C"]}
    merge = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0]], float)
    weights = np.zeros(len(y))
    for label in range(3):
        weights[y == label] = 1.0 / np.count_nonzero(y == label)

    def model_for(c: float) -> Any:
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))

    def merged_inner(c: float) -> np.ndarray:
        out = np.zeros((len(y), 3))
        for fit_rows, held in splitter.split(x, y, groups):
            model = model_for(c).fit(x[fit_rows], y4[fit_rows], logisticregression__sample_weight=weights[fit_rows])
            out[held] = model.predict_proba(x[held]) @ merge[model.classes_]
        return out

    best = (-1.0, None, None)
    for c in STATISTICS_C_GRID:
        p = merged_inner(c)
        score = float(classification_figures(y, p.argmax(1))["balanced_accuracy"])
        if score > best[0]:
            best = (score, c, p)
    _, c_best, inner_p = best
    bias_best = (-1.0, 0.0, np.zeros(3))
    for b1 in BIAS_GRID:
        for b2 in BIAS_GRID:
            candidate = np.array([0.0, b1, b2])
            _, means, classes = patient_probabilities(groups, inner_p * np.exp(candidate), y)
            accuracy = float(classification_figures(classes, means.argmax(1))["balanced_accuracy"])
            if (accuracy, -np.abs(candidate).sum()) > bias_best[:2]:
                bias_best = (accuracy, -float(np.abs(candidate).sum()), candidate)
    model = model_for(c_best).fit(x, y4, logisticregression__sample_weight=weights)
    info.update({"C": c_best, "bias": [float(v) for v in bias_best[2]], "inner_patient_ba": round(bias_best[0], 4)})
    return model, merge[model.classes_], bias_best[2], info


def out_of_fold(study: FourthStudy, spec: str) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """(recorded (D, 3), perturbed (3, D, 3)) out-of-fold probabilities of the development recordings, and each
    fold's inner choices."""
    from models.needle_training import fit_statistics_logistic

    features, _, variant = spec.partition(":")
    names = features.split("+")
    base = study.base
    recorded = np.zeros((len(base.dev), 3))
    perturbed = np.zeros((N_COPIES - 1, len(base.dev), 3))
    choices = []
    for train_rows, test_rows in base.folds:
        train, test = base.dev[train_rows], base.dev[test_rows]
        x = np.concatenate([study.block(names, c)[train] for c in range(N_COPIES)])
        x, tests = _impute(x, [study.block(names, c)[test] for c in range(N_COPIES)])
        y, groups = np.tile(base.labels[train], N_COPIES), np.tile(base.patients[train], N_COPIES)
        if variant == "sub":
            model, merge, bias, info = fit_subclass_logistic(x, y, groups)

            def predict(rows: np.ndarray, model: Any = model, merge: np.ndarray = merge,
                        bias: np.ndarray = bias) -> np.ndarray:
                return (model.predict_proba(rows) @ merge) * np.exp(bias)
        elif variant == "":
            model, bias, info = fit_statistics_logistic(x, y, groups, with_bias=True)

            def predict(rows: np.ndarray, model: Any = model, bias: np.ndarray = bias) -> np.ndarray:
                return np.exp(model.predict_log_proba(rows) + bias)
        else:
            raise SystemExit(f"unknown variant {variant!r} (none, sub)")
        choices.append(info)
        for c in range(N_COPIES):
            p = predict(tests[c])
            p /= p.sum(1, keepdims=True)
            if c == 0:
                recorded[test_rows] = p
            else:
                perturbed[c - 1, test_rows] = p
    return recorded, perturbed, choices


def evaluate(study: FourthStudy, specs: list[str]) -> list[dict[str, Any]]:
    """The third round's table (models.needle_interference_study.evaluate) for this round's candidates, with the
    paired difference's Bonferroni interval beside its 95 % one."""
    from models.needle_interference_study import evaluate as evaluate_candidates

    return evaluate_candidates(study, specs, fold_predictions=out_of_fold, cache_prefix="oof-fourth",
                               choices_row=lambda choices: choices, extra_level=BONFERRONI_LEVEL)


def describe(study: FourthStudy) -> list[dict[str, Any]]:
    """After the verdict, descriptive only: per F and S number (as recorded, development people, person means),
    the class quartiles and the AUC for "myopathy higher" against healthy and against neuropathy."""
    from sklearn.metrics import roc_auc_score

    base = study.base
    dev = base.dev
    names = [f"high_{int(lo)}_{int(hi)}_mean" for lo, hi in HIGH_BANDS_HZ] + list(SPIKE_NAMES)
    values = np.concatenate([study.high[0][:, :2], study.spikes[0]], axis=1)[dev]
    patients, labels = base.patients[dev], base.labels[dev]
    people = np.unique(patients)
    person = np.array([np.nanmean(values[patients == p], axis=0) for p in people])
    person_label = np.array([labels[patients == p][0] for p in people])
    rows = []
    for column, name in enumerate(names):
        v = person[:, column]
        ok = np.isfinite(v)

        def auc(other: int, v: np.ndarray = v, ok: np.ndarray = ok) -> float:
            keep = ok & np.isin(person_label, [1, other])
            return round(float(roc_auc_score(person_label[keep] == 1, v[keep])), 2)
        rows.append({"name": name, **{cls: [round(float(q), 2) for q in np.percentile(v[ok & (person_label == k)],
                                                                                        [25, 50, 75])]
                                      for k, cls in enumerate(("healthy", "myopathy", "neuropathy"))},
                     "auc_m_vs_h": auc(0), "auc_m_vs_n": auc(2)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("features", "guard", "evaluate", "describe"))
    parser.add_argument("specs", nargs="*",
                        help="blocks joined by + (W, F, S), ':sub' for subclasses; the first is the baseline")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"the shared clinical set is not at {DATA}", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore")  # scikit-learn's convergence chatter
    from models.needle_corpus import scan

    if args.step == "features":
        from models.needle_features import load_signals

        extract(load_signals(scan(DATA)))
        return 0
    if args.step == "guard":
        print(json.dumps(guard(scan(DATA))))
        return 0
    if args.step == "describe":
        describe(FourthStudy())
        return 0
    evaluate(FourthStudy(), args.specs or list(CANDIDATES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
