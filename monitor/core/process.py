"""The monitor core as a process of its own: the session's pipeline, recording and result outlets, published for views
(shared memory + control channel), with or without a view process it started itself.

A view here is a child process (``neurofusion view``); it may crash, hang or be closed and reopened: the core goes
on, starts the view again (``ViewChild``) and its status line says what became of the view. Closing the window
normally (exit 0) ends the session, as the in-process window always did; Ctrl-C or SIGTERM end both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
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
# a view the core started that dies (a crash, a kill) is started again at once, at most this often: a view that
# cannot start at all (a broken display, say) must not become a loop of start-ups on the core's two cores
MAX_RESTARTS, RESTART_WINDOW_S = 5, 60.0
# a view silent this long (a stuck event loop, SIGSTOP) is killed and started again: the 5 s freeze of the issue's
# test is not a hang, a window frozen for half a minute at the bedside is
HUNG_RESTART_S = 20.0
# at the end of a session, how long the core waits for a view it started that is still starting up, so that the
# view gets its SIGTERM once it can handle it (and prints its final dashboard) instead of dying mid-import
VIEW_STARTUP_WAIT_S = 15.0
USER_ERROR_EXIT = 2  # a view that exits with a user error (a refused layout) would fail the same way again
# the view process runs this much nicer than the core: on two cores shared by the core, the worker, the amplifier and
# the window, the scheduler then serves acquisition and decisions first and the window gets what is left (its frame
# rate drops under contention, the decisions' latency does not); with a core to spare it changes nothing
VIEW_NICENESS = 5


def lower_priority(pid: int, niceness: int = VIEW_NICENESS) -> None:
    """Makes process ``pid`` (a view) ``niceness`` nicer than this process; nothing where the system refuses."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, pid, min(os.getpriority(os.PRIO_PROCESS, 0) + niceness, 19))


def extra_status(adaptation: Any = None, decomposition: Any = None) -> Callable[[], dict[str, Any]] | None:
    """What the core publishes beside the pipeline's state for its views (and a snapshot's render): the adaptation
    and the motor-unit decomposition it runs, each where there is one; None where there is neither."""
    if adaptation is None and decomposition is None:
        return None
    from monitor.core.adaptation_proxy import describe

    def extra() -> dict[str, Any]:
        document = {} if adaptation is None else {"adaptation": describe(adaptation)}
        if decomposition is not None:
            document["decomposition"] = decomposition.describe()
        return document

    return extra


def default_core_view(window: bool, snapshot: Any, needle: Any) -> str:
    """Where the view runs when the user did not say: in a process of its own, the window and the terminal dashboard
    alike (a hung or crashed view costs the core nothing and is started again). ``snapshot`` and ``needle`` no
    longer change that: a snapshot is a one-shot render into a file by a short-lived process attached to the core
    (monitor/core/snapshot.py; the core never imports Qt), and a needle stream's verdicts are the core's decisions,
    which an attached view reads like any others."""
    return "process"


def core_handlers(pipeline: Any, recording: Any, views: ViewRegistry, adaptation: Any = None,
                  decomposition: Any = None) -> dict[str, Any]:  # fmt: skip
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
    if decomposition is not None:  # motor units in the core: a view's Calibrate (monitor/decomposition_service.py)
        handlers["decomposition"] = decomposition.handle
    return handlers


def status_line(pipeline: Any, views: ViewRegistry) -> str:
    from monitor.acquisition import dropped_figure, signal_status

    state, acquisition, engine = pipeline.state, pipeline.acquisition, pipeline.engine
    signal_now = signal_status(acquisition)
    latency = state.latency_percentiles()
    timing = f"latency p50 {latency['p50_ms']:.1f} p99 {latency['p99_ms']:.1f} ms" if latency else "no decisions yet"
    recording = f"recording {state.recording}" if state.recording else "not recording"
    line = (f"core {state.stream_name}: {signal_now.phrase}, samples {acquisition.buffer.total_written} "
            f"{dropped_figure(engine.reader.dropped, signal_now)}, windows {state.windows_seen}, decisions "
            f"{state.decisions_published}, {timing}, {recording} | {views.describe()}")  # fmt: skip
    decomposition = getattr(pipeline, "decomposition", None)
    if decomposition is not None:  # --decompose with no view: the units are still said somewhere
        from monitor.decomposition_service import summary_line

        line += f" | motor units: {summary_line(decomposition)}"
    return line


def view_command(core_dir: Path, headless: bool, dashboard_on_stderr: bool = False) -> list[str]:
    command = [sys.executable, "-m", "monitor.cli", "view", "--core", str(core_dir), "--started-by-core"]
    if dashboard_on_stderr:  # the core's --jsonl - owns stdout
        command.append("--dashboard-on-stderr")
    return command + (["--headless"] if headless else [])


class ViewChild:
    """The view process this core started, kept alive: started again when it dies other than by the user closing
    it (exit 0) or hangs for ``HUNG_RESTART_S``, at most ``MAX_RESTARTS`` times a minute; after that, or after a
    user error, the status line says how to reattach by hand."""

    def __init__(self, command: list[str], views: ViewRegistry) -> None:
        self.command, self.views = command, views
        self.process: subprocess.Popen | None = None
        self.restarts: list[float] = []  # monotonic times of the restarts
        self.given_up = False

    def start(self) -> subprocess.Popen:
        self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL)
        lower_priority(self.process.pid)
        self.views.child = self.process
        return self.process

    def check(self, core_stalled: bool = False) -> str | None:
        """Called from the core's loop: "closed" when the user closed the view (the session ends), "restarted" or
        "given up" when it died or hung (the caller prints a status line), else None."""
        process = self.process
        if process is None or self.given_up:
            return None
        code = process.poll()
        # Ctrl-C reaches the whole foreground process group: a view that dies of it (still importing, say) was asked
        # to stop with the core, not crashed
        if code in (0, -signal.SIGINT):
            return "closed"
        if code is None:
            silent = self.views.silence_of(process.pid)
            if core_stalled or silent is None or silent < HUNG_RESTART_S:
                return None
            process.kill()  # hung: SIGKILL reaches a stopped process too
            process.wait()
            what = f"pid {process.pid} not answering for {silent:.0f} s, killed"
        else:
            what = f"pid {process.pid} exited with {code}"
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW_S]
        when = time.strftime("%H:%M:%S")
        if code == USER_ERROR_EXIT or len(self.restarts) >= MAX_RESTARTS:
            self.given_up = True
            why = "a user error" if code == USER_ERROR_EXIT else f"{MAX_RESTARTS} restarts in {RESTART_WINDOW_S:.0f} s"
            self.views.note = f"view gone ({what} at {when}; not restarted after {why}); reattach: neurofusion view"
            return "given up"
        self.restarts.append(now)
        self.start()
        self.views.note = f"view restarted ({what} at {when}; restart {len(self.restarts)})"
        return "restarted"

    def stop(self) -> None:
        """SIGTERM (after a starting view has said hello, so it can handle it), then SIGKILL after 5 s."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        deadline = time.monotonic() + VIEW_STARTUP_WAIT_S
        while self.views.silence_of(process.pid) is None and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        process.send_signal(signal.SIGCONT)  # a frozen view (SIGSTOP) gets its SIGTERM once it runs again
        try:
            process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
            fatigue = state.fatigue  # its state and, when not assessed, why (as the in-process dashboard writes)
        features = newest[1] if newest is not None else None
        for record in fresh:
            self.target.write(decision_line(record, features, usable, state.emg_channels, fatigue=fatigue) + "\n")
        if fresh:
            self.target.flush()


def serve_core(pipeline: Any, recording: Any, stop: threading.Event, *, view: str | None,
               duration_s: float | None = None, jsonl: IO[str] | None = None,
               adaptation: Any = None, on_ready: Any = None, decomposition: Any = None) -> int:  # fmt: skip
    """Runs the core until ``stop``, ``duration_s``, a refused stream, or its view closing normally.

    ``view``: None (no view: a recording station; views attach with ``neurofusion view``), "window" or "headless"
    (a view process started here). ``adaptation``: the session's AdaptationSession, stepped here and driven by an
    attached window's panel. ``decomposition``: the session's CoreDecomposition (monitor/decomposition_service.py),
    described to views and calibrated by them. Returns 0, or raises UserError for a stream the acquisition refused."""
    from monitor.errors import UserError

    views = ViewRegistry()
    running_cores()  # removes what cores killed before their cleanup left (folder, shared memory)
    folder = make_core_dir()
    publisher = StatePublisher(pipeline, views.describe, extra_status=extra_status(adaptation, decomposition))
    server = ControlServer(f"ipc://{folder / 'control'}",
                           core_handlers(pipeline, recording, views, adaptation, decomposition))  # fmt: skip
    lines = DecisionLines(pipeline, jsonl)
    child: ViewChild | None = None
    # a terminal dashboard shares the terminal with this status line: there, print it only when a view comes or goes
    quiet_status = view == "headless" and sys.stderr.isatty()
    try:
        publisher.start()
        server.start()
        write_description(folder, {"pid": os.getpid(), "shm": publisher.name_in_shm, "control": server.endpoint,
                                   "stream": pipeline.state.stream_name, "started": time.time()})  # fmt: skip
        print(f"monitor core running (pid {os.getpid()}); attach a view: neurofusion view --core {os.getpid()}",
              file=sys.stderr, flush=True)  # fmt: skip
        if view is not None:
            command = view_command(folder, view == "headless", dashboard_on_stderr=jsonl is sys.stdout)
            child = ViewChild(command, views)
            child.start()
        if on_ready is not None:
            on_ready(folder)
        deadline = None if duration_s is None else time.monotonic() + duration_s
        next_status = time.monotonic() + STATUS_EVERY_S
        last_turn = time.monotonic()
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            if pipeline.acquisition.incompatible:
                break
            lines.write_new()
            if adaptation is not None:
                adaptation.step()  # never blocks: fine-tuning runs in its own process
            now = time.monotonic()
            # this loop itself stopped (the whole process group suspended with Ctrl-Z, say): the view was not hung
            stalled, last_turn = now - last_turn > 2.0, now
            outcome = None if child is None else child.check(core_stalled=stalled)
            if outcome == "closed":
                break  # the user closed the window: the session ends, as it always has
            if outcome is not None:
                print(status_line(pipeline, views), file=sys.stderr, flush=True)
            if now >= next_status:
                next_status = now + STATUS_EVERY_S
                if not quiet_status:
                    print(status_line(pipeline, views), file=sys.stderr, flush=True)
            stop.wait(0.1)
        lines.write_new()
        print(status_line(pipeline, views), file=sys.stderr, flush=True)
    finally:
        if child is not None:
            child.stop()
        server.stop()
        publisher.stop()
        remove_core_dir(folder)
    if pipeline.acquisition.incompatible:
        raise UserError(pipeline.acquisition.incompatible)
    return 0
