"""`neurofusion keys`: make a CURVE key pair for a worker, broker or monitor."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "keys",
        help="make a CURVE key pair (for workers and brokers bound beyond 127.0.0.1)",
        description="Writes NAME.key (public: give it to the other side) and NAME.key_secret (private, mode 600) "
        "into DIRECTORY. A secured worker or broker takes its own .key_secret with --curve-secret and a "
        "directory holding the .key files of everyone allowed to connect with --curve-clients.",
    )
    parser.add_argument("directory", type=Path, help="where to write the key files")
    parser.add_argument("--name", default="neurofusion", help="file name stem (default %(default)s)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from monitor.inference.security import make_key_pair

    public, secret = make_key_pair(args.directory, args.name)
    print(f"public key (share it): {public}")
    print(f"secret key (keep it):  {secret}")
    return 0
