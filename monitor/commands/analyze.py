"""`neurofusion analyze FILE`: the whole pipeline over a recording as fast as possible, into a report folder."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

from monitor.cli_options import add_mains_argument, check_start_end
from monitor.cohort.cluster import add_cluster_arguments
from monitor.recordings.base import recording_stem
from monitor.recordings.options import add_reader_arguments, check_reader_options, reader_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="run the pipeline over a recording as fast as possible and write a report",
        description="Run a recording through the monitor's own DSP, fatigue tracking and model code (the worker's "
        "batch handler, without sockets) as fast as the CPU allows. Writes per-window decisions and fatigue indices "
        "(windows.csv, windows.jsonl), summary.json, figures (traces, probabilities, fatigue as PNG) and report.md.",
    )
    parser.add_argument("file", nargs="+",
                        help="the recording to analyse, or a folder of CSV/TSV files (a dataset); in needle mode "
                        "several recordings of one muscle, pooled into one reading")
    parser.add_argument("--out", help="output folder (default: <file stem>-analysis in the current folder)")
    model = parser.add_argument_group("model")
    model.add_argument("--model", help="checkpoint (.pt) to use (default: the bundled model; in needle mode the "
                       "bundled needle model)")
    model.add_argument("--no-model", action="store_true", help="DSP and fatigue only, no decisions")
    model.add_argument("--backend", default="auto", choices=("auto", "onnx", "torch"), help="inference backend")
    dsp = parser.add_argument_group("signal processing")
    dsp.add_argument("--mode", choices=("surface", "needle"),
                     help="filter set; needle adds quantitative MUP analysis (needle.json) and the needle model's "
                     "verdict (default: needle for one channel at 4-32 kHz or a needle layout, else surface)")
    add_mains_argument(dsp)
    dsp.add_argument("--adaptive-mains", action="store_true", help="adaptive mains canceller instead of the notch")
    dsp.add_argument("--window-ms", type=float, default=200.0, help="analysis window (default 200 ms)")
    dsp.add_argument("--hop-ms", type=float, default=50.0, help="hop between windows (default 50 ms)")
    dsp.add_argument("--start", type=float, help="seconds into the recording to start from")
    dsp.add_argument("--end", type=float, help="seconds into the recording to stop at")
    needle = parser.add_argument_group("needle EMG")
    needle.add_argument("--muscle", help="the muscle needled (biceps, deltoid, tibialis_anterior, ...): picks the "
                        "reference values")
    needle.add_argument("--age", type=float, help="the person's age in years: picks the reference values")
    fatigue = parser.add_argument_group("fatigue per contraction (default: where the muscle rose above its rest level)")
    fatigue.add_argument("--whole-contraction", "--no-rest", action="store_true",
                         help="the analysed part (see --start/--end) is one contraction: for a recording with no rest "
                         "to learn a rest level from, e.g. one continuous hold")
    fatigue.add_argument("--contraction", action="append", metavar="START-END",
                         help="a contraction's span in seconds from the analysed part's start (repeatable)")
    cohort = parser.add_argument_group(
        "cohort (FILE is a folder, a quoted glob such as 'data/**/*.edf', or a manifest CSV with a 'file' column: "
        "every recording a task on a Dask cluster; the table is resumable, see docs/cohort.md)")
    add_cluster_arguments(cohort, "local worker processes (default: one per core)")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--decompose", action="store_true",
                        help="also decompose a high-density recording into motor units: discharges.csv, "
                        "decomposition.json, raster and MUAP maps (docs/decomposition.md)")
    parser.add_argument("--decompose-starts", type=int, default=64, metavar="N",
                        help="fixed-point starts of --decompose (default 64; fewer is faster, finds fewer units)")
    parser.add_argument("--motor-units", type=Path, metavar="SAVED.npz",
                        help="with --decompose (implied): find the units of an earlier session again (its "
                        "motor_units.npz, or monitor --save-motor-units): applied directly and matched by MUAP "
                        "maps, in motor_units_found_again.json")
    add_reader_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from monitor.errors import UserError
    from monitor.recordings import open_dataset, open_recording
    from monitor.recordings.needle import looks_like_needle
    from monitor.recordings.report import prepare_output_folder, write_dataset_index

    check_reader_options(args)  # a folder's files are read by cohort tasks: a bad --fs is said once, here
    check_numbers(args)
    if args.age is not None and not 0 < args.age < 130:
        raise UserError(f"--age {args.age:g} is not an age in years")
    if getattr(args, "motor_units", None) is not None:
        from monitor.decomposition_service import load_saved_units

        args.saved_units = load_saved_units(args.motor_units)  # refused in one line before any recording is read
        args.decompose = True
    targets = [Path(name) for name in args.file]
    target = targets[0]
    from monitor.cohort.sources import is_cohort_target

    if is_cohort_target(args.file):
        from monitor.cohort.runner import run_cohort

        out = Path(args.out) if args.out else Path(f"{recording_stem(target)}-analysis")
        return run_cohort(args, prepare_output_folder(out))
    if len(targets) > 1 and any(path.is_dir() for path in targets):
        raise UserError("several recordings are pooled as one muscle: name files, not folders")
    out = prepare_output_folder(Path(args.out) if args.out else Path(f"{recording_stem(target)}-analysis"))
    if target.is_dir():
        recordings = open_dataset(target, **reader_options(args))
    else:
        recordings = [open_recording(path, **reader_options(args)) for path in targets]
    recordings = [recording.slice_seconds(args.start, args.end) for recording in recordings]
    for recording in recordings:
        check_fits_the_recording(recording, args)
    args.mode = args.mode or ("needle" if all(looks_like_needle(r) for r in recordings) else "surface")
    if len(targets) > 1 and args.mode != "needle":
        raise UserError("several recordings are pooled only in --mode needle (one muscle's recordings)")
    if args.mode == "needle":
        return _run_needle(recordings, target, out, args, pooled=len(targets) > 1)
    predictor = None if args.no_model else _load_model(args.model, args.backend)
    settings = _engine_settings(args)
    summaries = []
    for recording in recordings:
        # a dataset's files keep their folder structure under the output folder
        folder = out / recording.source.relative_to(target).with_suffix("") if target.is_dir() else out
        fitting = _model_for(predictor, recording, named=args.model is not None)
        summaries.append(_analyze_one(recording, fitting, settings, prepare_output_folder(folder), args))
    if target.is_dir():
        print(f"dataset of {len(recordings)} recordings: index in {write_dataset_index(summaries, out)}")
    return 0


def check_numbers(args: argparse.Namespace) -> None:
    """Refuses, in one line and before any file is read, numbers no analysis can use (as replay's check_numbers):
    a nan/inf --start or --end was a ValueError from an integer sample index, a nan --window-ms a misleading
    "cannot filter this recording"."""
    from monitor.errors import UserError

    for option, value in (("--window-ms", args.window_ms), ("--hop-ms", args.hop_ms)):
        if not (math.isfinite(value) and value > 0):
            raise UserError(f"{option} must be a positive number of milliseconds, not {value:g}")
    check_start_end(args)


def check_fits_the_recording(recording: Any, args: argparse.Namespace) -> None:
    """A window longer than the analysed part gave "0 windows ... fatigue None" with exit 0, and a --contraction
    past its end was taken silently: both refused in one line."""
    from monitor.errors import UserError

    name = recording.source.name if recording.source else "recording"
    window_samples = int(round(args.window_ms * recording.fs / 1000))
    if recording.n_samples < max(window_samples, 1):
        raise UserError(
            f"{name}: the analysed part is {recording.duration_s * 1000:.0f} ms ({recording.n_samples} samples at "
            f"{recording.fs:g} Hz), shorter than one {args.window_ms:g} ms window: nothing to analyse "
            "(--window-ms sets the window)"
        )
    length_s = recording.n_samples / recording.fs  # the analysed part's span, one sample period past the last
    for start, end in _contraction_spans(args) or []:
        if end > length_s + 0.5 / recording.fs:
            raise UserError(
                f"--contraction {start:g}-{end:g}: the analysed part of {name} is {length_s:.2f} s long (spans are "
                "seconds from its start, see --start/--end)"
            )


def _model_for(predictor: Any, recording: Any, named: bool) -> Any:
    """The model for ``recording``: the bundled one where it fits; where it does not (a 64-channel grid), none, with
    a note, as the live monitor does ("no model for this layout"), so `analyze` of an HD-EMG file gives its DSP,
    fatigue and quality report. A model the user named that does not fit is refused (analysis.check_model_fits)."""
    from monitor.errors import UserError
    from monitor.recordings.analysis import check_model_fits, rate_misfit
    from monitor.session import layout_name

    if predictor is None or named:
        return predictor
    misfit = rate_misfit(float(predictor.card.fs), float(recording.fs))
    if misfit is not None:  # a 200 Hz armband upsampled for a 2048 Hz model read as myopathy
        name = recording.source.name if recording.source else "recording"
        print(f"{name}: no condition model for {recording.fs:g} Hz: the bundled model {misfit}: filters, features, "
              "fatigue and quality only (--model names a checkpoint for this rate)")
        return None
    try:
        check_model_fits(predictor, recording)
    except UserError:
        name = recording.source.name if recording.source else "recording"
        print(f"{name}: no model for this layout ({recording.n_channels} ch {layout_name(recording.layout)}): "
              "filters, features, fatigue and quality only (--model names a checkpoint for this layout)")
        return None
    return predictor


def _engine_settings(args: argparse.Namespace) -> Any:
    from dsp.engine import EngineSettings

    return EngineSettings(window_ms=args.window_ms, hop_ms=args.hop_ms, mode=args.mode, mains_hz=args.mains or None,
                          adaptive_mains=args.adaptive_mains)


def _run_needle(recordings: list[Any], target: Path, out: Path, args: argparse.Namespace, pooled: bool) -> int:
    """Needle mode: each recording through the DSP report, its channel at the needle rate through the MUP analysis
    and the needle model; several recordings of one muscle pooled into one reading and one verdict."""
    from monitor.recordings.needle import load_condition_model, named_muscle, needle_signal
    from monitor.recordings.report import prepare_output_folder, write_dataset_index, write_needle_summary

    signals = [needle_signal(recording) for recording in recordings]  # every refusal before any work
    if pooled and args.muscle is None:
        named_muscle([signal.name for signal in signals])  # recordings named after two muscles are refused now
    model = None if args.no_model else load_condition_model(args.model)
    settings = _engine_settings(args)
    if not pooled:
        summaries = []
        for recording, signal in zip(recordings, signals, strict=True):
            folder = out / recording.source.relative_to(target).with_suffix("") if target.is_dir() else out
            summaries.append(_analyze_one(recording, None, settings, prepare_output_folder(folder), args,
                                          needle=([signal], model)))  # fmt: skip
        if target.is_dir():
            print(f"dataset of {len(recordings)} recordings: index in {write_dataset_index(summaries, out)}")
        return 0
    started = time.perf_counter()
    for recording in recordings:
        _analyze_one(recording, None, settings, prepare_output_folder(out / recording_stem(recording.source)), args)
    summary = _needle_summary(signals, model, out, args)
    summary["wall_seconds"] = time.perf_counter() - started
    path = write_needle_summary(summary, out)
    muscle = summary["needle_reading"]["muscle"]
    print(f"{len(signals)} recordings of {muscle or 'one muscle'} pooled: {path}")
    return 0


def _needle_summary(signals: list[Any], model: Any, out: Path, args: argparse.Namespace) -> dict:
    """The MUP reading pooled over ``signals``, the model's verdict and their agreement (needle.json written)."""
    import json

    from monitor.recordings.needle import agreement_of, condition, named_muscle, read_muscle

    started = time.perf_counter()
    # the shared clinical set's names say the muscle, as they say the rate: its references apply without --muscle
    from monitor.errors import UserError

    try:
        from_names = named_muscle([signal.name for signal in signals])
    except UserError:  # names of two muscles: refused unless --muscle says which references apply
        if args.muscle is None:
            raise
        from_names = None
    muscle = args.muscle or from_names
    _warn_muscle_contradiction(args.muscle, from_names, signals[0].name if len(signals) == 1 else "the recordings")
    source = None if muscle is None else ("--muscle" if args.muscle else "file name")
    reading = read_muscle(signals, muscle, args.age, source)
    verdict = None if model is None else condition(model, signals)
    summary: dict[str, Any] = {"needle_reading": reading.summary(), "condition": verdict,
                               "agreement": agreement_of(reading, verdict),
                               "needle_wall_seconds": time.perf_counter() - started}  # fmt: skip
    (out / "needle.json").write_text(json.dumps(reading.report.to_dict(with_templates=True), indent=1) + "\n")
    rates = sorted({s.source_fs for s in signals})
    print(f"needle EMG reading: {reading.label} ({reading.n_mups} MUPs; recorded at "
          f"{', '.join(f'{r:g}' for r in rates)} Hz, analysed at {signals[0].fs:g} Hz; "
          f"{'; '.join(reading.report.reading.evidence[:3])}); MUP analysis and model in "
          f"{summary['needle_wall_seconds']:.2f} s")  # fmt: skip
    if verdict is not None:
        agree = summary["agreement"]
        flag = "" if agree is None or agree["agree"] is not False else " — DISAGREES with the MUP reading"
        print(f"needle model {verdict['model_id']}: {verdict['label']} "
              f"({verdict['probabilities'][verdict['label']]:.0%}, {verdict['windows']} windows){flag}")
    return summary


def _warn_muscle_contradiction(named: str | None, from_file_names: str | None, what: str) -> None:
    """--muscle wins (the user may know better than a file name), but a contradiction is said in one line: a
    deltoid's file (..._RD_...) read against biceps references silently changes what counts as normal."""
    from dsp.mup_references import canonical_muscle

    if named is None or from_file_names is None or canonical_muscle(named) == canonical_muscle(from_file_names):
        return
    print(f"warning: --muscle {named} but the name of {what} says {from_file_names}: read against {named} "
          "references as asked", file=sys.stderr)  # fmt: skip


def _analyze_one(recording: Any, predictor: Any, settings: Any, out: Path, args: argparse.Namespace,
                 needle: tuple[list[Any], Any] | None = None) -> dict:
    from monitor.recordings.analysis import analyze_recording
    from monitor.recordings.report import write_report

    name = recording.source.name if recording.source else "recording"
    contractions = {"contraction_spans": _contraction_spans(args), "whole_contraction": args.whole_contraction}
    if args.quiet or not sys.stderr.isatty():
        analysis = analyze_recording(recording, predictor, settings, **contractions)
    else:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(f"analysing {name}", total=recording.n_samples)
            analysis = analyze_recording(recording, predictor, settings, **contractions,
                                         progress=lambda done: bar.update(task, completed=done))  # fmt: skip
    needle_files = []
    if needle is not None:  # before the summary is written
        signals, model = needle
        analysis.summary.update(_needle_summary(signals, model, out, args))
        needle_files.append(out / "needle.json")
    written = write_report(analysis, out, figures=not args.no_figures) + needle_files
    if getattr(args, "decompose", False):  # after report.md exists: it appends its section there
        from monitor.recordings.decomposition_report import write_decomposition_report

        written += write_decomposition_report(recording, out, args.decompose_starts, figures=not args.no_figures,
                                              saved=getattr(args, "saved_units", None))  # fmt: skip
    summary = analysis.summary
    decided = f", majority {summary['majority_label']}" if "majority_label" in summary else ""
    print(
        f"{name}: {summary['windows']} windows from {recording.duration_s:.1f} s in {analysis.wall_seconds:.2f} s "
        f"({analysis.real_time_factor:.0f}x real time){decided}; fatigue {summary['fatigue'].get('final_state')}; "
        f"wrote {len(written)} files to {out}"
    )
    return {**summary, "report": str(out / "report.md")}


def _contraction_spans(args: argparse.Namespace) -> list[tuple[float, float]] | None:
    """The contractions named with --contraction (seconds), or None for the tracker's own."""
    from monitor.errors import UserError

    if args.whole_contraction and args.contraction:
        raise UserError("--whole-contraction and --contraction both name the contractions: give one of them")
    spans = []
    for text in args.contraction or []:
        try:
            start, end = (float(part) for part in text.split("-"))
        except ValueError:
            raise UserError(f"--contraction {text}: expected START-END in seconds, e.g. 5-35") from None
        if not 0 <= start < end:
            raise UserError(f"--contraction {text}: need 0 <= START < END")
        spans.append((start, end))
    return spans or None


def _load_model(path: str | None, backend: str) -> object:
    from monitor.errors import UserError

    try:
        from models.predictor import load_predictor

        return load_predictor(path, backend=backend)
    except FileNotFoundError as error:
        raise UserError(f"{error}; --model names a checkpoint, --no-model skips decisions") from None
    except (ValueError, RuntimeError, KeyError, OSError) as error:
        raise UserError(f"cannot load model {path or '(bundled)'}: {error}") from None
