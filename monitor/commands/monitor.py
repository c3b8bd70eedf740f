"""`neurofusion monitor`: watch a live LSL EMG stream (a real amplifier, a replay or the simulator)."""

from __future__ import annotations

import argparse
from pathlib import Path

from monitor.cli_options import add_mains_argument


def add_stream_arguments(parser: argparse.ArgumentParser) -> None:
    """How to find the live EMG stream; shared by `monitor` and `adapt`."""
    find = parser.add_argument_group("stream")
    find.add_argument("--name", help="LSL stream name")
    find.add_argument("--type", default="EMG", help="LSL stream type (default EMG)")
    find.add_argument("--source-id", help="LSL source_id (most specific)")
    find.add_argument("--resolve-timeout", type=float, default=5.0, metavar="S")


def add_session_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `monitor` and `demo`."""
    view = parser.add_argument_group("view")
    view.add_argument("--headless", action="store_true", help="terminal dashboard even when a display exists")
    view.add_argument("--duration", type=float, metavar="S", help="stop cleanly after S seconds")
    view.add_argument("--snapshot", type=Path, metavar="FILE.png", help="render the dashboard offscreen to a PNG")
    view.add_argument("--snapshot-after", type=float, default=5.0, metavar="S", help="seconds before the snapshot")
    view.add_argument("--jsonl", metavar="FILE", help="append every decision as a JSON line to FILE ('-' = stdout)")
    view.add_argument("--no-view", action="store_true",
                      help="run the monitor core alone (a recording station); attach views with `neurofusion view`")
    view.add_argument("--view-process", action="store_true",
                      help="the window or dashboard in a process of its own: a view that hangs or crashes costs "
                      "acquisition, decisions and recording nothing (the default for a window)")
    view.add_argument("--in-process-view", action="store_true",
                      help="the window in the monitor process, as before the core/view split")
    record = parser.add_argument_group("recording")
    record.add_argument(
        "--record", type=Path, metavar="FILE.xdf",
        help="record raw EMG, markers and every result stream into one XDF file (LabRecorder)",
    )
    record.add_argument("--overwrite", action="store_true", help="replace an existing recording file")
    model = parser.add_argument_group("inference")
    model.add_argument("--model", metavar="CHECKPOINT", help="model checkpoint (default: the bundled model)")
    model.add_argument("--worker", metavar="ENDPOINT", help="use a running worker or broker, e.g. tcp://127.0.0.1:5555")
    model.add_argument("--no-inference", action="store_true", help="filtering, features and fatigue only")
    model.add_argument("--patient", default="unnamed", help="patient id: live-adapted models are kept per patient")
    model.add_argument("--patients-dir", type=Path, metavar="DIR", help="where patients' adapted models are kept")
    model.add_argument("--server-key", type=Path, metavar="FILE.key",
                       help="a remote worker's public CURVE key (with --curve-secret; see `neurofusion keys`)")
    model.add_argument("--curve-secret", type=Path, metavar="FILE.key_secret", help="this monitor's CURVE secret key")
    dsp = parser.add_argument_group("signal processing")
    dsp.add_argument("--window-ms", type=float, default=200.0)
    dsp.add_argument("--hop-ms", type=float, default=50.0)
    add_mains_argument(dsp)
    dsp.add_argument("--band", type=float, nargs=2, default=(20.0, 450.0), metavar=("LOW", "HIGH"))
    dsp.add_argument("--needle", action="store_true", help="needle EMG: high-pass only")
    needle = parser.add_argument_group("needle EMG (the MUP panel's reference values, as `analyze --muscle/--age`)")
    needle.add_argument("--muscle", help="the muscle needled: biceps, deltoid, tibialis_anterior, ...")
    needle.add_argument("--age", type=float, help="the person's age in years")
    units = parser.add_argument_group("motor units (a grid or >= 16 EMG channels; docs/decomposition.md)")
    units.add_argument("--decompose", action="store_true",
                       help="decompose motor units in the monitor itself, with or without a view: discharges on the "
                       "LSL stream <stream>-discharges (LabRecorder keeps them with the raw EMG), units and rates on "
                       "the dashboard; it calibrates by itself, and again from a view's Calibrate")
    units.add_argument("--calibrate-seconds", type=float, default=20.0, metavar="S",
                       help="--decompose calibrates on the first S s of signal (5-30, default 20; tried again up to "
                       "3 times while it finds no unit: hold a steady contraction)")
    units.add_argument("--decompose-starts", type=int, metavar="N",
                       help="fixed-point starts of a calibration (default 64; fewer is faster, finds fewer units)")
    units.add_argument("--motor-units", type=Path, metavar="FILE.npz",
                       help="a unit set saved in an earlier session (--save-motor-units, or analyze --decompose's "
                       "motor_units.npz): its filters run from the start with its units' numbers, and the "
                       "calibrations keep those numbers for the units they find again (implies --decompose)")
    units.add_argument("--save-motor-units", type=Path, metavar="FILE.npz",
                       help="write each calibration's unit set (filters, MUAP maps, numbers) to FILE.npz for a later "
                       "session's --motor-units")
    dsp.add_argument("--adaptive-mains", action="store_true",
                     help="cancel mains with an adaptive (LMS) canceller that tracks a drifting frequency")


def check_session_arguments(args: argparse.Namespace) -> None:
    """Refuses, in one line and before any stream is waited for, the view, window, band and needle options no
    session could use (the engine would otherwise say so later as a ValueError, or a negative --duration end the
    session at once with exit code 0)."""
    import math

    from monitor.errors import UserError

    def positive(value: float) -> bool:
        return math.isfinite(value) and value > 0

    if args.duration is not None and not positive(args.duration):
        raise UserError(f"--duration must be a positive number of seconds, not {args.duration:g}")
    if not (math.isfinite(args.snapshot_after) and args.snapshot_after >= 0):
        raise UserError(f"--snapshot-after must be 0 or more seconds, not {args.snapshot_after:g}")
    if not (positive(args.window_ms) and positive(args.hop_ms)):
        raise UserError(f"--window-ms and --hop-ms must be positive, not {args.window_ms:g} and {args.hop_ms:g}")
    if args.hop_ms > args.window_ms:
        raise UserError(f"--hop-ms {args.hop_ms:g} must not exceed --window-ms {args.window_ms:g}")
    low, high = args.band
    if not (positive(low) and positive(high) and low < high):
        raise UserError(f"--band LOW HIGH needs 0 < LOW < HIGH Hz, not {low:g} {high:g}")
    if args.age is not None and not 0 < args.age < 130:  # as `analyze --age`
        raise UserError(f"--age {args.age:g} is not an age in years")
    timeout = getattr(args, "resolve_timeout", None)
    if timeout is not None and not positive(timeout):
        raise UserError(f"--resolve-timeout must be a positive number of seconds, not {timeout:g}")


def warn_without_reference(muscle: str) -> None:
    """One line on stderr when the MUP panel will read ``muscle`` against no published reference (as `analyze` says
    in its reading), naming the muscles that have one: a typo would otherwise go unnoticed for a whole session."""
    import sys

    from dsp.mup_references import KNOWN_MUSCLES, REFERENCES, canonical_muscle

    name = canonical_muscle(muscle)
    if name in REFERENCES:
        return
    why = "no published reference table here" if name in KNOWN_MUSCLES else "not a muscle this monitor knows"
    print(f"--muscle {muscle}: {why}; the MUP panel reads without reference values (with references: "
          f"{', '.join(sorted(REFERENCES))})", file=sys.stderr)


def session_options(args: argparse.Namespace):
    from dsp.engine import EngineSettings
    from monitor.decomposition_service import check_calibration_seconds
    from monitor.errors import UserError
    from monitor.session import SessionOptions

    check_session_arguments(args)
    if args.muscle:
        warn_without_reference(args.muscle)
    starts = getattr(args, "decompose_starts", None)
    if starts is not None and starts < 1:
        raise UserError(f"--decompose-starts must be at least 1, not {starts}")
    saved_units = getattr(args, "motor_units", None)
    if saved_units is not None:
        from monitor.decomposition_service import load_saved_units

        load_saved_units(saved_units)  # a malformed file is refused now, before any stream is waited for
    from monitor.decomposition_service import check_save_units

    save_units = check_save_units(getattr(args, "save_motor_units", None))

    # the worker runs in the repository's folder: a checkpoint or patients folder named relative to the user's
    # folder (runs/calibrate/model.pt) would be looked for there
    model = None if args.model is None else str(Path(args.model).expanduser().absolute())
    if model is not None and not Path(model).is_file():  # said now, not after a stream was waited for
        raise UserError(f"--model {args.model}: no checkpoint there")
    patients_dir = None if args.patients_dir is None else args.patients_dir.expanduser().absolute()

    settings = EngineSettings(
        window_ms=args.window_ms, hop_ms=args.hop_ms, mode="needle" if args.needle else "surface",
        mains_hz=args.mains or None, low_hz=args.band[0], high_hz=args.band[1], adaptive_mains=args.adaptive_mains,
    )
    return SessionOptions(
        headless=args.headless, duration_s=args.duration, snapshot=args.snapshot, snapshot_after_s=args.snapshot_after,
        jsonl=args.jsonl, model=model, worker_endpoint=args.worker, no_inference=args.no_inference,
        settings=settings, record=args.record, overwrite=args.overwrite, curve=curve_keys(args),
        patient=args.patient, patients_dir=patients_dir, needle_muscle=args.muscle, needle_age=args.age,
        core_view=core_view(args), decompose=getattr(args, "decompose", False),
        calibrate_seconds=check_calibration_seconds(getattr(args, "calibrate_seconds", 20.0)), decompose_starts=starts,
        decompose_units=saved_units, save_units=save_units,
    )


def core_view(args: argparse.Namespace) -> str | None:
    """monitor.session.SessionOptions.core_view from --no-view / --view-process / --in-process-view."""
    if getattr(args, "no_view", False):
        return "none"
    if getattr(args, "view_process", False):
        return "process"
    return "inline" if getattr(args, "in_process_view", False) else None


def curve_keys(args: argparse.Namespace):
    if args.server_key is None and args.curve_secret is None:
        return None
    from monitor.errors import UserError
    from monitor.inference.security import CurveClientKeys

    if args.server_key is None or args.curve_secret is None:
        raise UserError("CURVE needs both --server-key (the worker's public key) and --curve-secret (yours)")
    return CurveClientKeys(args.server_key, args.curve_secret)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "monitor",
        help="monitor a live LSL EMG stream",
        description="Monitor a live LSL EMG stream: causal filtering, windows, features, fatigue, NeuroFusionNet "
        "decisions from a worker process, shown in a window or a terminal dashboard.",
    )
    add_stream_arguments(parser)
    add_session_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from monitor.acquisition import resolve_stream
    from monitor.session import run_session

    options = session_options(args)  # a bad option is said before waiting seconds for a stream
    info = resolve_stream(args.name, args.type, args.source_id, timeout_s=args.resolve_timeout)
    return run_session(info, options)
