"""`neurofusion adapt`: label spans of a live stream, fine-tune the model on them in the background, hot-swap it."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from monitor.commands.monitor import add_stream_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "adapt",
        help="adapt the model to a patient during a live session (headless, scripted)",
        description="Listen to a live EMG stream, take labelled spans from a JSON file (seconds from the first "
        "sample received) or from an LSL marker stream (JSON marks, or 'begin <label>' / 'end' samples, then "
        "'adapt'), fine-tune the running model on them in a background process, and when the held-out part of "
        "the marks is classified better, ask the inference worker to switch to the adapted model. The model is "
        "saved with its card under <patients-dir>/<patient>/. Prints the figures as JSON.",
    )
    add_stream_arguments(parser)
    marks = parser.add_argument_group("marks").add_mutually_exclusive_group(required=True)
    marks.add_argument("--marks", type=Path, metavar="FILE.json",
                       help='{"marks": [{"label": "healthy", "start": 2.0, "end": 12.0}, ...]}, seconds from the '
                       "first sample received")
    marks.add_argument("--marker-stream", metavar="NAME", help="LSL marker stream sending the marks, then 'adapt'")
    patient = parser.add_argument_group("patient")
    patient.add_argument("--patient", required=True, help="patient id (folder name for the adapted models)")
    patient.add_argument("--patients-dir", type=Path, help="default ~/.neurofusion/patients")
    model = parser.add_argument_group("model")
    model.add_argument("--model", metavar="CHECKPOINT", help="the running model (default: the bundled one)")
    model.add_argument("--worker", metavar="ENDPOINT", help="the worker to switch (default: start one here)")
    model.add_argument("--epochs", type=int, default=12, help="fine-tuning epochs (default 12)")
    model.add_argument("--min-gain", type=float, default=0.0, metavar="FRACTION",
                       help="swap only when held-out accuracy rises by more than this (default 0)")
    model.add_argument("--no-swap", action="store_true", help="adapt and save, but leave the worker's model")
    parser.add_argument("--timeout", type=float, default=600.0, metavar="S",
                        help="give up when the marks and the adaptation are not done within S seconds")
    parser.set_defaults(handler=run)


def make_paths_absolute(args: argparse.Namespace) -> None:
    """--model and --patients-dir against the user's folder: the worker runs in the repository's folder, where a
    relative checkpoint is not found and a relative patients folder is another one than this process writes to."""
    if args.model:
        args.model = str(Path(args.model).expanduser().absolute())
    if args.patients_dir is not None:
        args.patients_dir = Path(args.patients_dir).expanduser().absolute()


def run(args: argparse.Namespace) -> int:
    from monitor.errors import UserError
    from monitor.lslenv import use_lsl_config

    use_lsl_config()
    if args.epochs < 1 or args.timeout <= 0 or not 0 <= args.min_gain < 1:
        raise UserError("--epochs must be at least 1, --timeout positive and --min-gain in [0, 1)")
    file_marks = None
    if args.marks:
        from monitor.adaptation.marks import load_marks

        file_marks = load_marks(args.marks)
    if args.model and not Path(args.model).is_file():
        raise UserError(f"no checkpoint at {args.model}")
    make_paths_absolute(args)
    from monitor.adaptation.session import patient_folder

    patient_folder(args.patients_dir, args.patient)  # a bad id fails before anything starts

    from models.checkpoint import load_checkpoint, read_card
    from monitor.acquisition import resolve_stream
    from monitor.adaptation.job import AdaptationSettings
    from monitor.adaptation.marks import Mark, MarkListener, MarkOutlet
    from monitor.adaptation.session import AdaptationSession
    from monitor.inference.client import InferenceClient, ModelControl
    from monitor.inference.supervisor import spawn_worker
    from monitor.pipeline import MonitorPipeline

    try:
        card = read_card(args.model)  # this process only streams and marks: the network lives in the worker
    except OSError:  # a checkpoint without its .card.json beside it: the card is inside the .pt too
        try:
            _, card = load_checkpoint(args.model)
        except (FileNotFoundError, ValueError) as error:
            raise UserError(str(error)) from None
    except ValueError as error:
        raise UserError(str(error)) from None
    info = resolve_stream(args.name, args.type, args.source_id, timeout_s=args.resolve_timeout)
    handle = None if args.worker else spawn_worker(args.model, standby=False, extra_args=(
        () if args.patients_dir is None else ("--models-dir", str(args.patients_dir))))
    endpoint = args.worker or handle.endpoint
    client = InferenceClient(endpoint, bed_id=f"adapt-{args.patient}")
    control = None if args.no_swap else ModelControl(endpoint)
    pipeline = MonitorPipeline(info, client=client, publish=False)
    listener = None
    try:
        layout = pipeline.state.layout
        if layout is not None:
            try:
                card.check_layout(layout)
            except ValueError as error:
                raise UserError(str(error)) from None
        session = AdaptationSession(
            pipeline.engine.filtered, pipeline.state.fs, card, args.model, args.patient, args.patients_dir,
            control=control, worker=handle, channels=pipeline.model_channels,
            settings=AdaptationSettings(epochs=args.epochs, min_gain=args.min_gain),
            outlet=MarkOutlet(pipeline.state.stream_name, f"adapt-{args.patient}"),
        )
        adapt_requested: list[float] = []
        if args.marker_stream:
            listener = MarkListener(args.marker_stream, session.marks, timeout_s=args.resolve_timeout,
                                    commands={"adapt": adapt_requested.append})
            listener.start()
        pipeline.start()
        give_up = time.monotonic() + args.timeout
        first = _first_timestamp(pipeline, give_up)
        if file_marks is not None:
            for mark in file_marks:
                session.marks.add(Mark(mark.label, first + mark.start, first + mark.end, "file"))
        while time.monotonic() < give_up:  # until every mark is captured (file) or 'adapt' arrives (stream)
            session.step()
            if (file_marks is not None or adapt_requested) and session.marks.marks() and session.store.pending == 0:
                break
            time.sleep(0.05)
        else:
            raise UserError(f"the marks were not complete within {args.timeout:g} s")
        session.start()
        print(f"adapting on {sum(session.marks.seconds_per_label().values()):.1f} s of marks ...", flush=True)
        session.wait(max(1.0, give_up - time.monotonic()))
        job = session.job
        if not job.finished:
            session.cancel()
            raise UserError(f"the adaptation did not finish within {args.timeout:g} s (cancelled)")
        summary = {"status": session.status, "state": job.state, **{key: value for key, value in job.result.items()
                                                                      if key != "kind"},
                   "running_model": session.active.model_id}
        print(json.dumps(summary), flush=True)
        return 0 if job.state == "done" else 1
    finally:
        if listener is not None:
            listener.stop()
        pipeline.stop()
        client.close()
        if control is not None:
            control.close()
        if handle is not None:
            handle.stop()


def _first_timestamp(pipeline: object, give_up: float) -> float:
    from monitor.errors import UserError

    buffer = pipeline.acquisition.buffer
    while time.monotonic() < give_up:
        if buffer.total_written:
            return float(buffer.read_from(0, 1).timestamps[0])
        time.sleep(0.02)
    raise UserError("no samples arrived from the stream")
