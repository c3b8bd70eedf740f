"""`neurofusion broker`: share a pool of inference workers between many monitors."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "broker",
        help="load-balance inference requests from many monitors across many workers",
        description="Monitors connect to --frontend as they would to a worker; workers join with `neurofusion "
        "worker --connect BACKEND`. Each request goes to the least busy live worker; results are also published "
        "on --publish (PUB, topic = bed id). Binds 127.0.0.1 by default; other addresses need CURVE keys "
        "(`neurofusion keys`) or --insecure.",
    )
    parser.add_argument("--frontend", default="tcp://127.0.0.1:5555", metavar="ENDPOINT",
                        help="where monitors connect (default %(default)s)")
    parser.add_argument("--backend", default="tcp://127.0.0.1:5556", metavar="ENDPOINT",
                        help="where workers connect (default %(default)s)")
    parser.add_argument("--publish", metavar="ENDPOINT", help="also publish every result here (e.g. tcp://127.0.0.1:5557)")
    parser.add_argument("--queue-limit", type=int, default=1000, help="requests held while all workers are busy")
    parser.add_argument("--curve-secret", metavar="FILE", type=Path, help="the broker's .key_secret (CURVE server)")
    parser.add_argument("--curve-clients", metavar="DIR", type=Path,
                        help="directory of the public .key files of the monitors and workers allowed in")
    parser.add_argument("--insecure", action="store_true",
                        help="allow binding a non-loopback address without CURVE (prints a warning)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import zmq

    from monitor.errors import UserError
    from monitor.inference.broker import Broker, BrokerSettings
    from monitor.inference.security import CurveServerKeys, check_bind_allowed
    from monitor.inference.supervisor import READY_PREFIX

    if bool(args.curve_secret) != bool(args.curve_clients):
        raise UserError("CURVE needs both --curve-secret and --curve-clients")
    if args.queue_limit < 1:
        raise UserError("--queue-limit must be at least 1")
    curve = CurveServerKeys(args.curve_secret, args.curve_clients) if args.curve_secret else None
    endpoints = [args.frontend, args.backend] + ([args.publish] if args.publish else [])
    fixed = [endpoint for endpoint in endpoints if not endpoint.endswith("*")]  # "*" = any free port
    if len(set(fixed)) != len(fixed):
        raise UserError("--frontend, --backend and --publish must be different endpoints")
    for endpoint in endpoints:
        check_bind_allowed(endpoint, curve=curve is not None, insecure=args.insecure)
    settings = BrokerSettings(frontend=args.frontend, backend=args.backend, publish=args.publish,
                              queue_limit=args.queue_limit, curve_server=curve)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    broker = Broker(settings)
    try:
        counts = broker.run(stop, on_ready=lambda bound: print(f"{READY_PREFIX}{json.dumps(bound)}", flush=True))
    except zmq.ZMQError as error:
        raise UserError(f"cannot bind: {error}") from None
    print(f"broker stopped: {dict(counts)}", flush=True)
    return 0
