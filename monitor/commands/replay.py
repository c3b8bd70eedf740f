"""`neurofusion replay FILE`: a recording published as a live LSL amplifier (EMG + markers/labels)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from monitor.cli_options import check_start_end
from monitor.recordings.options import add_reader_arguments, reader_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="publish a recording as a live LSL stream",
        description="Publish a recorded session (XDF, EDF/BDF, WFDB, OT Bioelettronica .mat, CSV/TSV, NPZ) as an "
        "LSL EMG outlet paced against the LSL clock without drift, plus a marker outlet with the file's markers "
        "and label changes, so the monitor, LabRecorder or any LSL tool sees it as a live amplifier.",
    )
    parser.add_argument("file", help="the recording to replay")
    play = parser.add_argument_group("replay")
    play.add_argument("--speed", type=float, default=1.0, help="playback speed factor (default 1: real time)")
    play.add_argument("--loop", action="store_true", help="start again from --start after --end, until stopped")
    play.add_argument("--start", type=float, help="seconds into the recording to start from (default 0)")
    play.add_argument("--end", type=float, help="seconds into the recording to stop at (default: its end)")
    play.add_argument("--duration", type=float, help="stop after this many seconds of signal (useful with --loop)")
    play.add_argument("--name", help="LSL stream name (default NeuroFusion-Replay-<file stem>)")
    play.add_argument("--source-id", help="LSL source id, so consumers reconnect after a restart (default: by file)")
    play.add_argument("--with-force", action="store_true",
                      help="also publish the file's force (an OTB %%MVC column) as a channel typed Force after the "
                      "EMG, so the motor-unit panel shows recruitment thresholds against it")
    play.add_argument("--chunk-samples", type=int, default=32, help="samples per pushed chunk (default 32)")
    play.add_argument(
        "--wait-for-consumer",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="hold the first sample until a consumer connects (up to SECONDS), so it receives the whole file",
    )
    add_reader_arguments(parser)
    parser.set_defaults(handler=run)


def stream_names(source: str | Path | None, name: str | None = None, source_id: str | None = None
                 ) -> tuple[str, str]:  # fmt: skip
    """The LSL stream name and source id of a replay of ``source``: the file's name without any recording suffix,
    compression included (``EMG _203.asc.xz`` -> ``NeuroFusion-Replay-EMG _203``), unless given."""
    from monitor.recordings.base import recording_stem

    stem = recording_stem(Path(source)) if source else "recording"
    return name or f"NeuroFusion-Replay-{stem}", source_id or f"neurofusion-replay-{stem}"


def check_numbers(args: argparse.Namespace) -> None:
    """Refuses, in one line and before the file is read, numbers no replay can use: a nan/inf --start/--end/
    --duration was a ValueError from an integer sample index, and a nan --speed or a --duration of 0 played
    nothing (or paced nothing) with exit code 0."""
    import math

    from monitor.errors import UserError

    if not (math.isfinite(args.speed) and args.speed > 0):
        raise UserError(f"--speed must be a positive factor, not {args.speed:g}")
    if args.chunk_samples <= 0:
        raise UserError(f"--chunk-samples must be positive, not {args.chunk_samples}")
    if args.duration is not None and not (math.isfinite(args.duration) and args.duration > 0):
        raise UserError(f"--duration must be a positive number of seconds, not {args.duration:g}")
    check_start_end(args)
    if not (math.isfinite(args.wait_for_consumer) and args.wait_for_consumer >= 0):
        raise UserError(f"--wait-for-consumer must be 0 or more seconds, not {args.wait_for_consumer:g}")


def run(args: argparse.Namespace) -> int:
    from monitor.errors import UserError
    from monitor.recordings import open_recording
    from monitor.recordings.replay import replay_source
    from simulators.amplifier import Amplifier

    check_numbers(args)
    recording = open_recording(args.file, **reader_options(args)).slice_seconds(args.start, args.end)
    name, source_id = stream_names(recording.source, args.name, args.source_id)
    if args.with_force and not recording.auxiliary:
        raise UserError(f"{Path(args.file).name} has no force column to publish (--with-force)")
    source = replay_source(recording, loop=args.loop, auxiliary=args.with_force)
    amplifier = Amplifier(source, name=name, source_id=source_id, chunk_samples=args.chunk_samples, speed=args.speed)
    print(
        f"replaying {args.file}: {source.n_channels} ch x {recording.fs:g} Hz, {recording.duration_s:.2f} s"
        f"{' (looping)' if args.loop else ''} at {args.speed:g}x as LSL stream {name!r} (source id {source_id})",
        flush=True,
    )
    if args.wait_for_consumer > 0 and not amplifier.wait_for_consumers(args.wait_for_consumer):
        print(f"no consumer after {args.wait_for_consumer:g} s; replaying anyway", file=sys.stderr, flush=True)
    stop = threading.Event()
    # SIGTERM (a supervisor stopping us) ends the replay as cleanly as Ctrl-C does
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sent = amplifier.run(duration_s=args.duration, stop_event=stop)
    if not stop.is_set():
        amplifier.linger()
    print(f"sent {sent} samples ({sent / recording.fs:.2f} s of signal)", flush=True)
    return 0
