"""Writes an `Analysis` to a folder: per-window CSV and JSON lines, summary JSON, PNG figures, a Markdown page."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from monitor.errors import UserError
from monitor.recordings.analysis import Analysis

TRACE_CHANNELS = 8  # the traces figure shows at most this many channels, spread over the grid
TRACE_SECONDS = 10.0


def prepare_output_folder(folder: Path) -> Path:
    """Creates ``folder`` and proves it writable now, not after the analysis has run."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise UserError(f"cannot write to {folder}: {error.strerror}") from None
    return folder


def write_report(analysis: Analysis, folder: Path, figures: bool = True) -> list[Path]:
    """All outputs of ``neurofusion analyze``; returns the paths written."""
    written = [
        _write_windows_csv(analysis, folder / "windows.csv"),
        _write_windows_jsonl(analysis, folder / "windows.jsonl"),
    ]
    summary_path = folder / "summary.json"
    summary_path.write_text(json.dumps(_json_safe(analysis.summary), indent=2) + "\n")
    written.append(summary_path)
    if analysis.preprocessing:
        preprocessing_path = folder / "preprocessing.json"
        preprocessing_path.write_text(json.dumps(_json_safe(analysis.preprocessing), indent=2) + "\n")
        written.append(preprocessing_path)
    figure_paths = _write_figures(analysis, folder) if figures else []
    written.extend(figure_paths)
    report_path = folder / "report.md"
    report_path.write_text(_markdown(analysis, figure_paths))
    written.append(report_path)
    return written


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def _write_windows_csv(analysis: Analysis, path: Path) -> Path:
    rows = [w.to_dict(analysis.classes) for w in analysis.windows]
    fields = list(rows[0]) if rows else ["index"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return path


def _write_windows_jsonl(analysis: Analysis, path: Path) -> Path:
    with path.open("w") as handle:
        for window in analysis.windows:
            row = window.to_dict([])
            row["probabilities"] = dict(zip(analysis.classes, window.probabilities or [], strict=False)) or None
            handle.write(json.dumps(_json_safe(row)) + "\n")
    return path


def _write_figures(analysis: Analysis, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = [_traces_figure(analysis, folder / "traces.png", plt)]
    if analysis.classes and analysis.windows:
        paths.append(_probability_figure(analysis, folder / "probabilities.png", plt))
    if analysis.windows:
        paths.append(_fatigue_figure(analysis, folder / "fatigue.png", plt))
    return paths


def _traces_figure(analysis: Analysis, path: Path, plt: Any) -> Path:
    recording = analysis.recording
    shown = np.unique(np.linspace(0, recording.n_channels - 1, min(TRACE_CHANNELS, recording.n_channels)).astype(int))
    samples = min(recording.n_samples, int(TRACE_SECONDS * recording.fs))
    times = np.arange(samples) / recording.fs
    figure, axes = plt.subplots(len(shown), 1, figsize=(10, 1.1 * len(shown) + 1), sharex=True, squeeze=False)
    for axis, channel in zip(axes[:, 0], shown, strict=True):
        axis.plot(times, recording.data[:samples, channel], linewidth=0.5)
        axis.set_ylabel(recording.channel_labels[channel], rotation=0, ha="right", fontsize=8)
        axis.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel(f"seconds (first {samples / recording.fs:.1f} s, raw, µV)")
    figure.suptitle(f"{recording.source.name if recording.source else 'recording'}: raw traces")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _probability_figure(analysis: Analysis, path: Path, plt: Any) -> Path:
    decided = [w for w in analysis.windows if w.probabilities]
    times = np.array([w.time_s for w in decided])
    probabilities = np.array([w.probabilities for w in decided])
    # gaps where the verdict is not a class (rest, rest level still being learned): no verdict, nothing to plot
    withheld = np.array([w.label not in analysis.classes for w in decided], dtype=bool)
    if len(decided):
        probabilities[withheld] = np.nan
    figure, axis = plt.subplots(figsize=(10, 3.2))
    for column, name in enumerate(analysis.classes):
        axis.plot(times, probabilities[:, column], label=name, linewidth=0.8)
    axis.set_ylim(0, 1)
    axis.set_xlabel("seconds")
    axis.set_ylabel("probability")
    axis.legend(loc="upper right", fontsize=8)
    axis.set_title(f"decisions of {analysis.model_id}")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _fatigue_figure(analysis: Analysis, path: Path, plt: Any) -> Path:
    from monitor.recordings.fatigue_report import fatigue_figure

    return fatigue_figure(analysis, path, plt)


def _fmt(value: Any, unit: str = "", digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def _markdown(analysis: Analysis, figures: list[Path]) -> str:
    summary = analysis.summary
    fatigue = summary.get("fatigue", {})
    quality = summary.get("quality", {})
    model_id = summary.get("model_id") or (summary.get("condition") or {}).get("model_id")  # surface or needle
    lines = [
        f"# Analysis of {Path(summary['file']).name if summary.get('file') else 'recording'}",
        "",
        "| | |",
        "| --- | --- |",
        f"| recording | {summary['n_channels']} channels x {summary['fs']:g} Hz, {summary['duration_s']:.1f} s |",
        f"| windows | {summary['windows']} |",
        f"| model | {model_id or 'none (DSP and fatigue only)'} |",
        *_provenance_rows(summary.get("model_id")),
        f"| analysed in | {summary['wall_seconds']:.2f} s ({summary['real_time_factor']:.0f}x real time) |",
    ]
    if "label_distribution" in summary:
        distribution = ", ".join(f"{name} {share:.0%}" for name, share in summary["label_distribution"].items())
        lines += [
            f"| decisions | {distribution} |",
            f"| majority | {summary['majority_label']} (mean confidence of the class verdicts "
            f"{_fmt(summary['mean_confidence'])}) |",
        ]
    lines += [
        f"| fatigue state at the end (live tracker) | {fatigue.get('final_state') or 'n/a'} |",
        f"| contractions | {len(fatigue.get('contractions') or [])} (table below) |",
        f"| MDF slope of the longest | {_fmt(fatigue.get('mdf_slope_hz_per_min'), ' Hz/min')} |",
        f"| MDF change along it | {_fmt(fatigue.get('mdf_change_pct'), ' %', 1)} |",
        f"| RMS change in it | {_fmt(fatigue.get('rms_change_pct'), ' %', 1)} |",
        f"| quality | {'; '.join(quality.get('issues', [])) or 'no issues'} |",
        "",
    ]
    if "fatigue" in summary:
        from monitor.recordings.fatigue_report import contractions_markdown

        lines += [contractions_markdown(fatigue)]
    if "needle_reading" in summary:
        lines += [needle_markdown(summary)]
    if analysis.preprocessing:
        from monitor.recordings.preprocessing import markdown

        lines += [markdown(analysis.preprocessing)]
    lines += [f"![{path.stem}]({path.name})" for path in figures]
    lines += ["", "Per-window figures: `windows.csv`, `windows.jsonl`; all numbers: `summary.json` "
              "(preprocessing alone: `preprocessing.json`).", ""]
    return "\n".join(lines)


def _provenance_rows(model_id: str | None) -> list[str]:
    """The bundled surface model's verdicts come from simulated patients only: the report says so beside them."""
    from models.model_card import simulated_only_note

    note = simulated_only_note(model_id)
    return [f"| condition verdict | **{note}** |"] if note else []


def write_dataset_index(summaries: list[dict[str, Any]], folder: Path) -> Path:
    """``index.md`` and ``dataset_summary.json``: one row per recording of a dataset, linking its report."""
    (folder / "dataset_summary.json").write_text(json.dumps(_json_safe(summaries), indent=2) + "\n")
    lines = [
        "# Dataset analysis",
        "",
        "| recording | duration | windows | majority decision | confidence | MDF slope (longest contraction) | "
        "fatigue | quality |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for summary in summaries:
        fatigue = summary.get("fatigue", {})
        report = Path(summary["report"]).relative_to(folder) if summary.get("report") else None
        name = Path(summary["file"]).name if summary.get("file") else "?"
        issues = summary.get("quality", {}).get("issues", [])
        lines.append(
            f"| [{name}]({report}) | {summary['duration_s']:.1f} s | {summary['windows']} | "
            f"{summary.get('majority_label') or 'n/a'} | {_fmt(summary.get('mean_confidence'))} | "
            f"{_fmt(fatigue.get('mdf_slope_hz_per_min'), ' Hz/min')} | {fatigue.get('final_state') or 'n/a'} | "
            f"{len(issues)} issue{'s' if len(issues) != 1 else ''} |"
        )
    index = folder / "index.md"
    index.write_text("\n".join(lines) + "\n")
    return index


def needle_markdown(summary: dict[str, Any]) -> str:
    """The needle section of a report: the quantitative MUP reading beside the needle model's verdict, flagged
    where they disagree."""
    reading = summary["needle_reading"]
    per_recording = reading.get("per_recording", [])
    recorded = sorted({r["recorded_fs"] for r in per_recording})
    rates = ", ".join(f"{rate:g}" for rate in recorded)
    resampled = any(rate != reading["analysed_fs"] for rate in recorded)
    muscle = reading.get("muscle") or "not given (--muscle)"
    if reading.get("muscle_from") == "file name":
        muscle += " (from the file name)"
    age = "not given (--age)" if reading.get("age") is None else f"{reading['age']:g} years"
    lines = [
        "## Needle EMG", "", "| | |", "| --- | --- |",
        f"| muscle, age | {muscle}, {age} |",
        f"| rate | recorded at {rates} Hz, analysed at {reading['analysed_fs']:g} Hz"
        f"{' (anti-aliased polyphase resampling)' if resampled else ''} |",
        f"| quantitative MUP reading | **{reading['label']}** from {reading['n_mups']} MUPs in "
        f"{reading['recordings']} recording{'s' if reading['recordings'] != 1 else ''} (myopathic score "
        f"{reading['myopathic_score']}, neurogenic {reading['neurogenic_score']}) |",
        f"| evidence | {'; '.join(reading['evidence']) or 'none beyond the reference ranges'} |",
        f"| reference | {_reference_text(reading)} |",
    ]  # fmt: skip
    means = reading.get("mean", {})
    if means:
        shown = ", ".join(f"{name} {_fmt(means.get(name), '', 1)}{_flag_mark(reading, name)}"
                          for name in ("duration_ms", "amplitude_uv", "phases", "turns", "area_uv_ms", "size_index")
                          if name in means)  # fmt: skip
        lines.append(f"| mean over the MUPs | {shown} |")
    verdict = summary.get("condition")
    if verdict is None:
        lines.append("| needle model | not run (--no-model, or no needle model installed) |")
    else:
        probabilities = ", ".join(f"{name} {p:.0%}" for name, p in verdict["probabilities"].items())
        lines.append(f"| needle model | **{verdict['label']}** ({probabilities}; {verdict['windows']} windows, "
                     f"model {verdict['model_id']}) |")  # fmt: skip
        agree = summary.get("agreement")
        if agree is None or agree.get("agree") is None:
            lines.append(f"| agreement | no comparison: the MUP reading is {reading['label']} |")
        elif agree["agree"]:
            lines.append(f"| agreement | both say {agree['network_class']} |")
        else:
            lines.append(f"| agreement | **DISAGREE**: the MUP reading says {agree['rule_class']}, the model says "
                         f"{agree['network_class']} ({agree['network_probability']:.0%}; "
                         f"{agree['network_probability_of_rule_class']:.0%} for {agree['rule_class']}). "
                         "Decision support, not a diagnosis: look at the MUPs (needle.json). |")  # fmt: skip
    if len(per_recording) > 1:
        lines += ["", "| recording | recorded at | MUPs | its own reading |", "| --- | --- | --- | --- |"]
        lines += [f"| {r['file']} | {r['recorded_fs']:g} Hz | {r['mups']} | {r['reading']} |" for r in per_recording]
    for note in reading.get("notes", []):
        lines.append(f"\n> {note}")
    return "\n".join(lines) + "\n"


def _reference_text(reading: dict[str, Any]) -> str:
    reference = reading.get("reference")
    if not reference:
        return ("generic: tibialis anterior controls (--muscle picks the muscle's own)" if not reading.get("muscle")
                else f"none published here for {reading['muscle']}: measures only")  # fmt: skip
    parts = [f"{reference['muscle']}: mean duration {reference['duration_mean_ms']:g} ± "
             f"{reference['duration_sd_ms']:g} ms"]
    if reference.get("amplitude_mean_uv") is not None:
        parts.append(f"amplitude {reference['amplitude_mean_uv']:g} ± {reference['amplitude_sd_uv']:g} µV")
    return ", ".join(parts) + (f" ({reference['source'].split(',')[0]})" if reference.get("source") else "")


def _flag_mark(reading: dict[str, Any], name: str) -> str:
    return {"low": " ↓", "high": " ↑"}.get(reading.get("mean_flags", {}).get(name, ""), "")


def write_needle_summary(summary: dict[str, Any], folder: Path) -> Path:
    """``summary.json`` and ``report.md`` of several recordings of one muscle pooled (each recording's own report
    lies in its subfolder)."""
    (folder / "summary.json").write_text(json.dumps(_json_safe(summary), indent=2) + "\n")
    files = [r["file"] for r in summary["needle_reading"].get("per_recording", [])]
    lines = [f"# Needle EMG of {summary['needle_reading'].get('muscle') or 'one muscle'}: {len(files)} recordings "
             "pooled", "", needle_markdown(summary),
             f"Analysed in {summary.get('wall_seconds', float('nan')):.2f} s. MUPs and templates: `needle.json`; "
             "each recording's own report: " + ", ".join(f"`{Path(name).name}`" for name in files), ""]  # fmt: skip
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    return path
