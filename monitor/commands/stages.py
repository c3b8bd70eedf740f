"""`neurofusion stages`: each of the seed paper's extra stages measured against its simpler alternative.

Writes ``stages.json`` (every figure) and ``stages.md`` (one table row per comparison, with a verdict) into --out.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

STAGES = ("mains", "baseline", "denoising", "features", "augmentation", "prognosis", "resources")
DEFAULT_DATA = Path("../shared/data")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "stages",
        help="measure each paper stage (adaptive filters, autoencoder, feature analysis, augmentation, prognosis) "
        "against its simpler alternative",
        description="Run the comparisons behind docs/paper-stages.md: adaptive mains canceller vs fixed notch on a "
        "drifting 50.3 Hz hum; adaptive baseline vs the 20 Hz high-pass; denoising autoencoder vs causal filters "
        "alone (SNR, RMSE on simulated held-out subjects); PCA and Random Forest importance of the handcrafted "
        "features with selection on the Myo recordings; augmentation's effect on cross-session accuracy; the LSTM "
        "fatigue forecast vs linear extrapolation; per-stage processing time, CPU and memory. Writes stages.json "
        "and stages.md. Models are cached under ~/.cache/neurofusion (private to you).",
    )
    parser.add_argument("--out", default="stages-report", help="output folder (default ./stages-report)")
    parser.add_argument("--only", help=f"comma list of stages to run: {', '.join(STAGES)} (default all)")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="folder holding myo-gestures/ (../shared/data)")
    parser.add_argument("--quick", action="store_true", help="smaller simulations and trainings (a smoke run)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every simulation and training (default 0)")
    parser.set_defaults(handler=run)


def _rows(stage: str, figures: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"stage": stage, "figures": figures, "rows": rows}


def _simulated_emg(seconds: float, seed: int) -> np.ndarray:
    from simulators.emg import EmgSimulator, SimulationConfig

    config = SimulationConfig(layout="ring8", fs=2048.0, profile="hold", mvc_percent=30.0, artifacts=("noise",),
                              mains_hz=0.0, seed=seed + 3)  # fmt: skip
    return EmgSimulator(config).generate(seconds).astype(np.float64)


def mains_stage(args: argparse.Namespace) -> dict[str, Any]:
    from dsp.adaptive import drifting_mains, mains_canceller_split, mains_removal_figures
    from dsp.filters import notch

    fs = 2048.0
    clean = _simulated_emg(10.0 if args.quick else 20.0, args.seed)
    hum, _ = drifting_mains(len(clean), fs, clean.shape[1], 50.25, 50.35, seed=args.seed + 1)
    _, clean_part, hum_part = mains_canceller_split(clean, hum, fs)
    adaptive = mains_removal_figures(clean, hum, clean_part, hum_part, fs)
    fixed = notch(fs, 50.0, clean.shape[1], max_hz=450.0)
    fixed_clean = fixed.process(clean)
    fixed.reset()
    notch_figures = mains_removal_figures(clean, hum, fixed_clean, fixed.process(hum), fs)
    helps = adaptive["margin_db"] > notch_figures["margin_db"]
    figures = {"signal": "simulated ring8 2048 Hz 30% MVC hold + hum 50.25->50.35 Hz, +-20% amplitude, harmonics "
               "1/3/5", "adaptive": adaptive, "fixed_notch_q30": notch_figures}  # fmt: skip
    row = {"stage": "adaptive mains canceller", "alternative": "fixed IIR notch at 50 Hz (Q 30) + harmonics",
           "metric": "hum removed (dB) / EMG in-band change (dB)",
           "stage_value": f"{adaptive['hum_reduction_db']:.1f} / {adaptive['inband_change_db']:+.2f}",
           "alternative_value": f"{notch_figures['hum_reduction_db']:.1f} / {notch_figures['inband_change_db']:+.2f}",
           "helps": helps}  # fmt: skip
    return _rows("mains", figures, [row])


def baseline_stage(args: argparse.Namespace) -> dict[str, Any]:
    from dsp.adaptive import AdaptiveBaseline
    from dsp.filters import highpass
    from models.denoising import snr_rmse

    fs = 2048.0
    clean = _simulated_emg(10.0 if args.quick else 20.0, args.seed)
    rng = np.random.default_rng(args.seed)
    t = np.arange(len(clean)) / fs
    wander = 200.0 * np.sin(2 * np.pi * 0.3 * t)[:, None] * rng.uniform(0.5, 1.0, clean.shape[1])
    steps = np.zeros_like(clean)
    for start in rng.integers(int(fs), len(clean) - int(fs), 6):
        steps[start:, rng.integers(0, clean.shape[1])] += rng.choice([-1, 1]) * rng.uniform(300, 1500)
    corrupted = clean + wander + steps
    skip = int(1.0 * fs)
    adaptive = snr_rmse(AdaptiveBaseline(fs, clean.shape[1]).process(corrupted)[skip:], clean[skip:])
    high = highpass(fs, 20.0, clean.shape[1]).process(corrupted)[skip:]
    # the high-pass also removes the EMG below 20 Hz; judge it against the equally high-passed truth as well
    high_truth = highpass(fs, 20.0, clean.shape[1]).process(clean)[skip:]
    fixed = snr_rmse(high, clean[skip:])
    fixed_vs_own = snr_rmse(high, high_truth)
    none = snr_rmse(corrupted[skip:], clean[skip:])
    figures = {"signal": "simulated EMG + 0.3 Hz wander (100-200 uV) + 6 electrode steps (0.3-1.5 mV)",
               "snr_db_rmse_uv": {"none": none, "adaptive_baseline": adaptive, "highpass_20hz": fixed,
                                  "highpass_20hz_vs_highpassed_truth": fixed_vs_own}}  # fmt: skip
    row = {"stage": "adaptive baseline removal", "alternative": "4th-order 20 Hz high-pass (part of the band-pass)",
           "metric": "SNR vs clean EMG (dB)", "stage_value": f"{adaptive[0]:.1f}",
           "alternative_value": f"{fixed[0]:.1f} ({fixed_vs_own[0]:.1f} vs high-passed truth)",
           "helps": adaptive[0] > fixed_vs_own[0]}  # fmt: skip
    return _rows("baseline", figures, [row])


def denoising_stage(args: argparse.Namespace) -> dict[str, Any]:
    from models.denoising import DenoiserTraining, compare, train_denoiser

    settings = DenoiserTraining(subjects=3 if args.quick else 6, seconds_per_subject=15.0 if args.quick else 30.0,
                                epochs=3 if args.quick else 8, seed=args.seed)  # fmt: skip
    network = train_denoiser(settings)
    figures = compare(network, settings, test_seeds=[100, 101] if args.quick else [100, 101, 102, 103])
    figures["training"] = {"subjects": settings.subjects, "seconds_per_subject": settings.seconds_per_subject,
                           "epochs": settings.epochs}  # fmt: skip
    ours, theirs = figures["filters_plus_autoencoder"], figures["filters_only"]
    rows = [{"stage": "denoising autoencoder (simulated held-out subjects)",
             "alternative": "causal band-pass + notch alone", "metric": "SNR (dB) / RMSE (uV) vs clean truth",
             "stage_value": f"{ours['snr_db']:.1f} / {ours['rmse_uv']:.1f}",
             "alternative_value": f"{theirs['snr_db']:.1f} / {theirs['rmse_uv']:.1f}",
             "helps": ours["snr_db"] > theirs["snr_db"]}]  # fmt: skip
    real = _hdemg_channels(args)
    if real is not None:
        from models.denoising import compare_on_recording

        on_real = compare_on_recording(network, real, 2048.0, seed=args.seed)
        figures["real_hdemg"] = {"recording": "hdemg-vastus-lateralis, 10 s from 10 s, every 4th of 64 channels",
                                 **on_real}  # fmt: skip
        ours, theirs = on_real["filters_plus_autoencoder"], on_real["filters_only"]
        untouched = on_real["clean_recording_through_autoencoder"]
        rows.append({"stage": "denoising autoencoder (real HD-EMG + our corruption)",
                     "alternative": "causal band-pass + notch alone",
                     "metric": "SNR (dB) / RMSE (uV) vs the filtered recording",
                     "stage_value": f"{ours['snr_db']:.1f} / {ours['rmse_uv']:.1f} (clean recording through it: "
                                    f"{untouched['snr_db']:.1f} dB)",
                     "alternative_value": f"{theirs['snr_db']:.1f} / {theirs['rmse_uv']:.1f}",
                     "helps": ours["snr_db"] > theirs["snr_db"]})  # fmt: skip
    return _rows("denoising", figures, rows)


def _hdemg_channels(args: argparse.Namespace) -> np.ndarray | None:
    """10 s of the real 64-channel recording (every 4th channel), or None when the file is not there."""
    path = Path(args.data) / "hdemg-vastus-lateralis" / "otb_testfile.mat"
    if not path.is_file():
        return None
    from scipy.io import loadmat

    grid = loadmat(path)["Data"][0, 0][:, :64].astype(np.float64)
    return grid[int(10 * 2048) : int(20 * 2048), ::4]


def _myo_root(args: argparse.Namespace):
    from monitor.errors import UserError

    root = Path(args.data) / "myo-gestures"
    if not (root / "12345-1").is_dir():
        raise UserError(f"no Myo recordings under {root}: pass --data with the folder holding myo-gestures/")
    return root


def features_stage(args: argparse.Namespace) -> dict[str, Any]:
    from models.datasets import load_myo_gestures
    from models.feature_analysis import FeatureTable, analyse, compare_selection, plot_analysis

    root = _myo_root(args)
    data = load_myo_gestures(root, ["12345-1", "12345-2", "12345-3"], hop_ms=100.0)
    train, test = data.in_groups(["12345-1", "12345-2"]), data.in_groups(["12345-3"])
    labels = list(data.layout["labels"])
    train_table = FeatureTable.from_windows(train.windows, data.fs, labels)
    test_table = FeatureTable.from_windows(test.windows, data.fs, labels)
    analysis = analyse(train_table, train.labels, seed=args.seed)
    figure = plot_analysis(analysis, Path(args.out) / "feature-analysis.png", "Myo gestures, sessions 1-2")
    selection = compare_selection(train_table, train.labels, test_table, test.labels, k=4, seed=args.seed)
    pca = analysis["pca"]
    figures = {"analysis": analysis, "selection": selection, "figure": figure.name}
    rows = [
        {"stage": "feature selection (top 4 of 11 by RF importance)", "alternative": "all 11 features x 8 channels",
         "metric": "LDA accuracy, session 3 (trained 1-2)", "stage_value": f"{selection['selected']['accuracy']:.3f}",
         "alternative_value": f"{selection['all_features']['accuracy']:.3f}",
         "helps": selection["selected"]["accuracy"] > selection["all_features"]["accuracy"]},
        {"stage": f"PCA ({pca['components_kept']} of {pca['dimensions']} components keep 95 %)",
         "alternative": "all 11 features x 8 channels", "metric": "LDA accuracy, session 3 (trained 1-2)",
         "stage_value": f"{selection['pca']['accuracy']:.3f}",
         "alternative_value": f"{selection['all_features']['accuracy']:.3f}",
         "helps": selection["pca"]["accuracy"] > selection["all_features"]["accuracy"]},
    ]  # fmt: skip
    return _rows("features", figures, rows)


def augmentation_stage(args: argparse.Namespace) -> dict[str, Any]:
    from models.augmentation import Augmenter, cross_session_accuracy
    from simulators.electrodes import ElectrodeLayout

    root = _myo_root(args)
    ring = ElectrodeLayout.ring(8).to_dict()
    variants = {"all five": Augmenter(layout=ring),
                "rotation only": Augmenter(layout=ring, p_scale=0, p_noise=0, p_warp=0, p_drop=0, p_shift=1.0,
                                           max_shift=0.5)}  # fmt: skip
    figures: dict[str, Any] = {}
    rows = []
    for name, augmenter in variants.items():
        result = cross_session_accuracy(str(root), copies=1 if args.quick else 2, augmenter=augmenter, seed=args.seed)
        figures[name] = result
        for model in ("LDA", "linear SVM"):
            rows.append({"stage": f"augmentation ({name}), {model}", "alternative": "no augmentation",
                         "metric": "accuracy, session 3 (trained 1-2)",
                         "stage_value": f"{result[f'{model} augmented']:.3f}",
                         "alternative_value": f"{result[f'{model} plain']:.3f}",
                         "helps": result[f"{model} augmented"] > result[f"{model} plain"]})  # fmt: skip
    return _rows("augmentation", figures, rows)


def prognosis_stage(args: argparse.Namespace) -> dict[str, Any]:
    from models.prognosis import ForecasterTraining, evaluate_forecasts, simulate_trajectories, train_forecaster

    settings = ForecasterTraining(trajectories=300 if args.quick else 1000, epochs=4 if args.quick else 8,
                                  seed=args.seed)  # fmt: skip
    network = train_forecaster(settings)
    observed, truth = simulate_trajectories(100 if args.quick else 300, seed=10_000 + args.seed)
    figures = evaluate_forecasts(network, observed, truth)
    figures["training"] = {"trajectories": settings.trajectories, "epochs": settings.epochs}
    rows = [{"stage": "LSTM fatigue forecast (next 2 min of MDF)", "alternative": "linear extrapolation (last 60 s)",
             "metric": "RMSE vs true MDF (Hz), all / last 40 s of horizon",
             "stage_value": f"{figures['lstm_rmse_hz']:.2f} / {figures['lstm_rmse_by_third_hz'][2]:.2f}",
             "alternative_value": f"{figures['linear_rmse_hz']:.2f} / {figures['linear_rmse_by_third_hz'][2]:.2f}",
             "helps": figures["lstm_rmse_hz"] < figures["linear_rmse_hz"]}]  # fmt: skip
    from models.prognosis import evaluate_on_contraction, measured_contraction

    # (seed, %MVC, conduction-velocity loss per minute) of sustained contractions simulated as EMG, 300 s each
    contractions = [(5, 50.0, 0.15)] if args.quick else [(5, 50.0, 0.15), (6, 40.0, 0.15), (7, 60.0, 0.10)]
    per_contraction = []
    for seed, mvc, rate in contractions:
        measured, truth = measured_contraction(200.0 if args.quick else 300.0, seed + args.seed, mvc, rate)
        per_contraction.append({"seed": seed + args.seed, "mvc_percent": mvc, "rate_per_min": rate,
                                **evaluate_on_contraction(network, measured, truth)})  # fmt: skip

    def pooled(key: str) -> float:  # every contraction gives the same number of forecasts
        return float(np.sqrt(np.mean([c[key] ** 2 for c in per_contraction])))

    figures["simulated_emg_contractions"] = {"signal": "EMG simulator, ring8 1024 Hz, sustained holds",
                                             "contractions": per_contraction,
                                             "lstm_rmse_pct": round(pooled("lstm_rmse_pct"), 2),
                                             "linear_rmse_pct": round(pooled("linear_rmse_pct"), 2)}  # fmt: skip
    rows.append({"stage": f"LSTM fatigue forecast, MDF measured from {len(contractions)} simulated EMG holds",
                 "alternative": "linear extrapolation (last 60 s)",
                 "metric": "RMSE vs true MDF trend (% of baseline)", "stage_value": f"{pooled('lstm_rmse_pct'):.2f}",
                 "alternative_value": f"{pooled('linear_rmse_pct'):.2f}",
                 "helps": pooled("lstm_rmse_pct") < pooled("linear_rmse_pct")})  # fmt: skip
    return _rows("prognosis", figures, rows)


def profile_stages(channels: int = 64, fs: float = 2048.0, seconds: float = 4.0, quick: bool = False) -> dict[str, Any]:
    """Per-window processing time of each stage on ``channels`` x ``fs`` noise-like EMG (200 ms windows, 50 ms hop),
    CPU % and memory of this process, with the same StageProfiler the monitor's stages report into."""
    import torch

    from dsp.adaptive import AdaptiveBaseline, AdaptiveMainsCanceller
    from dsp.features import MODEL_FEATURES, compute_features
    from dsp.filters import default_chain
    from dsp.resources import StageProfiler
    from models.denoising import DenoiserTraining, build_denoiser, denoise_windows
    from models.prognosis import build_forecaster, lstm_forecast

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 50.0, (int(seconds * fs), channels))
    hop, window = int(0.05 * fs), int(0.2 * fs)
    n_hops = len(x) // hop
    chain = default_chain(fs, channels)
    canceller = AdaptiveMainsCanceller(fs, channels)
    baseline = AdaptiveBaseline(fs, channels)
    profiler = StageProfiler()
    filtered = np.zeros_like(x, dtype=np.float32)
    for i in range(n_hops):
        chunk = x[i * hop : (i + 1) * hop]
        with profiler.stage("band-pass + notch (fixed)"):
            filtered[i * hop : (i + 1) * hop] = chain.process(chunk)[0]
        with profiler.stage("adaptive mains canceller"):
            canceller.process(chunk)
        with profiler.stage("adaptive baseline"):
            baseline.process(chunk)
    ends = np.arange(window, len(x) + 1, hop)
    windows = np.stack([filtered[end - window : end].T for end in ends])
    for one in windows[: 20 if quick else len(windows)]:
        with profiler.stage("features (11 model features)"):
            compute_features(one[None], fs, MODEL_FEATURES)
    denoiser = build_denoiser(DenoiserTraining().width).eval()
    for one in windows[: 5 if quick else 30]:
        with profiler.stage("denoising autoencoder"):
            denoise_windows(denoiser, one[None])
    forecaster = build_forecaster().eval()
    history = 80.0 + rng.normal(0, 1, (1, 60))
    for _ in range(5 if quick else 50):
        with profiler.stage("LSTM forecast (per 2 s epoch, not per window)"):
            lstm_forecast(forecaster, history)
    return {"channels": channels, "fs": fs, "window_ms": 200, "hop_ms": 50, "torch_threads": 1, **profiler.report()}


def resources_stage(args: argparse.Namespace) -> dict[str, Any]:
    figures = profile_stages(quick=args.quick)
    rows = []
    for name, summary in figures["stages"].items():
        rows.append({"stage": name, "alternative": "-", "metric": "ms per window (50 ms hop), 64 ch x 2048 Hz",
                     "stage_value": f"{summary['ms_per_window_mean']:.3f}", "alternative_value": "-",
                     "helps": None})  # fmt: skip
    return _rows("resources", figures, rows)


RUNNERS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "mains": mains_stage, "baseline": baseline_stage, "denoising": denoising_stage, "features": features_stage,
    "augmentation": augmentation_stage, "prognosis": prognosis_stage, "resources": resources_stage,
}  # fmt: skip


def markdown(results: list[dict[str, Any]], command: str) -> str:
    lines = ["# Paper stages against their simpler alternatives", "", f"Produced by `{command}`.", "",
             "| stage | simpler alternative | metric | stage | alternative | helps? |",
             "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for result in results:
        for row in result["rows"]:
            verdict = {True: "yes", False: "**no**", None: "-"}[row["helps"]]
            lines.append(f"| {row['stage']} | {row['alternative']} | {row['metric']} | {row['stage_value']} | "
                         f"{row['alternative_value']} | {verdict} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    import sys

    from monitor.errors import UserError

    chosen = list(STAGES) if not args.only else [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in RUNNERS]
    if unknown:
        raise UserError(f"unknown stage(s) {', '.join(unknown)}: choose from {', '.join(STAGES)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for name in chosen:
        started = time.perf_counter()
        print(f"stages: {name} ...", file=sys.stderr, flush=True)
        result = RUNNERS[name](args)
        result["seconds"] = round(time.perf_counter() - started, 1)
        results.append(result)
    command = "neurofusion stages " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "neurofusion stages"
    (out / "stages.json").write_text(json.dumps({"command": command, "results": results}, indent=2, default=str))
    (out / "stages.md").write_text(markdown(results, command))
    print(markdown(results, command))
    print(f"wrote {out / 'stages.json'} and {out / 'stages.md'}")
    return 0
