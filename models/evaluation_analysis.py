"""The extra sections of `neurofusion evaluate`: feature analysis (the paper's steps 9-11) and resource figures.

- Feature analysis: on the training windows' handcrafted features (``dsp.features.MODEL_FEATURES`` per channel),
  PCA (explained variance, components kept for 95 %) and Random Forest importance for the task being evaluated,
  drawn into ``feature_analysis.png``; plus what selecting the top features or PCA does to the LDA baseline on the
  test groups (``models.feature_analysis.compare_selection``: fitted on training windows only).
- Resources: the monitor's own DSP stages (``dsp.engine.DspEngine``: filters, then quality + features + fatigue)
  and the model's handcrafted features, timed per window on the test windows played as a stream, with process
  CPU % and memory of the whole evaluation (``dsp.resources.StageProfiler``); each model's inference time per
  window comes from the comparison table itself.

Both return JSON-safe dictionaries; ``markdown_sections`` renders them under the comparison table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dsp.features import MODEL_FEATURES
from dsp.resources import StageProfiler

#: the forest is the slow part of the analysis: it sees at most this many training windows (a stratified draw)
FOREST_MAX_WINDOWS = 5000
#: seconds of test windows played through the DSP engine for the per-stage timings
RESOURCE_STREAM_S = 60.0
SELECTED_FEATURES = 4


def _channel_labels(windows: Any) -> list[str] | None:
    labels = (windows.layout or {}).get("labels") if isinstance(windows.layout, dict) else None
    return list(labels) if labels and len(labels) == windows.n_channels else None


def _draw(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Indices of at most ``limit`` windows, the same share of each class as in ``labels`` (sorted)."""
    if len(labels) <= limit:
        return np.arange(len(labels))
    from sklearn.model_selection import train_test_split

    chosen, _ = train_test_split(np.arange(len(labels)), train_size=limit, stratify=labels, random_state=seed)
    return np.sort(chosen)


def feature_analysis_report(train: Any, test: Any, out: Path, seed: int = 0,
                            variance_target: float = 0.95) -> dict[str, Any]:  # fmt: skip
    """PCA and forest importance on ``train`` (models.datasets.WindowSets), selection measured on ``test``;
    writes ``out/feature_analysis.png`` and returns the figures."""
    from models.feature_analysis import FeatureTable, compare_selection, forest_importance, pca_figures, plot_analysis

    labels = _channel_labels(train)
    train_table = FeatureTable.from_windows(train.windows, train.fs, labels, MODEL_FEATURES)
    test_table = FeatureTable.from_windows(test.windows, test.fs, labels, MODEL_FEATURES)
    # PCA and LDA see every training window; only the forest, the slow part, sees a stratified draw of them
    drawn = _draw(train.labels, FOREST_MAX_WINDOWS, seed)
    forest_table = FeatureTable(train_table.values[drawn], train_table.feature_names, train_table.channel_labels)
    figures: dict[str, Any] = {
        "pca": pca_figures(train_table, variance_target),
        "random_forest": forest_importance(forest_table, train.labels[drawn], seed),
    }
    k = min(SELECTED_FEATURES, len(train_table.feature_names))
    figures["selection_lda"] = compare_selection(train_table, train.labels, test_table, test.labels, k,
                                                 variance_target, seed, figures["random_forest"])  # fmt: skip
    figures["training_windows"] = len(train)
    figures["forest_windows"] = len(drawn)
    figures["features"] = list(train_table.feature_names)
    figure = plot_analysis(figures, Path(out) / "feature_analysis.png",
                           f"handcrafted features of the {len(train)} training windows")
    figures["figure"] = figure.name
    return figures


def _as_stream(windows: np.ndarray, fs: float, seconds: float) -> np.ndarray:
    """Test windows laid end to end as one (n, C) stream: real signal of the task, for timing the live path."""
    per_window = windows.shape[2]
    count = max(1, min(len(windows), int(np.ceil(seconds * fs / per_window))))
    return np.ascontiguousarray(windows[:count].transpose(0, 2, 1).reshape(-1, windows.shape[1]))


def resource_report(test: Any, profiler: StageProfiler, rows: list[dict[str, Any]], window_ms: float = 200.0,
                    hop_ms: float = 50.0, mode: str = "surface") -> dict[str, Any]:  # fmt: skip
    """Per-window time of each live stage on ``test``'s windows, and ``profiler``'s process CPU % and memory.

    ``profiler`` has been running since the command started (its CPU % covers training and testing every model);
    the DSP stages are timed by a fresh engine's own profiler, fed one-second chunks as the DSP thread is."""
    from dsp.engine import DspEngine, EngineSettings
    from dsp.ringbuffer import RingBuffer
    from models.predictor import handcrafted_features

    fs = float(test.fs)
    stream = _as_stream(test.windows, fs, RESOURCE_STREAM_S)
    engine = DspEngine(RingBuffer(1, test.n_channels), fs, EngineSettings(window_ms=window_ms, hop_ms=hop_ms,
                       mode=mode), filtered_seconds=1.0)  # fmt: skip
    chunk = int(fs)
    windows = []
    for start in range(0, len(stream), chunk):
        part = stream[start : start + chunk]
        timestamps = (start + np.arange(len(part))) / fs
        windows.extend(result.window.data for result in engine.process(part, timestamps, start))
    stages = engine.profiler.report()["stages"]
    if windows:
        batch = np.stack(windows)
        model_stage = StageProfiler()
        for first in range(0, len(batch), 20):  # the batch the worker sees for one second at a 50 ms hop
            part = batch[first : first + 20]
            with model_stage.stage("model features", windows=len(part)):
                handcrafted_features(part, fs, MODEL_FEATURES)
        stages.update(model_stage.report()["stages"])
    report = profiler.report()
    return {
        "stream_seconds": round(len(stream) / fs, 3),
        "channels": test.n_channels,
        "fs": fs,
        "window_ms": window_ms,
        "hop_ms": hop_ms,
        "stages": stages,
        "inference_ms_per_window": {row["model"]: round(float(row["ms_per_window"]), 4) for row in rows},
        "process": {"cpu_percent": report["cpu_percent"], "rss_mb": report["rss_mb"],
                    "peak_rss_mb": report["peak_rss_mb"], "elapsed_s": report["elapsed_s"]},  # fmt: skip
    }


def markdown_sections(analysis: dict[str, Any] | None, resources: dict[str, Any] | None) -> str:
    lines: list[str] = []
    if analysis is not None:
        pca, forest, selection = analysis["pca"], analysis["random_forest"], analysis["selection_lda"]
        ranking = ", ".join(f"{name} {forest['by_feature'][name]:.3f}" for name in forest["ranking"])
        top_channels = sorted(forest["by_channel"].items(), key=lambda item: -item[1])[:4]
        lines += [
            "", "### Feature analysis (training windows, handcrafted features)", "",
            f"- PCA: {pca['components_kept']} of {pca['dimensions']} components keep "
            f"{pca['variance_target']:.0%} of the variance (the first holds {pca['explained_variance_ratio'][0]:.1%}).",
            f"- Random Forest importance by feature: {ranking}.",
            f"- by channel (top 4): {', '.join(f'{name} {value:.3f}' for name, value in top_channels)}.",
            f"- LDA on the test groups: all {selection['all_features']['columns']} columns "
            f"{100 * selection['all_features']['accuracy']:.2f}%, top {len(selection['selected']['features'])} "
            f"features ({', '.join(selection['selected']['features'])}; {selection['selected']['columns']} columns) "
            f"{100 * selection['selected']['accuracy']:.2f}%, PCA to {pca['variance_target']:.0%} "
            f"{100 * selection['pca']['accuracy']:.2f}%.",
            f"- {analysis['training_windows']} training windows ({analysis['forest_windows']} of them, a stratified "
            "draw, for the forest).", "",
            f"![feature analysis]({analysis['figure']})",
        ]  # fmt: skip
    if resources is not None:
        process = resources["process"]
        lines += [
            "", f"### Resources ({resources['channels']} channels x {resources['fs']:g} Hz, "
            f"{resources['window_ms']:g} ms windows every {resources['hop_ms']:g} ms, "
            f"{resources['stream_seconds']:g} s of test windows as a stream)", "",
            "| stage | windows | ms / window (mean) | p50 | p99 |", "| --- | ---: | ---: | ---: | ---: |",
        ]  # fmt: skip
        for name, figures in resources["stages"].items():
            lines.append(f"| {name} | {figures['windows']} | {figures['ms_per_window_mean']:.3f} | "
                         f"{figures['ms_per_window_p50']:.3f} | {figures['ms_per_window_p99']:.3f} |")  # fmt: skip
        inference = ", ".join(f"{name} {ms:.3f}" for name, ms in resources["inference_ms_per_window"].items())
        lines += [
            "", f"Inference, ms per window (batched, features included; from the table): {inference}.",
            f"Whole evaluation: {process['cpu_percent']:.0f} % of one core over {process['elapsed_s']:.0f} s, "
            f"{process['rss_mb']:.0f} MB resident at the end (peak {process['peak_rss_mb']:.0f} MB).",
        ]  # fmt: skip
    return "\n".join(lines) + ("\n" if lines else "")
