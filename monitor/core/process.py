"""The monitor core as a process of its own: the session's pipeline, recording and result outlets, published for views
(shared memory + control channel), with or without a view process it started itself.

A view here is a child process (``neurofusion view``); it may crash, hang or be closed and reopened: the core goes
on and its status line says what became of the view. Closing the window normally (exit 0) ends the session, as the
in-process window always did; Ctrl-C or SIGTERM end both.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from monitor.core.control import (
    ControlServer,
    ViewRegistry,
    make_core_dir,
    remove_core_dir,
    running_cores,
    write_description,
)
from monitor.core.publisher import StatePublisher

STATUS_EVERY_S = 5.0


def default_core_view(window: bool, snapshot: Any, needle: Any) -> str:
    """Where the view runs when the user did not say: a window in a process of its own (a hung or crashed window
    costs the core nothing); the terminal dashboard, a snapshot session and a needle stream (its verdict panel and
    MUP analysis beside the pipeline) in the monitor process, as before."""
    return "process" if window and snapshot is None and needle is None else "inline"


def core_handlers(pipeline: Any, recording: Any, views: ViewRegistry, adaptation: Any = None) -> dict[str, Any]:
    """What a view may ask of the core (monitor.core.control documents the requests)."""

    def hello(request: dict[str, Any]) -> dict[str, Any]:
        views.seen(str(request["view"]), int(request["pid"]), str(request.get("kind", "window")))
        return {"core_pid": os.getpid()}

    def bye(request: dict[str, Any]) -> dict[str, Any]:
        views.gone(str(request["view"]))
        return {}

    def marker(request: dict[str, Any]) -> dict[str, Any]:
        import pylsl

        text = str(request["text"]).strip()
        if not text:
            raise ValueError("a marker needs text")
        pipeline.annotate(float(request.get("timestamp") or pylsl.local_clock()), text[:500])
        return {}

    def record(request: dict[str, Any]) -> dict[str, Any]:
        return {"text": recording.toggle(bool(request["on"]))}

    def settings(request: dict[str, Any]) -> dict[str, Any]:
        changes = request["changes"]
        known = {item.name for item in dataclasses.fields(pipeline.engine.settings)}
        if not isinstance(changes, dict) or set(changes) - known:
            raise ValueError(f"settings are {sorted(known)}")
        pipeline.engine.update_settings(**changes)
        return {"settings": dataclasses.asdict(pipeline.engine.settings)}

    def status(request: dict[str, Any]) -> dict[str, Any]:
        return {"line": status_line(pipeline, views)}

    handlers = {"hello": hello, "heartbeat": hello, "bye": bye, "marker": marker, "record": record,
                "settings": settings, "status": status}  # fmt: skip
    if adaptation is not None:  # the live-adaptation panel of an attached window
        from monitor.core.adaptation_proxy import handle

        handlers["adaptation"] = lambda request: handle(adaptation, request)
    return handlers


def status_line(pipeline: Any, views: ViewRegistry) -> str:
    from monitor.acquisition import dropped_figure, signal_status

    state, acquisition, engine = pipeline.state, pipeline.acquisition, pipeline.engine
    signal_now = signal_status(acquisition)
    latency = state.latency_percentiles()
    timing = f"latency p50 {latency['p50_ms']:.1f} p99 {latency['p99_ms']:.1f} ms" if latency else "no decisions yet"
    recording = f"recording {state.recording}" if state.recording else "not recording"
    return (f"core {state.stream_name}: {signal_now.phrase}, samples {acquisition.buffer.total_written} "
            f"{dropped_figure(engine.reader.dropped, signal_now)}, windows {state.windows_seen}, decisions "
            f"{state.decisions_published}, {timing}, {recording} | {views.describe()}")  # fmt: skip


def view_command(core_dir: Path, headless: bool) -> list[str]:
    command = [sys.executable, "-m", "monitor.cli", "view", "--core", str(core_dir), "--started-by-core"]
    return command + (["--headless"] if headless else [])


class DecisionLines:
    """Every decision as a JSON line (``--jsonl``): written by the core, so no view can lose one."""

    def __init__(self, pipeline: Any, target: IO[str] | None) -> None:
        self.pipeline, self.target, self.written = pipeline, target, 0

    def write_new(self) -> None:
        if self.target is None:
            return
        from monitor.headless import decision_line

        state = self.pipeline.state
        with state.lock:
            fresh = state.decisions.recent(state.decisions_published - self.written)
            self.written = state.decisions_published
            newest = state.features.latest()
            usable = state.usable
        features = newest[1] if newest is not None else None
        for record in fresh:
            self.target.write(decision_line(record, features, usable, state.emg_channels) + "\n")
        if fresh:
            self.target.flush()


def serve_core(pipeline: Any, recording: Any, stop: threading.Event, *, view: str | None,
               duration_s: float | None = None, jsonl: IO[str] | None = None,
               adaptation: Any = None, on_ready: Any = None) -> int:  # fmt: skip
    """Runs the core until ``stop``, ``duration_s``, a refused stream, or its view closing normally.

    ``view``: None (no view: a recording station; views attach with ``neurofusion view``), "window" or "headless"
    (a view process started here). ``adaptation``: the session's AdaptationSession, stepped here and driven by an
    attached window's panel. Returns 0, or raises UserError for a stream the acquisition refused."""
    from monitor.errors import UserError

    views = ViewRegistry()
    running_cores()  # removes what cores killed before their cleanup left (folder, shared memory)
    folder = make_core_dir()
    extra = None
    if adaptation is not None:
        from monitor.core.adaptation_proxy import describe

        def extra() -> dict[str, Any]:
            return {"adaptation": describe(adaptation)}

    publisher = StatePublisher(pipeline, views.describe, extra_status=extra)
    server = ControlServer(f"ipc://{folder / 'control'}", core_handlers(pipeline, recording, views, adaptation))
    lines = DecisionLines(pipeline, jsonl)
    child: subprocess.Popen | None = None
    try:
        publisher.start()
        server.start()
        write_description(folder, {"pid": os.getpid(), "shm": publisher.name_in_shm, "control": server.endpoint,
                                   "stream": pipeline.state.stream_name, "started": time.time()})  # fmt: skip
        print(f"monitor core running (pid {os.getpid()}); attach a view: neurofusion view --core {os.getpid()}",
              file=sys.stderr, flush=True)  # fmt: skip
        if view is not None:
            child = subprocess.Popen(view_command(folder, view == "headless"), stdin=subprocess.DEVNULL)
            views.child = child
        if on_ready is not None:
            on_ready(folder)
        deadline = None if duration_s is None else time.monotonic() + duration_s
        next_status = time.monotonic() + STATUS_EVERY_S
        said_gone = False
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            if pipeline.acquisition.incompatible:
                break
            lines.write_new()
            if adaptation is not None:
                adaptation.step()  # never blocks: fine-tuning runs in its own process
            if child is not None and child.poll() is not None and not said_gone:
                said_gone = True
                if child.returncode == 0:
                    break  # the user closed the window: the session ends, as it always has
                print(status_line(pipeline, views), file=sys.stderr, flush=True)
            if time.monotonic() >= next_status:
                next_status = time.monotonic() + STATUS_EVERY_S
                print(status_line(pipeline, views), file=sys.stderr, flush=True)
            stop.wait(0.1)
        lines.write_new()
        print(status_line(pipeline, views), file=sys.stderr, flush=True)
    finally:
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)
            child.send_signal(signal.SIGCONT)  # a frozen view (SIGSTOP) gets its SIGTERM once it runs again
            try:
                child.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        server.stop()
        publisher.stop()
        remove_core_dir(folder)
    if pipeline.acquisition.incompatible:
        raise UserError(pipeline.acquisition.incompatible)
    return 0
