"""`train --mode needle`: the whole protocol on a labelled needle study, start to end.

1. Set aside ``test_fraction`` of the patients (stratified by class, ``seed``) as the final test, recorded in the
   output. 2. Patient-wise stratified ``folds``-fold cross-validation of every contender on the rest, on the same
   folds. 3. The product contender (a NeuroFusionNet variant or the statistics model, ``PRODUCT_CONTENDERS``) with
   the best cross-validated patient-level balanced accuracy (ties: fewer parts) is trained on every non-test patient
   and bundled. 4. The final test, once, and only when asked (``final_test``): every
   contender trained on all non-test patients, judged on the test patients as recorded, and the bundled model on
   them resampled to 4 and 8 kHz and at +-6 dB. Without it (a re-run reproducing the CV figures, a site retraining)
   the chosen contender is still trained on all non-test patients and bundled, but no model is judged on the
   test patients (their recordings are loaded with the rest, as before, and only used for the split);
   ``final_test_read`` in metrics.json and the card says which it was.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dsp.resample import NEEDLE_FS, resample
from models.needle_corpus import LABELS, NeedleRecordingInfo
from models.needle_cv_tasks import FoldPlan, cross_validated_probabilities, development_rows
from models.needle_features import DEFAULT_CACHE
from models.needle_splits import evaluate, final_test_patients
from models.needle_training import (
    ABLATION_ONLY,
    NETWORK_VARIANTS,
    STATISTICS_MODEL,
    NeedleData,
    NeedleView,
    NetTraining,
    contenders,
    network_model,
    prepare,
    view_of,
)

ROBUSTNESS = {"4 kHz": ("rate", 4000.0), "8 kHz": ("rate", 8000.0), "+6 dB": ("gain", 6.0), "-6 dB": ("gain", -6.0)}
PRODUCT_PREFIX = ("neurofusionnet", "NFN")
# contenders the product can run (a NeuroFusionNet variant, or the statistics model in its torch form): the bundled
# model is the one of them with the best cross-validated patient-level balanced accuracy
PRODUCT_CONTENDERS = (STATISTICS_MODEL,)


def perturbed_view(data: NeedleData, rows: list[int], kind: str, value: float) -> NeedleView:
    """The recordings of ``rows`` as another site would give them: at another rate, or another gain."""
    signals, rates = [], []
    for i in rows:
        if kind == "rate":
            signals.append(resample(resample(data.signals[i], NEEDLE_FS, value), value, NEEDLE_FS))
            rates.append(value)
        else:
            signals.append(data.signals[i] * np.float32(10 ** (value / 20)))
            rates.append(float(data.infos[i].fs or NEEDLE_FS))
    full = view_of(signals, rates)
    features, crops = [np.empty(0)] * len(data.signals), [np.empty(0)] * len(data.signals)
    for position, i in enumerate(rows):
        features[i], crops[i] = full.features[position], full.crops[position]
    return NeedleView(features, crops)


def statistics_training() -> dict[str, Any]:
    """How the statistics model is fitted (``models.needle_training.fit_statistics_logistic``)."""
    from models.needle_training import BIAS_GRID, STATISTICS_C_GRID

    return {"model": "class-balanced multinomial logistic regression on standardised recording statistics",
            "rows": "recordings and 3 perturbed copies of each", "C_grid": list(STATISTICS_C_GRID),
            "bias_grid": list(BIAS_GRID), "inner_folds": 3}


def parts_of(name: str) -> int:
    if name in PRODUCT_CONTENDERS:
        return 1
    config = NETWORK_VARIANTS.get(name.removeprefix("NFN "), {})
    return 4 - sum(1 for value in config.values() if value is False)


def compact(figures: dict[str, Any]) -> dict[str, Any]:
    return {level: {k: v for k, v in values.items()} for level, values in figures.items()}


def run(infos: list[NeedleRecordingInfo], out: Path, seed: int = 0, folds: int = 5, test_fraction: float = 0.2,
        only: list[str] | None = None, settings: NetTraining | None = None, n_boot: int = 1000,
        default_fs: float | None = None, log: Any = print, n_variants: int = 4, with_mup: bool = True,
        cache_dir: Path | None = DEFAULT_CACHE, ablation: bool = False,
        run_tasks: Callable[[Callable, list[tuple]], list] | None = None, final_test: bool = True) -> dict[str, Any]:
    """The whole protocol (``ablation``: with the ``ABLATION_ONLY`` network rows too); ``run_tasks`` (e.g. Dask
    tasks) runs every (contender, fold) of the cross-validation as
    its own task, else they run here one after another (models.needle_cv_tasks). ``final_test`` False: the held-out
    patients stay unread (`train --mode needle` asks for them only with ``--final-test``)."""
    started = time.perf_counter()
    load_before = os.getloadavg()
    out.mkdir(parents=True, exist_ok=True)
    data = prepare(infos, n_variants, seed, cache_dir, with_mup, default_fs)
    log(f"read {len(infos)} recordings of {len(set(data.patients))} people in {time.perf_counter() - started:.0f} s")
    plan = FoldPlan(seed, folds, test_fraction, n_variants, with_mup, default_fs,
                    str(cache_dir) if cache_dir is not None else None)
    test_people = set(final_test_patients(data.patients, data.labels, test_fraction, seed))
    dev, fold_rows = development_rows(data, plan)
    test = np.flatnonzero([p in test_people for p in data.patients])
    candidates = contenders()
    if only:
        candidates = {name: fit for name, fit in candidates.items() if any(o in name for o in only)}
    elif not ablation:  # the costly ablation rows only when asked (ABLATION_ONLY)
        candidates = {name: fit for name, fit in candidates.items() if name not in ABLATION_ONLY}
    cv: dict[str, Any] = {}
    # here: one contender at a time (figures written as each ends); as tasks: every (contender, fold) at once
    batches = [[name] for name in candidates] if run_tasks is None else [list(candidates)]
    for batch in batches:
        begun = time.perf_counter()
        out_of_fold = cross_validated_probabilities(data, batch, plan, run_tasks)
        for name in batch:
            cv[name] = {**evaluate(data.patients[dev], data.labels[dev], out_of_fold[name], n_boot),
                        "seconds": round(time.perf_counter() - begun, 1)}
            patient = cv[name]["per_patient"]
            (out / "cross_validation_partial.json").write_text(json.dumps(cv, indent=1) + "\n")
            log(f"CV {name}: patient balanced accuracy {patient['balanced_accuracy']:.3f} "
                f"{patient['interval_95']['balanced_accuracy']}, sensitivity "
                f"{ {k: round(v, 2) for k, v in patient['sensitivity'].items()} } ({cv[name]['seconds']:.0f} s)")
    networks = [name for name in cv if name.startswith(PRODUCT_PREFIX) or name in PRODUCT_CONTENDERS]
    chosen = max(networks, key=lambda n: (round(cv[n]["per_patient"]["balanced_accuracy"], 3), -parts_of(n)),
                 default=None)
    cv_seconds = time.perf_counter() - started
    log(f"cross-validation done in {cv_seconds / 60:.1f} min; bundled configuration: {chosen}")

    final: dict[str, Any] = {}
    robustness: dict[str, Any] = {}
    bundled = None
    # the perturbed copies are of test patients' recordings: made only when the final test is read
    views = ({label: perturbed_view(data, list(test), kind, value) for label, (kind, value) in ROBUSTNESS.items()}
             if final_test else {})
    # the bundled configuration first and every row written as it ends: a run cut short keeps what it measured
    for name in sorted(candidates, key=lambda n: n != chosen):
        if not final_test and name != chosen:
            continue  # nothing to bundle, nothing to judge: training the others would be wasted time
        predict = candidates[name](data, dev, np.random.default_rng(seed))
        if name == chosen:
            bundled = predict
        if not final_test:
            continue
        final[name] = evaluate(data.patients[test], data.labels[test], predict(data.variants[0], list(test)), n_boot)
        robustness[name] = {label: evaluate(data.patients[test], data.labels[test], predict(view, list(test)),
                                            n_boot)["per_patient"] for label, view in views.items()}
        (out / "final_test_partial.json").write_text(json.dumps(
            {"final_test": final, "robustness_final_test_per_patient": robustness}, indent=1) + "\n")
        log(f"final test {name}: patient balanced accuracy {final[name]['per_patient']['balanced_accuracy']:.3f}")
    total_seconds = time.perf_counter() - started
    config = (bundled.network.config.to_dict() if chosen in PRODUCT_CONTENDERS and bundled is not None
              else NETWORK_VARIANTS.get(chosen.removeprefix("NFN "), {}) if chosen else None)
    report = {
        "data": {"recordings": len(infos), "people": int(len(set(data.patients))),
                 "per_class_people": {label: int(len({p for p, y in zip(data.patients, data.labels, strict=True)
                                                      if y == k})) for k, label in enumerate(LABELS)}},
        "seed": seed,
        "final_test_patients": sorted(test_people),
        "final_test_read": bool(final_test),
        "folds": [sorted(set(data.patients[dev[rows]])) for _, rows in fold_rows],
        "cross_validation": cv,
        "final_test": final,
        "robustness_final_test_per_patient": robustness,
        "bundled_configuration": {"name": chosen, "network": config,
                                  "training": statistics_training() if chosen in PRODUCT_CONTENDERS
                                  else (settings or NetTraining()).__dict__},
        "minutes": {"cross_validation": round(cv_seconds / 60, 2), "total": round(total_seconds / 60, 2)},
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "cpu_count": os.cpu_count(),
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "table.md").write_text(markdown_table(report) + "\n")
    if bundled is not None:
        from models.needle_model import save_needle_model

        save_needle_model(out / "needle.pt", bundled.network, card(report, chosen, bundled.info))
    log(f"wrote {out / 'metrics.json'}, {out / 'table.md'}" + (f", {out / 'needle.pt'}" if bundled else ""))
    return report


def card(report: dict[str, Any], chosen: str, info: dict[str, Any]) -> dict[str, Any]:
    cv, final = report["cross_validation"][chosen], report["final_test"].get(chosen)
    final_figures: dict[str, Any] | str = "not read in this run (train --mode needle without --final-test)"
    if final is not None:
        final_figures = {level: _headline(final[level]) for level in ("per_patient", "per_recording")}
    robustness = report["robustness_final_test_per_patient"].get(chosen)
    return {
        "model_id": ("needle-statistics-emg-clinical-v2" if chosen in PRODUCT_CONTENDERS
                     else "neurofusionnet-needle-emg-clinical-v1"),
        "classes": list(LABELS),
        "fs": NEEDLE_FS,
        "input": "one needle EMG channel, 4-32 kHz, µV; resampled to 16384 Hz, 20 Hz high-pass, 0.5 s windows",
        "intended_use": "decision support for a clinician reading needle EMG, not a diagnosis",
        "data": {**report["data"], "source": "Messekher et al., Mendeley Data (2023), DOI 10.17632/543xpjycj9.1"},
        "split": {"final_test_patients": report["final_test_patients"], "folds": report["folds"],
                  "seed": report["seed"], "by": "patient (class, number), stratified by class"},
        "configuration": {"name": chosen, **report["bundled_configuration"]},
        "trained_on": ("every patient outside the final test (and 3 perturbed copies of each recording); C and the "
                       "class biases chosen on 3 inner patient-wise folds of them" if chosen in PRODUCT_CONTENDERS
                       else "every patient outside the final test; stopping step on an inner 20 % patient split"),
        "stopping" if chosen not in PRODUCT_CONTENDERS else "inner_choices": info,
        "figures": {"cross_validation": {level: _headline(cv[level]) for level in ("per_patient", "per_recording")},
                    "final_test": final_figures,
                    "robustness_final_test_per_patient": final_figures if robustness is None else {
                        k: _headline(v) for k, v in robustness.items()}},
        "final_test_read": report.get("final_test_read", final is not None),
        "caveats": ["published figures on this set split by file, not by patient, so they leak and are not "
                    "comparable", "one hospital (Algiers), biceps and deltoid only; other muscles and sites unseen",
                    "a patient's verdict is the mean of their recordings' probabilities"],
    }


def _headline(figures: dict[str, Any]) -> dict[str, Any]:
    return {"balanced_accuracy": round(figures["balanced_accuracy"], 3),
            "interval_95": [round(v, 3) for v in figures["interval_95"]["balanced_accuracy"]],
            "sensitivity": {k: round(v, 3) for k, v in figures["sensitivity"].items()},
            "specificity": {k: round(v, 3) for k, v in figures["specificity"].items()},
            "macro_f1": round(figures["macro_f1"], 3), "n": figures["n"],
            "confusion_matrix": figures["confusion_matrix"]}


def markdown_table(report: dict[str, Any]) -> str:
    lines = []
    for title, key in (("Cross-validation (5 folds, non-test patients)", "cross_validation"),
                       ("Final test (used once)", "final_test")):
        if key == "final_test" and not report.get("final_test_read", True):
            return "\n".join(lines + ["### Final test", "", "Not read in this run (`train --mode needle` without "
                                       "`--final-test`): no model was judged on the test patients."])
        lines += [f"### {title}", "", "| model | patient BA [95 % CI] | sens H / M / N | spec H / M / N | "
                  "macro F1 | recording BA [95 % CI] |", "|---|---|---|---|---|---|"]
        for name, figures in report[key].items():
            p, r = figures["per_patient"], figures["per_recording"]
            ci, rci = p["interval_95"]["balanced_accuracy"], r["interval_95"]["balanced_accuracy"]
            sens = " / ".join(f"{p['sensitivity'][k]:.2f}" for k in LABELS)
            spec = " / ".join(f"{p['specificity'][k]:.2f}" for k in LABELS)
            lines.append(f"| {name} | {p['balanced_accuracy']:.3f} [{ci[0]:.2f}, {ci[1]:.2f}] | {sens} | {spec} | "
                         f"{p['macro_f1']:.3f} | {r['balanced_accuracy']:.3f} [{rci[0]:.2f}, {rci[1]:.2f}] |")
        lines.append("")
    lines += ["### Final-test patients perturbed (patient BA [95 % CI])", "",
              "| model | " + " | ".join(ROBUSTNESS) + " |", "|---|" + "---|" * len(ROBUSTNESS)]
    for name, rows in report["robustness_final_test_per_patient"].items():
        cells = [f"{rows[k]['balanced_accuracy']:.3f} [{rows[k]['interval_95']['balanced_accuracy'][0]:.2f}, "
                 f"{rows[k]['interval_95']['balanced_accuracy'][1]:.2f}]" for k in ROBUSTNESS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


__all__ = ["run", "network_model"]
