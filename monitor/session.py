"""Runs one monitoring session: a stream, an inference worker, the pipeline and a view, and tears all down cleanly."""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import os
import signal
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsp.engine import EngineSettings
from monitor.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class SessionOptions:
    headless: bool = False
    duration_s: float | None = None
    snapshot: Path | None = None
    snapshot_after_s: float = 5.0
    jsonl: str | None = None
    model: str | None = None
    worker_endpoint: str | None = None  # connect to a running worker/broker instead of spawning one
    no_inference: bool = False
    settings: EngineSettings | None = None
    record: Path | None = None  # an XDF file for LabRecorder: raw EMG and every result stream
    overwrite: bool = False
    curve: Any = None  # CurveClientKeys for a remote worker or broker bound beyond loopback
    patient: str = "unnamed"  # where live-adapted models are kept (patients_dir/patient)
    patients_dir: Path | None = None
    # the view's process: "inline" = in this process; "none" = no view, the core alone (views attach with
    # `neurofusion view`); "process" = the window or dashboard in a process of its own (monitor/core/process.py);
    # None = the default: a window in its own process, the terminal dashboard, a snapshot and needle streams inline
    core_view: str | None = None
    needle_muscle: str | None = None  # the needle MUP panel's reference values (`monitor --muscle/--age`)
    needle_age: float | None = None
    # motor units in the core from the start (`monitor --decompose`): calibrated by itself after this much signal,
    # published on <stream>-discharges with no view (monitor/decomposition_service.py)
    decompose: bool = False
    calibrate_seconds: float = 20.0
    decompose_starts: int | None = None
    decompose_units: Path | None = None  # `monitor --motor-units`: a unit set saved earlier, its units found again
    save_units: Path | None = None  # `monitor --save-motor-units`: each calibration's unit set written there


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and (
        os.environ.get("QT_QPA_PLATFORM", "") != "offscreen"
    )


def choose_window(options: SessionOptions) -> bool:
    """Whether the session shows the window: where a display exists, --headless is not given and Qt can really open
    a window there. When it cannot (a missing library, a dead DISPLAY) one line says why and how to fix it, and the
    session goes on with the terminal dashboard (a snapshot then renders offscreen) instead of Qt aborting midway,
    leaving the children this session started behind."""
    if not has_display() or (options.headless and options.snapshot is None):
        return False
    from monitor.gui.app import window_unavailable

    reason = window_unavailable()
    if reason is None:
        return not options.headless
    print(f"no window, showing the terminal dashboard: {reason}", file=sys.stderr)
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    return False


def stop_on_signals(stop: threading.Event) -> None:
    """SIGINT and SIGTERM end the session through the normal teardown, so every child and file is closed."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())


def start_inference(options: SessionOptions, stack: ExitStack, bed_id: str) -> tuple[Any | None, Any | None]:
    """(client, handle of the worker this session spawned — None for a remote worker or no inference)."""
    if options.no_inference:
        return None, None
    from monitor.inference.client import InferenceClient
    from monitor.inference.supervisor import WorkerSupervisor, spawn_worker

    if options.worker_endpoint is not None:
        client = InferenceClient(endpoint=options.worker_endpoint, bed_id=bed_id, curve=options.curve)
        stack.callback(client.close)
        return client, None
    # the worker loads live-adapted models only from folders it allows: this session's patients folder is one
    handle = spawn_worker(model_path=options.model, extra_args=() if options.patients_dir is None
                          else ("--models-dir", str(options.patients_dir)))
    stack.callback(handle.stop)
    client = InferenceClient(endpoint=handle.endpoint, bed_id=bed_id)
    stack.callback(client.close)
    deadline = time.monotonic() + 10.0
    while client.state != "online" and time.monotonic() < deadline:  # so the first windows are not dropped
        time.sleep(0.02)
    # a worker this monitor started is restarted when it dies or hangs; meanwhile the monitor keeps filtering
    supervisor = WorkerSupervisor(handle, client).start()
    stack.callback(supervisor.stop, stop_worker=False)
    return client, handle


def start_adaptation(options: SessionOptions, pipeline: Any, handle: Any, stack: ExitStack) -> Any | None:
    """Live labelling and fine-tuning for a worker this session runs (a remote worker is not ours to swap)."""
    if handle is None:
        return None
    from models.checkpoint import BUNDLED_CHECKPOINT, read_card
    from monitor.adaptation.marks import MarkOutlet
    from monitor.adaptation.session import AdaptationSession
    from monitor.inference.client import ModelControl

    checkpoint = options.model or BUNDLED_CHECKPOINT
    # the card beside the checkpoint: the fine-tuning runs in its own process, so this one needs no torch
    try:
        card = read_card(checkpoint)
    except (OSError, ValueError):
        from models.checkpoint import load_checkpoint

        # a checkpoint copied without its .card.json still carries its card inside: torch, for this case only
        _, card = load_checkpoint(checkpoint)
    stream = pipeline.acquisition.stream
    control = ModelControl(handle.endpoint)
    stack.callback(control.close)
    return AdaptationSession(
        pipeline.engine.filtered, pipeline.state.fs, card, checkpoint, options.patient, options.patients_dir,
        control=control, worker=handle, channels=pipeline.model_channels,
        outlet=MarkOutlet(stream.name, stream.source_id), hop_ms=pipeline.engine.settings.hop_ms,
    )


def model_card(options: SessionOptions) -> dict[str, Any] | None:
    """The JSON card of the model a spawned worker will load (no weights loaded here), or None."""
    if options.no_inference or options.worker_endpoint is not None:
        return None
    from models.checkpoint import BUNDLED_CHECKPOINT, card_path

    try:
        return json.loads(card_path(options.model or BUNDLED_CHECKPOINT).read_text())
    except (OSError, ValueError):
        return None  # the worker reports a missing or broken checkpoint itself, clearly


def layout_name(layout: dict[str, Any] | None) -> str:
    """A stream's electrode layout in a few characters: grid13x5, ring, needle."""
    if not layout:
        return "no layout"
    kind = str(layout.get("kind", "unnamed layout"))
    if layout.get("rows") and layout.get("cols"):
        return f"{kind}{layout['rows']}x{layout['cols']}"
    return kind


def check_model_fits(card: dict[str, Any] | None, stream_info: Any, options: SessionOptions) -> bool:
    """Whether the model fits the stream's electrodes (True where no model runs). A model the user named for
    another electrode count would fail every request: refused before anything starts. The bundled model for another
    layout is simply not run (False): the session runs what fits (filters, features, fatigue, quality)."""
    from monitor.acquisition import full_description
    from monitor.recordings.analysis import rate_misfit

    if card is None or "n_channels" not in card:
        return True
    # the predictor resamples to the card's rate, but a stream whose band stops short of the model's (a 200 Hz Myo
    # for a 2048 Hz surface model: 95 of 450 Hz) was read as 50 % myopathy: the band must fit, like the layout
    misfit = rate_misfit(float(card.get("fs") or 0), float(stream_info.nominal_srate()))
    if misfit is not None:
        if options.model is None:
            return False
        raise UserError(
            f"{options.model} {misfit} but stream '{stream_info.name()}' is at {stream_info.nominal_srate():g} Hz; "
            "pass --model with a checkpoint for this rate, or --no-inference"
        )
    # a resolved StreamInfo has no channel types: the outlet's full description tells an index channel from EMG
    emg = len(full_description(stream_info).emg_channels)
    if int(card["n_channels"]) == emg:
        return True
    if options.model is None:
        return False
    kind = (card.get("layout") or {}).get("kind", "its own layout")
    raise UserError(
        f"{options.model} expects {card['n_channels']} EMG channels ({kind}) but stream '{stream_info.name()}' has "
        f"{emg}; pass --model with a checkpoint for this layout, or --no-inference"
    )


def no_model_status(stream: Any, card: dict[str, Any] | None = None) -> str:
    """What the views say where no bundled model fits the stream (its full description: layout, channel types,
    rate); ``card``: the bundled model's, to say when its band is the reason."""
    from monitor.recordings.analysis import rate_misfit

    misfit = None if not card else rate_misfit(float(card.get("fs") or 0), float(stream.fs))
    if misfit is not None:
        return f"no condition model for {stream.fs:g} Hz: the bundled model {misfit}"
    return f"no model for this layout ({len(stream.emg_channels)} ch {layout_name(stream.layout)})"


class RecordingControl:
    """Starts and stops LabRecorder for a session: from --record at start, or from the window's record button."""

    def __init__(self, options: SessionOptions, pipeline: Any) -> None:
        self.options = options
        self.pipeline = pipeline
        self.recorder: Any = None

    def default_path(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return Path.cwd() / f"neurofusion-{self.pipeline.acquisition.stream.name}-{stamp}.xdf"

    def start(self, path: Path | None = None) -> str:
        from monitor.recordings.record import SessionRecorder, bytes_per_second, session_source_ids

        if self.recorder is not None:
            return f"recording to {self.pipeline.state.recording}"
        stream = self.pipeline.acquisition.stream
        path = path or self.default_path()
        recorder = SessionRecorder(
            path, session_source_ids(stream.source_id), bytes_per_second(stream.n_channels, stream.fs),
            overwrite=self.options.overwrite,
        )
        recorded = recorder.start()
        self.recorder = recorder
        self.pipeline.state.recording = str(path)
        print(f"recording {len(recorded)} streams into {path}", file=sys.stderr)
        return f"recording to {path}"

    def stop(self) -> None:
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            recorder.stop()
            self.pipeline.state.recording = None

    def toggle(self, on: bool) -> str | None:
        """The window's record button: each press starts a new, time-stamped file in the current folder."""
        if on:
            return self.start()
        self.stop()
        return None


def check_record_destination(options: SessionOptions, stream_info: Any) -> None:
    """An unwritable path or a full disk is reported now, before anything starts, not after an hour."""
    if options.record is None:
        return
    from monitor.recordings.record import bytes_per_second, check_destination

    needed = bytes_per_second(stream_info.channel_count(), stream_info.nominal_srate())
    check_destination(options.record, needed, 600.0, options.overwrite)


def run_session(stream_info: Any, options: SessionOptions, stop: threading.Event | None = None) -> int:
    from monitor.pipeline import MonitorPipeline

    stop = stop or threading.Event()
    stop_on_signals(stop)
    check_record_destination(options, stream_info)
    needle = None
    if not options.no_inference and options.worker_endpoint is None:
        from monitor.needle_live import needle_session_model

        # a one-channel needle stream is judged by the needle model in this process, not the surface worker
        needle = needle_session_model(stream_info, options.model, options.settings and options.settings.mode)
    card = None if needle is not None else model_card(options)
    model_fits = check_model_fits(card, stream_info, options)
    unfitting_card = card  # its rate or layout is said once the stream is described
    if not model_fits:
        options, card = dataclasses.replace(options, no_inference=True), None
    window = choose_window(options)
    with ExitStack() as stack:
        settings = options.settings
        if needle is None:
            client, handle = start_inference(options, stack, bed_id=stream_info.source_id() or stream_info.name())
            classes = [str(name) for name in card["classes"]] if card and "classes" in card else None
        else:
            from dataclasses import replace

            from monitor.needle_live import needle_classes

            client, handle = None, None
            classes = None if needle[0] is None else needle_classes(needle[0])
            settings = replace(settings or EngineSettings(), mode="needle")  # high-pass only: the spikes are kHz
        pipeline = MonitorPipeline(stream_info, settings=settings, client=client, classes=classes)
        pipeline.needle_reference = (options.needle_muscle, options.needle_age)  # read by the needle panel
        if not model_fits:
            pipeline.state.model_status = no_model_status(pipeline.acquisition.stream, unfitting_card)
            print(f"{pipeline.state.model_status}: running filters, features, fatigue and signal quality without "
                  "a condition model (--model names a checkpoint trained for this layout and rate)", file=sys.stderr)
        stack.callback(pipeline.stop)
        if handle is not None:
            # a spawned worker's deaths and restarts go on the events stream (shown, published, recorded) as signal
            # lost/restored do; unhooked before the pipeline stops
            handle.add_event_listener(pipeline.record_event)
            stack.callback(handle.remove_event_listener, pipeline.record_event)
        # start-up's objects (torch, scipy, Qt, the model) leave the collector's reach: a full collection over them
        # took 65-290 ms on the 2-core machine and held up the processing thread (docs/decomposition.md, latency)
        gc.freeze()
        pipeline.start()
        if needle is not None:  # the status views name what judges this stream (there is no worker)
            pipeline.state.model_status = ("no needle model installed: MUP panel only" if needle[0] is None
                                           else f"needle model {needle[0].model_id} (in this process)")
        if needle is not None and needle[0] is not None:
            from monitor.needle_live import LiveNeedleVerdicts

            stack.callback(LiveNeedleVerdicts(pipeline, needle[0], channel=needle[1]).start().stop)
        decomposition = None  # a grid's motor units: now with --decompose, else when a view first calibrates
        if needle is None:
            from monitor.decomposition_service import core_decomposition

            decomposition = core_decomposition(pipeline, options.decompose, options.calibrate_seconds,
                                               options.decompose_starts, options.decompose_units,
                                               options.save_units)  # fmt: skip
        recording = RecordingControl(options, pipeline)
        stack.callback(recording.stop)
        if options.record is not None:
            recording.start(options.record)
        if options.snapshot is not None:
            from monitor.core.process import extra_status
            from monitor.core.snapshot import take_snapshot  # rendered in a process of its own: no Qt here

            # a decomposing session's units go into the published status, as for an attached view (serve_core)
            path = take_snapshot(pipeline, options.snapshot, after_s=options.snapshot_after_s,
                                 extra_status=extra_status(decomposition=decomposition))  # fmt: skip
            print(f"snapshot written to {path}", file=sys.stderr)
            if options.duration_s is None or options.duration_s <= options.snapshot_after_s:
                return 0
        from monitor.core.process import default_core_view

        core_view = options.core_view or default_core_view(window, options.snapshot, needle)
        if core_view != "inline":
            from monitor.core.process import serve_core

            view = None if core_view == "none" else ("window" if window else "headless")
            adaptation = start_adaptation(options, pipeline, handle, stack)  # driven by an attached window's panel
            with open_jsonl(options.jsonl, stack) as jsonl:
                return serve_core(pipeline, recording, stop, view=view, duration_s=options.duration_s, jsonl=jsonl,
                                  adaptation=adaptation, decomposition=decomposition)
        if not window:
            from monitor.headless import HeadlessDashboard

            with open_jsonl(options.jsonl, stack) as jsonl:
                HeadlessDashboard(pipeline, jsonl=jsonl).run(options.duration_s, stop)
            if pipeline.acquisition.incompatible:
                raise UserError(pipeline.acquisition.incompatible)
            return 0
        from monitor.gui.app import run_window

        return run_window(
            pipeline, duration_s=options.duration_s, on_recording=recording.toggle, on_marker=pipeline.annotate,
            adaptation=start_adaptation(options, pipeline, handle, stack),
        )
    return 0


def open_jsonl(target: str | None, stack: ExitStack) -> Any:
    from contextlib import nullcontext

    if target is None:
        return nullcontext(None)
    if target == "-":
        return nullcontext(sys.stdout)
    try:
        return open(target, "a", encoding="utf-8")  # noqa: SIM115 - closed by the caller's with-block
    except OSError as error:
        raise UserError(f"cannot write decisions to {target}: {error.strerror}") from error
