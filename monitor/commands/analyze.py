"""`neurofusion analyze FILE`: the whole pipeline over a recording as fast as possible, into a report folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from monitor.recordings.options import add_reader_arguments, reader_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="run the pipeline over a recording as fast as possible and write a report",
        description="Run a recording through the monitor's own DSP, fatigue tracking and model code (the worker's "
        "batch handler, without sockets) as fast as the CPU allows. Writes per-window decisions and fatigue indices "
        "(windows.csv, windows.jsonl), summary.json, figures (traces, probabilities, fatigue as PNG) and report.md.",
    )
    parser.add_argument("file", help="the recording to analyse, or a folder of CSV/TSV files (a dataset)")
    parser.add_argument("--out", help="output folder (default: <file stem>-analysis in the current folder)")
    model = parser.add_argument_group("model")
    model.add_argument("--model", help="checkpoint (.pt) to use (default: the bundled model)")
    model.add_argument("--no-model", action="store_true", help="DSP and fatigue only, no decisions")
    model.add_argument("--backend", default="auto", choices=("auto", "onnx", "torch"), help="inference backend")
    dsp = parser.add_argument_group("signal processing")
    dsp.add_argument("--mode", default="surface", choices=("surface", "needle"),
                     help="filter set (default surface); needle adds quantitative MUP analysis (needle.json)")
    dsp.add_argument("--mains", type=float, default=50.0, help="mains frequency to notch, 0 for none (default 50)")
    dsp.add_argument("--adaptive-mains", action="store_true", help="adaptive mains canceller instead of the notch")
    dsp.add_argument("--window-ms", type=float, default=200.0, help="analysis window (default 200 ms)")
    dsp.add_argument("--hop-ms", type=float, default=50.0, help="hop between windows (default 50 ms)")
    dsp.add_argument("--start", type=float, help="seconds into the recording to start from")
    dsp.add_argument("--end", type=float, help="seconds into the recording to stop at")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_reader_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dsp.engine import EngineSettings
    from monitor.errors import UserError
    from monitor.recordings import open_dataset, open_recording
    from monitor.recordings.report import prepare_output_folder, write_dataset_index

    if args.window_ms <= 0 or args.hop_ms <= 0:
        raise UserError("--window-ms and --hop-ms must be positive")
    target = Path(args.file)
    out = prepare_output_folder(Path(args.out) if args.out else Path(f"{target.stem}-analysis"))
    if target.is_dir():
        recordings = open_dataset(target, **reader_options(args))
    else:
        recordings = [open_recording(target, **reader_options(args))]
    recordings = [recording.slice_seconds(args.start, args.end) for recording in recordings]
    predictor = None if args.no_model else _load_model(args.model, args.backend)
    settings = EngineSettings(window_ms=args.window_ms, hop_ms=args.hop_ms, mode=args.mode, mains_hz=args.mains or None,
                              adaptive_mains=args.adaptive_mains)
    summaries = []
    for recording in recordings:
        # a dataset's files keep their folder structure under the output folder
        folder = out / recording.source.relative_to(target).with_suffix("") if target.is_dir() else out
        summaries.append(_analyze_one(recording, predictor, settings, prepare_output_folder(folder), args))
    if target.is_dir():
        print(f"dataset of {len(recordings)} recordings: index in {write_dataset_index(summaries, out)}")
    return 0


def _analyze_one(recording: Any, predictor: Any, settings: Any, out: Path, args: argparse.Namespace) -> dict:
    from monitor.recordings.analysis import analyze_recording
    from monitor.recordings.report import write_report

    name = recording.source.name if recording.source else "recording"
    if args.quiet or not sys.stderr.isatty():
        analysis = analyze_recording(recording, predictor, settings)
    else:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(f"analysing {name}", total=recording.n_samples)
            analysis = analyze_recording(recording, predictor, settings,
                                         progress=lambda done: bar.update(task, completed=done))  # fmt: skip
    needle = _needle_report(recording, analysis, out) if args.mode == "needle" else []  # before the summary is written
    written = write_report(analysis, out, figures=not args.no_figures) + needle
    summary = analysis.summary
    decided = f", majority {summary['majority_label']}" if "majority_label" in summary else ""
    print(
        f"{name}: {summary['windows']} windows from {recording.duration_s:.1f} s in {analysis.wall_seconds:.2f} s "
        f"({analysis.real_time_factor:.0f}x real time){decided}; fatigue {summary['fatigue'].get('final_state')}; "
        f"wrote {len(written)} files to {out}"
    )
    return {**summary, "report": str(out / "report.md")}


def _needle_report(recording: Any, analysis: Any, out: Path) -> list[Path]:
    """Quantitative MUP and interference analysis beside the network's verdict (needle.json), with their agreement."""
    import json

    import numpy as np

    from dsp.mup_reading import NETWORK_CLASSES, agreement, analyse_needle
    from monitor.errors import UserError

    try:
        report = analyse_needle(recording.data, recording.fs)
    except ValueError as error:
        raise UserError(f"needle analysis: {error}") from None
    result = report.to_dict(with_templates=True)
    probabilities = [w.probabilities for w in analysis.windows if w.probabilities is not None]
    if probabilities and tuple(analysis.classes) == NETWORK_CLASSES:
        result["agreement_with_network"] = agreement(report.reading, np.asarray(probabilities))
    analysis.summary["needle_reading"] = report.reading.label
    path = out / "needle.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"needle EMG reading: {report.reading.label} ({'; '.join(report.reading.evidence[:3])})")
    return [path]


def _load_model(path: str | None, backend: str) -> object:
    from monitor.errors import UserError

    try:
        from models.predictor import load_predictor

        return load_predictor(path, backend=backend)
    except FileNotFoundError as error:
        raise UserError(f"{error}; --model names a checkpoint, --no-model skips decisions") from None
    except (ValueError, RuntimeError, KeyError, OSError) as error:
        raise UserError(f"cannot load model {path or '(bundled)'}: {error}") from None
