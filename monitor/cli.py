"""`neurofusion`: one console entry point, one subcommand per function (see monitor/commands/)."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from monitor import __version__, commands
from monitor.errors import UserError
from monitor.lslenv import use_lsl_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neurofusion",
        description="Real-time EMG monitor: LSL in, causal DSP, NeuroFusionNet over ZeroMQ, live dashboard.",
    )
    parser.add_argument("--version", action="version", version=f"neurofusion {__version__}")
    parser.add_argument(
        "--lsl-config",
        metavar="FILE",
        help="liblsl config to use (default: $LSLAPICFG, else the shipped machine-local lsl_api.cfg)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debugging detail to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{module_info.name}")
        module.register(subparsers)
    return parser


def one_line(error: BaseException) -> str:
    """A library's multi-paragraph message (torch's unpickling advice, say) cut to its first line."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


class NoTracebackFormatter(logging.Formatter):
    """Log lines without the tracebacks libraries attach to what they recover from (pyxdf logs one at ERROR for
    each damaged chunk it skips): the exception's own line is kept; -v shows the whole traceback."""

    def format(self, record: logging.LogRecord) -> str:
        if not record.exc_info and not record.stack_info:
            return super().format(record)
        error = record.exc_info[1] if record.exc_info else None
        plain = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None, "stack_info": None})
        line = super().format(plain)
        return f"{line} ({type(error).__name__}: {one_line(error)})" if error is not None else line


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log_format = "%(asctime)s %(name)s %(levelname)s: %(message)s"
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format=log_format)
    if not args.verbose:
        for handler in logging.getLogger().handlers:
            handler.setFormatter(NoTracebackFormatter(log_format))
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        use_lsl_config(args.lsl_config)
        return int(args.handler(args) or 0)
    except UserError as error:
        print(f"neurofusion {args.command}: error: {one_line(error)}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # the user gets one line; -v shows the traceback for a bug report
        if args.verbose:
            raise
        print(f"neurofusion {args.command}: error: {type(error).__name__}: {one_line(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
