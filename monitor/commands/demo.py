"""`neurofusion demo`: the bundled simulated amplifier, a worker and the dashboard, in one command."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import signal
import subprocess
import sys
import threading
import uuid

from monitor.commands.monitor import add_session_arguments, check_session_arguments, session_options
from monitor.commands.simulate import add_rest_lead_in_argument, add_simulator_model_arguments, resolved_tissue

PR_SET_PDEATHSIG = 1  # prctl option, <linux/prctl.h>
NEEDLE_DEMO_FS = 10000.0  # a common needle EMG rate; the needle path resamples it to dsp.resample.NEEDLE_FS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the monitor on the bundled simulated amplifier",
        description="Start the simulated amplifier as an LSL outlet in its own process, an inference worker "
        "process over ZeroMQ and the monitor: a window where there is a display, else a live terminal dashboard.",
    )
    sim = parser.add_argument_group("simulated amplifier")
    sim.add_argument("--layout", help="ring8, grid8x8, grid13x5 or needle (default ring8; needle with --needle)")
    sim.add_argument("--fs", type=float, help="sampling rate in Hz (default 2048; a needle 10000)")
    # the amplifier's own choices, so a wrong one is refused as `neurofusion demo`'s, with demo's usage
    sim.add_argument("--condition", default="healthy", choices=("healthy", "myopathy", "neuropathy"))
    sim.add_argument("--profile", default="intermittent", choices=("rest", "ramp", "hold", "intermittent", "gestures"),
                     help="force profile of the simulated muscle (default intermittent)")
    sim.add_argument("--seed", type=int, default=7)
    add_simulator_model_arguments(sim)
    add_rest_lead_in_argument(sim)
    add_session_arguments(parser)
    parser.set_defaults(handler=run)


def simulator_arguments(args: argparse.Namespace, source_id: str) -> list[str]:
    """The `neurofusion simulate` arguments of the demo's amplifier."""
    resolve_needle(args)
    arguments = [
        "simulate",
        "--layout", args.layout, "--fs", str(args.fs), "--condition", args.condition, "--profile", args.profile,
        "--seed", str(args.seed), "--source-id", source_id, "--name", "NeuroFusion-Demo",
    ]  # fmt: skip
    arguments += ["--tissue", resolved_tissue(args), "--fatigue-model", args.fatigue_model]
    if args.severity is not None:
        arguments += ["--severity", args.severity]
    if args.rest_lead_in is not None:
        arguments += ["--rest-lead-in", str(args.rest_lead_in)]
    return arguments


def check_simulator_arguments(args: argparse.Namespace, source_id: str) -> None:
    """Raises UserError for a simulator setting the amplifier would refuse, before its process starts (else the
    demo could only say that it exited)."""
    from monitor.commands.simulate import build_config
    from monitor.commands.simulate import register as register_simulate

    parser = argparse.ArgumentParser(prog="neurofusion")
    register_simulate(parser.add_subparsers())
    build_config(parser.parse_args(simulator_arguments(args, source_id)))


def _end_with_parent() -> None:
    """In the amplifier's process before it runs: Linux sends it SIGTERM when the demo dies without its own
    cleanup (kill -9, a library calling abort()), so no amplifier outlives the demo that started it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_simulator(args: argparse.Namespace, source_id: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "monitor.cli", *simulator_arguments(args, source_id)]
    # started from the main thread, which lives as long as the demo: the parent-death signal follows that thread
    on_linux = sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread()
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, preexec_fn=_end_with_parent if on_linux else None)


def wait_for_simulator(simulator: subprocess.Popen, source_id: str, timeout_s: float = 120.0):
    """The simulator's stream, once it is up: it may take a while to start on a busy machine, but if it exits
    first there is no point waiting."""
    import time

    from monitor.acquisition import resolve_stream
    from monitor.errors import UserError

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return resolve_stream(source_id=source_id, timeout_s=2.0)
        except UserError:
            code = simulator.poll()
            if code is not None:
                raise UserError(f"the simulated amplifier exited with code {code} before streaming") from None
            if time.monotonic() > deadline:
                raise


def stop_process(process: subprocess.Popen, timeout_s: float = 5.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def resolve_needle(args: argparse.Namespace) -> None:
    """``--needle`` asks for a needle demo: one simulated needle channel at a needle rate, judged by the bundled
    needle model (a needle layout implies ``--needle``: high-pass only, the MUP panel)."""
    args.layout = args.layout or ("needle" if args.needle else "ring8")
    args.needle = args.needle or args.layout == "needle"
    if args.fs is None:  # not `or`: --fs 0 is the amplifier's to refuse, not a request for the default
        args.fs = NEEDLE_DEMO_FS if args.layout == "needle" else 2048.0


def run(args: argparse.Namespace) -> int:
    from monitor.session import run_session

    resolve_needle(args)
    source_id = f"neurofusion-demo-{uuid.uuid4().hex[:8]}"
    check_session_arguments(args)  # a bad view or DSP option is said before the amplifier starts
    check_simulator_arguments(args, source_id)
    simulator = start_simulator(args, source_id)
    try:
        info = wait_for_simulator(simulator, source_id)
        return run_session(info, session_options(args))
    finally:
        stop_process(simulator)
