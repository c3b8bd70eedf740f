"""`neurofusion worker`: serve NeuroFusionNet predictions over ZeroMQ."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run an inference worker (NeuroFusionNet over ZeroMQ)",
        description="Load a checkpoint and answer inference requests (docs/protocol.md). Binds 127.0.0.1 by "
        "default; another address needs CURVE keys (`neurofusion keys`) or --insecure. With --connect it joins "
        "a `neurofusion broker` instead, so many monitors share many workers.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--bind", metavar="ENDPOINT", help=f"bind for clients (default {DEFAULT_ENDPOINT}; "
                       "tcp://127.0.0.1:* picks a free port, printed on the READY line)")
    where.add_argument("--connect", metavar="ENDPOINT", help="connect to a broker's worker endpoint instead")
    parser.add_argument("--model", metavar="CHECKPOINT", help="model checkpoint (.pt; default: the bundled one)")
    parser.add_argument("--backend", choices=("auto", "onnx", "torch"), default="auto",
                        help="ONNX Runtime when an up-to-date export exists (auto), or force one")
    parser.add_argument("--threads", type=int, default=1, help="model threads per worker (default 1)")
    parser.add_argument("--max-batch", type=int, default=32, help="most windows run as one batch (default 32)")
    parser.add_argument("--batch-wait-ms", type=float, default=2.0,
                        help="how long to wait for more requests after the first before running (default 2)")
    parser.add_argument("--delay-ms", type=float, default=0.0,
                        help="diagnostic: add this much model time per window, to rehearse a slow worker (default 0)")
    parser.add_argument("--curve-secret", metavar="FILE", type=Path,
                        help="this worker's .key_secret: with --bind it makes a CURVE server (needs "
                        "--curve-clients); with --connect it is the client key for a secured broker")
    parser.add_argument("--curve-clients", metavar="DIR", type=Path,
                        help="directory of the client public keys (.key) allowed to connect")
    parser.add_argument("--server-key", metavar="FILE", type=Path,
                        help="with --connect: the secured broker's public .key")
    parser.add_argument("--insecure", action="store_true",
                        help="allow binding a non-loopback address without CURVE (prints a warning)")
    parser.add_argument("--models-dir", metavar="DIR", action="append", default=[],
                        help="a folder load_model may load checkpoints from, besides the bundled weights and "
                        "~/.neurofusion (repeatable)")
    parser.add_argument("--control-token", metavar="FILE", type=Path,
                        help="the file holding the token that load_model/use_model must carry when the worker is "
                        "not a CURVE server (default ~/.config/neurofusion/control.token, made on first use, "
                        "mode 600)")
    parser.add_argument("--standby", action="store_true",
                        help="load the model, print STANDBY, then wait for a line 'BIND' on stdin before serving "
                        "(the monitor keeps one such spare to replace a crashed worker at once)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from monitor.errors import UserError
    from monitor.inference.security import (
        ControlPolicy,
        CurveClientKeys,
        CurveServerKeys,
        check_bind_allowed,
        control_token,
    )
    from monitor.inference.supervisor import READY_PREFIX, STANDBY_PREFIX, exit_with_parent
    from monitor.inference.worker import WorkerSettings, serve, warm_up

    if args.max_batch < 1 or args.threads < 1 or args.batch_wait_ms < 0 or args.delay_ms < 0:
        raise UserError("--max-batch and --threads must be at least 1, --batch-wait-ms and --delay-ms not negative")
    curve_server = curve_client = None
    if args.connect:
        if bool(args.server_key) != bool(args.curve_secret):
            raise UserError("--connect to a secured broker needs both --server-key and --curve-secret")
        if args.server_key:
            curve_client = CurveClientKeys(args.server_key, args.curve_secret)
        endpoint = args.connect
    else:
        endpoint = args.bind or DEFAULT_ENDPOINT
        if bool(args.curve_secret) != bool(args.curve_clients):
            raise UserError("CURVE needs both --curve-secret and --curve-clients")
        if args.curve_secret:
            curve_server = CurveServerKeys(args.curve_secret, args.curve_clients)
        check_bind_allowed(endpoint, curve=curve_server is not None, insecure=args.insecure)

    # CURVE authenticates every peer of a secured worker; otherwise changing the model needs the user's token
    control = ControlPolicy.create(args.models_dir, None if curve_server else control_token(args.control_token))
    if args.model and not Path(args.model).is_file():  # say so before spending seconds importing torch
        raise UserError(f"cannot load the model: no checkpoint at {args.model}")
    import torch

    # models.predictor applies --threads to ONNX Runtime only; torch's default (all cores, spinning OpenMP threads)
    # makes several workers on a small machine slow each other down badly
    torch.set_num_threads(args.threads)
    from models.predictor import load_predictor

    try:
        predictor = load_predictor(args.model, backend=args.backend, threads=args.threads)
    except (FileNotFoundError, ValueError) as error:
        raise UserError(f"cannot load the model: {error}") from None
    warm_up(predictor)
    if args.standby:
        print(f"{STANDBY_PREFIX}{predictor.card.model_id}", flush=True)
        if sys.stdin.readline().strip() != "BIND":  # end of input: the monitor went away or dropped the spare
            return 0
    settings = WorkerSettings(endpoint=endpoint, connect=bool(args.connect), max_batch=args.max_batch,
                              batch_wait_s=args.batch_wait_ms / 1000.0, curve_server=curve_server,
                              curve_client=curve_client, delay_s=args.delay_ms / 1000.0, control=control)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    exit_with_parent(stop)

    def announce(bound: str) -> None:
        print(f"{READY_PREFIX}{bound} {predictor.card.model_id}", flush=True)

    import zmq

    try:
        counts = serve(predictor, settings, stop=stop, on_ready=announce)
    except zmq.ZMQError as error:
        raise UserError(f"cannot use {endpoint}: {error}") from None
    print(f"worker stopped: {dict(counts)}", flush=True)
    return 0
