"""`neurofusion view`: attach the window (or the terminal dashboard) to a running monitor core."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "view",
        help="attach a window or terminal dashboard to a running monitor core",
        description="Attach the dashboard to a monitor core started by `neurofusion monitor --no-view` (or by "
        "`monitor`/`demo`). The view reads the core's shared memory and sends markers, recording and filter "
        "changes over its control channel; closing, killing or freezing the view costs the core nothing.",
    )
    parser.add_argument("--core", metavar="PID|DIR|STREAM", help="which core, when several run (default: the only one)")
    parser.add_argument("--headless", action="store_true", help="terminal dashboard even when a display exists")
    parser.add_argument("--window", action="store_true", help="the Qt window even without a display (offscreen)")
    parser.add_argument("--duration", type=float, metavar="S", help="close the view after S seconds")
    parser.add_argument("--exit-with-core", action="store_true",
                        help="end when the core ends (default: wait for a core on the same stream and reattach)")
    parser.add_argument("--started-by-core", action="store_true", help=argparse.SUPPRESS)
    # the core that started this view writes --jsonl - to stdout: the dashboard then goes to stderr
    parser.add_argument("--dashboard-on-stderr", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(handler=run)


RECONNECT_POLL_S = 0.5  # how often a view whose core ended looks for the core's return


def run(args: argparse.Namespace) -> int:
    """Attach, show; a view started by hand (not by the core) whose core ends waits for a core on the same stream
    and attaches to it, until Ctrl-C, ``--duration`` or ``--exit-with-core``."""
    import math
    import sys
    import threading
    import time

    from monitor.core.control import find_core
    from monitor.errors import UserError
    from monitor.session import has_display, stop_on_signals

    if args.duration is not None and not (math.isfinite(args.duration) and args.duration > 0):
        raise UserError(f"--duration must be a positive number of seconds, not {args.duration:g}")
    stop = threading.Event()
    # before attaching: the core that started this view may end the session (SIGTERM) as soon as it said hello, and
    # the dashboard must then print its last table rather than die by the default handler (the window has its own)
    stop_on_signals(stop)
    core = find_core(args.core)
    window = args.window or (not args.headless and has_display())
    deadline = None if args.duration is None else time.monotonic() + args.duration
    # the core's own views end with it (it starts them again); a view the user started outlives it
    reconnect = not args.started_by_core and not args.exit_with_core
    while True:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        ended, successor = _show(core, args, window, stop, remaining, reconnect)
        if ended is None:
            return 0
        if not reconnect:
            if args.started_by_core:
                return 0
            raise UserError(ended)
        if successor is None:
            print(f"neurofusion view: {ended}; waiting for a core on stream {core.get('stream')!r} to come back "
                  "(Ctrl-C to stop)", file=sys.stderr, flush=True)  # fmt: skip
            successor = _wait_for_successor(core, stop, deadline)
        if successor is None:  # Ctrl-C or --duration while no core ran: the end the user asked for
            print("neurofusion view: no core came back; view closed", file=sys.stderr, flush=True)
            return 0
        print(f"neurofusion view: reattached to the monitor core (pid {successor['pid']})", file=sys.stderr,
              flush=True)  # fmt: skip
        core = successor


def _wait_for_successor(core: dict[str, Any], stop: Any, deadline: float | None) -> dict[str, Any] | None:
    import time

    from monitor.core.control import running_cores

    while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
        for candidate in running_cores():
            if candidate.get("stream") == core.get("stream") and candidate.get("shm") != core.get("shm"):
                return candidate
        stop.wait(RECONNECT_POLL_S)
    return None


def _show(core: dict[str, Any], args: argparse.Namespace, window: bool, stop: Any, duration_s: float | None,
          reconnect: bool) -> tuple[str | None, dict[str, Any] | None]:
    """One attachment: (why the core ended, or None when the view ended for another reason; the core that took
    its place, when the window already found one)."""
    from monitor.core.shared_state import LayoutError
    from monitor.errors import UserError
    from monitor.view_client import RemotePipeline

    try:
        remote = RemotePipeline.attach(core, kind="window" if window else "headless").start()
    except LayoutError as error:
        raise UserError(str(error)) from None
    try:
        if window:
            if stop.is_set():  # the core ended the session while this window was attaching: open none
                return None, None
            return _show_window(remote, duration_s, reconnect, stop)
        from rich.console import Console

        from monitor.headless import HeadlessDashboard

        console = Console(stderr=True) if args.dashboard_on_stderr else None
        # a stop already set still prints the dashboard's last table once
        HeadlessDashboard(remote, console=console).run(duration_s, stop)
        return (remote.core_ended if not stop.is_set() else None), None
    finally:
        remote.stop()


def _show_window(remote: Any, duration_s: float | None, reconnect: bool,
                 stop: Any) -> tuple[str | None, dict[str, Any] | None]:
    """The window stays open on a core that ended (its banner says so) while a timer in the Qt thread looks for
    the core's return; once one runs, this window closes and the caller opens a new one on it. The same timer
    closes the window on a Ctrl-C/SIGTERM that came while it was being built (before its own handler was set)."""
    from PyQt6 import QtCore, QtWidgets

    from monitor.errors import UserError
    from monitor.gui.app import _application, run_window

    found: dict[str, Any] = {}

    def close_windows() -> None:
        for widget in QtWidgets.QApplication.topLevelWidgets():
            if type(widget).__name__ == "MainWindow":
                widget.close()

    def look_for_successor() -> None:
        if stop.is_set():
            close_windows()
        if not reconnect or remote.core_ended is None or found:
            return
        successor = remote.find_successor()
        if successor is not None:
            found.update(successor)
            close_windows()

    app = _application()  # the timer needs the application run_window uses, kept alive here (else Qt destroys it)
    watcher = QtCore.QTimer(app)
    watcher.timeout.connect(look_for_successor)
    watcher.start(int(RECONNECT_POLL_S * 1000))
    try:
        run_window(remote, duration_s=duration_s, on_recording=remote.toggle_recording, on_marker=remote.annotate,
                   adaptation=remote.adaptation)  # fmt: skip
    except UserError:  # the core ended: unless its successor closed the window, the user did, and the view ends
        if not found:
            raise
    finally:
        watcher.stop()
    return (remote.core_ended, found) if found else (None, None)
