"""`neurofusion simulate`: the simulated amplifier, live over LSL or written offline to NPZ/EDF/BDF."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from monitor.errors import UserError

# the simulator's own values (simulators.emg.SEVERITIES and SimulationConfig's defaults; a test keeps them equal),
# written out so that building the parser does not import the simulator
SEVERITIES = ("mild", "moderate", "severe")
DEFAULT_SEVERITY = "moderate"
DEFAULT_FATIGUE_RATE = 0.15
LAYOUT_HELP = "ring8 (Myo-like armband), grid8x8, grid13x5 (64-ch OTB grid), needle, or ringN / gridRxC"
# The monitor's fatigue tracker learns each channel's rest level from the median RMS of the windows in the first
# FatigueSettings.rest_learning_s (3 s) after its first 200 ms window, i.e. until 3.2 s into the stream. A hold or a
# ramp contracts from the first sample, so without rest first the contraction is learnt as rest: no trend. 5 s of rest
# covers the learning with ~2 s to spare for the filters' start-up transient and a monitor that joins a moment late.
REST_LEAD_IN_S = 5.0
PROFILES_CONTRACTING_AT_ONCE = ("hold", "ramp")  # intermittent and gestures already begin with a --period of rest


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="simulated EMG amplifier (motor-unit model) over LSL, or to a file with --out",
        description=(
            "Simulate physiological EMG from motor-unit pools (healthy, myopathy, neuropathy) with fatigue and "
            "artifacts. Without --out, publish it in real time as an LSL stream (type EMG, µV, electrode layout in "
            "the description) plus a '<name>-markers' stream with JSON ground truth. With --out, write the "
            "recording offline as fast as possible (.npz, .edf or .bdf; see docs/simulator.md)."
        ),
    )
    parser.add_argument("--out", metavar="FILE", help="write FILE (.npz, .edf, .bdf) instead of streaming")
    parser.add_argument("--duration", type=float, metavar="S", help="seconds (default: forever live, 60 with --out)")
    parser.add_argument("--layout", default="ring8", help=f"electrodes: {LAYOUT_HELP} (default ring8)")
    parser.add_argument("--fs", type=float, help="sampling rate in Hz (default 2048 surface, 10000 needle)")
    parser.add_argument("--condition", default="healthy", choices=("healthy", "myopathy", "neuropathy"))
    add_simulator_model_arguments(parser)
    parser.add_argument(
        "--profile",
        default="gestures",
        choices=("rest", "ramp", "hold", "intermittent", "gestures"),
        help="force profile: rest, ramp to --mvc, sustained hold, on/off every --period, or a cycle of gestures",
    )
    parser.add_argument("--mvc", type=float, default=50.0, help="contraction level in %%MVC (default 50)")
    parser.add_argument("--gesture", help="gesture used by hold/ramp/intermittent (ring: fist, wrist_flexion, ...)")
    parser.add_argument("--period", type=float, default=5.0, help="seconds on and off per gesture (default 5)")
    add_rest_lead_in_argument(parser)
    parser.add_argument(
        "--fatigue-rate", type=float,
        help=f"--fatigue-model legacy: conduction-velocity loss per minute at 50%%MVC ({DEFAULT_FATIGUE_RATE:g})",
    )
    parser.add_argument("--mains", type=float, default=50.0, choices=(0.0, 50.0, 60.0), help="50, 60 or 0 (off)")
    parser.add_argument("--snr", type=float, default=30.0, help="signal-to-noise ratio in dB (default 30)")
    parser.add_argument(
        "--artifacts",
        default="mains,wander,noise",
        help="comma list of mains, wander, noise, motion, liftoff, saturation, dropout; 'all' or 'none'",
    )
    parser.add_argument("--seed", type=int, default=0, help="subject and noise seed (same seed, same samples)")
    parser.add_argument("--name", default="NeuroFusion-Sim", help="LSL stream name")
    parser.add_argument("--source-id", help="LSL source_id (default nf-sim-<layout>-<seed>)")
    parser.add_argument("--chunk", type=int, default=32, help="samples per LSL chunk (default 32)")
    parser.add_argument("--marker-rate", type=float, default=4.0, help="ground-truth markers per second (default 4)")
    parser.add_argument("--speed", type=float, default=1.0, help="live: pace at this multiple of real time (default 1)")
    parser.add_argument(
        "--wait",
        type=float,
        metavar="S",
        help="live: wait up to S s for a consumer before streaming (default: with a rest lead-in, until one "
        "connects, so the monitor sees the lead-in; otherwise not at all)",
    )
    parser.set_defaults(handler=run)


def add_simulator_model_arguments(parser: Any) -> None:
    """--tissue, --severity and --fatigue-model, shared by `simulate` and `demo` (which passes them on)."""
    parser.add_argument(
        "--tissue", choices=("legacy", "fibres"),
        help="'fibres' sums each unit's muscle fibres, disease as tissue changes, on a needle, ring or grid layout "
        "(docs/simulator.md); 'legacy' is the model the bundled surface models were trained on. Default: fibres "
        "on a needle (its MUPs are built from fibres and checked against real needle recordings; the legacy "
        "needle is two numbers and a low-pass), legacy on rings and grids for now: the fibre model is the more "
        "realistic there too (surface RMS from the tissue, conditions overlapping as in clinics), but it builds "
        "its templates for 2-40 s of CPU before streaming (ring 2-5 s, 64-ch grid ~21 s, 256-ch ~39 s) and the "
        "bundled surface condition model has not yet been retrained on it (docs/simulator.md)",
    )
    parser.add_argument(
        "--severity", choices=SEVERITIES,
        help="with --tissue fibres and myopathy or neuropathy: how far the condition has progressed (default "
        f"{DEFAULT_SEVERITY})",
    )
    parser.add_argument(
        "--fatigue-model", default="legacy", choices=("legacy", "endurance"),
        help="'endurance': fatigue grows with force to an endurance limit, amplitude rises as units are recruited "
        "(--fatigue-rate unused); 'legacy' (default): conduction velocity falls at --fatigue-rate",
    )


def resolved_tissue(args: argparse.Namespace) -> str:
    """--tissue, or its default for the layout: fibres on a needle, legacy on surface electrodes (the fibre surface
    model's start-up build and the bundled surface model still trained on legacy subjects: docs/simulator.md)."""
    tissue = getattr(args, "tissue", None)
    if tissue is not None:
        return tissue
    return "fibres" if str(getattr(args, "layout", "")).strip().lower() == "needle" else "legacy"


def check_simulator_model_arguments(args: argparse.Namespace) -> None:
    """One-line errors for options that would be silently ignored in this combination."""
    severity = getattr(args, "severity", None)
    if severity is not None and resolved_tissue(args) != "fibres":
        raise UserError("--severity needs --tissue fibres (the legacy model has one severity per condition)")
    if getattr(args, "fatigue_rate", None) is not None and getattr(args, "fatigue_model", "legacy") == "endurance":
        raise UserError("--fatigue-rate is unused by --fatigue-model endurance (its rate follows the force)")


def add_rest_lead_in_argument(parser: Any) -> None:
    parser.add_argument(
        "--rest-lead-in",
        type=float,
        metavar="S",
        help=f"seconds of rest before the profile starts, for the monitor to learn the rest level (default "
        f"{REST_LEAD_IN_S:g} for {' and '.join(PROFILES_CONTRACTING_AT_ONCE)}, 0 otherwise)",
    )


def rest_lead_in_s(args: argparse.Namespace) -> float:
    """--rest-lead-in, or the default for the profile."""
    if args.rest_lead_in is not None:
        return float(args.rest_lead_in)
    return REST_LEAD_IN_S if args.profile in PROFILES_CONTRACTING_AT_ONCE else 0.0


def build_config(args: argparse.Namespace) -> Any:
    """SimulationConfig from parsed options; raises UserError for anything invalid."""
    from simulators.artifacts import ARTIFACTS
    from simulators.emg import SimulationConfig

    text = args.artifacts.strip().lower()
    if text == "all":
        artifacts: tuple[str, ...] = ARTIFACTS
    elif text in ("", "none"):
        artifacts = ()
    else:
        artifacts = tuple(part.strip() for part in text.split(",") if part.strip())
    layout = args.layout
    fs = args.fs if args.fs is not None else (10000.0 if layout.strip().lower() == "needle" else 2048.0)
    check_simulator_model_arguments(args)
    config = SimulationConfig(
        layout=layout,
        fs=fs,
        condition=args.condition,
        profile=args.profile,
        mvc_percent=args.mvc,
        gesture=args.gesture,
        period_s=args.period,
        rest_lead_in_s=rest_lead_in_s(args),
        fatigue_rate=DEFAULT_FATIGUE_RATE if args.fatigue_rate is None else args.fatigue_rate,
        mains_hz=args.mains,
        snr_db=args.snr,
        artifacts=artifacts,
        seed=args.seed,
        tissue=resolved_tissue(args),
        severity=getattr(args, "severity", None) or DEFAULT_SEVERITY,
        fatigue_model=getattr(args, "fatigue_model", "legacy"),
    )
    try:
        config.validate()
        from simulators.artifacts import ArtifactConfig

        ArtifactConfig(enabled=artifacts)
    except ValueError as error:
        raise UserError(str(error)) from None
    return config


def run(args: argparse.Namespace) -> int:
    from simulators.emg import EmgSimulator

    config = build_config(args)
    if not 0 < args.marker_rate <= 1000 or args.chunk <= 0 or not 0 < args.speed <= 1000:
        raise UserError("--marker-rate must be in (0, 1000] per second, --chunk positive, --speed in (0, 1000]")
    if args.duration is not None and not 0 < args.duration < 1e7:
        raise UserError(f"--duration must be a positive number of seconds, not {args.duration:g}")
    if not args.name.strip():  # liblsl: "could not create stream description object"
        raise UserError("--name must name the LSL stream, not be empty")
    simulator = EmgSimulator(config)
    if args.out:
        return _write(simulator, args)
    return _stream(simulator, args)


def _write(simulator: Any, args: argparse.Namespace) -> int:
    from pathlib import Path

    from simulators.files import SUFFIXES, record, write

    path = Path(args.out)
    if path.suffix.lower() not in SUFFIXES:
        raise UserError(f"--out must end in {', '.join(SUFFIXES)}, not {path.name!r}")
    if not path.parent.is_dir():
        raise UserError(f"--out: folder {path.parent} does not exist")
    duration = 60.0 if args.duration is None else args.duration
    if path.suffix.lower() in (".edf", ".bdf"):
        if simulator.fs != round(simulator.fs):
            raise UserError(f"EDF/BDF needs an integer sampling rate, not {simulator.fs:g} Hz; use .npz")
        duration = float(max(1, round(duration)))  # EDF data records are whole seconds
    started = time.perf_counter()
    recording = record(simulator, duration, truth_rate_hz=args.marker_rate)
    try:
        write(recording, path)
    except OSError as error:
        raise UserError(f"cannot write {path}: {error.strerror or error}") from None
    elapsed = time.perf_counter() - started
    print(
        f"wrote {path} ({recording.data.shape[0]} samples x {recording.data.shape[1]} channels at "
        f"{simulator.fs:g} Hz, {duration:g} s simulated in {elapsed:.2f} s)"
    )
    return 0


def _stream(simulator: Any, args: argparse.Namespace) -> int:
    from simulators.amplifier import Amplifier

    if args.chunk <= 0:
        raise UserError(f"--chunk must be positive, not {args.chunk}")
    source_id = args.source_id or f"nf-sim-{simulator.layout.kind}{simulator.n_channels}-{args.seed}"
    amplifier = Amplifier(
        simulator,
        name=args.name,
        source_id=source_id,
        chunk_samples=args.chunk,
        marker_rate_hz=args.marker_rate,
        speed=args.speed,
    )
    _wait_for_consumer(amplifier, args.wait, simulator.config.rest_lead_in_s)
    print(
        f"streaming {args.name!r} (source_id {source_id}): {simulator.n_channels} channels at {simulator.fs:g} Hz, "
        f"{args.condition}, profile {args.profile}; markers on {args.name + '-markers'!r}. Ctrl-C stops.",
        file=sys.stderr,
        flush=True,
    )
    sent = amplifier.run(duration_s=args.duration)
    # the outlet sends asynchronously: give consumers up to 2 s to take the last chunk and hang up before it closes
    give_up = time.monotonic() + 2.0
    time.sleep(0.1)
    while amplifier.has_consumers() and time.monotonic() < give_up:
        time.sleep(0.05)
    print(f"sent {sent} samples", file=sys.stderr)
    return 0


def _wait_for_consumer(amplifier: Any, wait_s: float | None, lead_in_s: float) -> None:
    """A rest lead-in streamed before the monitor connects would be lost, so by default a stream with one starts
    when its first consumer connects."""
    if wait_s is None and lead_in_s > 0:
        print(
            f"waiting for a consumer, so that it sees the {lead_in_s:g} s rest lead-in (--wait 0 streams at once)",
            file=sys.stderr,
            flush=True,
        )
        # short waits: Python runs the Ctrl-C handler only between calls into liblsl
        while not amplifier.wait_for_consumers(0.5):
            pass
    elif wait_s is not None and wait_s > 0:
        amplifier.wait_for_consumers(wait_s)
