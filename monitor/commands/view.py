"""`neurofusion view`: attach the window (or the terminal dashboard) to a running monitor core."""

from __future__ import annotations

import argparse


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
    parser.add_argument("--started-by-core", action="store_true", help=argparse.SUPPRESS)
    # the core that started this view writes --jsonl - to stdout: the dashboard then goes to stderr
    parser.add_argument("--dashboard-on-stderr", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import threading

    from monitor.core.control import find_core
    from monitor.core.shared_state import LayoutError
    from monitor.errors import UserError
    from monitor.session import has_display, stop_on_signals
    from monitor.view_client import RemotePipeline

    stop = threading.Event()
    # before attaching: the core that started this view may end the session (SIGTERM) as soon as it said hello, and
    # the dashboard must then print its last table rather than die by the default handler (the window has its own)
    stop_on_signals(stop)
    core = find_core(args.core)
    window = args.window or (not args.headless and has_display())
    try:
        remote = RemotePipeline.attach(core, kind="window" if window else "headless").start()
    except LayoutError as error:
        raise UserError(str(error)) from None
    try:
        if window:
            if stop.is_set():  # the core ended the session while this window was attaching: open none
                return 0
            from monitor.gui.app import run_window

            return run_window(remote, duration_s=args.duration, on_recording=remote.toggle_recording,
                              on_marker=remote.annotate, adaptation=remote.adaptation)  # fmt: skip
        from rich.console import Console

        from monitor.headless import HeadlessDashboard

        console = Console(stderr=True) if args.dashboard_on_stderr else None
        # a stop already set still prints the dashboard's last table once
        HeadlessDashboard(remote, console=console).run(args.duration, stop)
        if remote.core_ended and not args.started_by_core:
            raise UserError(remote.core_ended)
        return 0
    finally:
        remote.stop()
