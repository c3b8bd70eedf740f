"""Command-line options that tell a reader what a file does not say (shared by replay and analyze)."""

from __future__ import annotations

import argparse
import math
from typing import Any

READER_OPTION_NAMES = (
    "stream",
    "channels",
    "fs",
    "label_column",
    "time_column",
    "header",
    "delimiter",
    "scale",
    "units",
    "layout",
    "preset",
    "annotation",
)


def add_reader_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("reading the file (only where the file does not say; see docs/formats.md)")
    group.add_argument("--stream", help="XDF: the EMG stream's name or type (default: the only EMG stream)")
    group.add_argument("--channels", help="channels to use: comma-separated names or 0-based indices")
    group.add_argument("--fs", type=float, help="sampling rate in Hz (CSV/TSV without a time column; XDF irregular)")
    group.add_argument("--label-column", help="CSV/TSV: column (index or header name) holding per-sample labels")
    group.add_argument("--time-column", help="CSV/TSV: column holding time in seconds (gives the rate)")
    group.add_argument(
        "--header", action=argparse.BooleanOptionalAction, default=None, help="CSV/TSV: first row is a header"
    )
    group.add_argument("--delimiter", help="CSV/TSV: column delimiter (default: by extension, else sniffed)")
    group.add_argument("--scale", type=float, help="microvolts per file unit (for values not in volts)")
    group.add_argument("--units", help="CSV/TSV: unit of the values, e.g. mV (default microvolts)")
    group.add_argument("--layout", help="electrode layout name: ring8, grid8x8, grid13x5, needle, ringN, gridRxC")
    group.add_argument("--preset", help="CSV/TSV: a named set of the options above (myo: Myo armband files)")
    group.add_argument("--annotation", help="WFDB: annotation file extension (default atr when present)")


def check_reader_options(args: argparse.Namespace) -> None:
    """Refuses, in one line, a --fs or --scale no reader could use (0, negative, nan or inf), before any file is
    read: a reader given --fs 0 would otherwise divide by it first and warn before it errs."""
    from monitor.errors import UserError

    fs = getattr(args, "fs", None)
    if fs is not None and not (math.isfinite(fs) and fs > 0):
        raise UserError(f"--fs must be a positive sampling rate in Hz, not {fs:g}")
    scale = getattr(args, "scale", None)
    if scale is not None and not (math.isfinite(scale) and scale != 0):
        raise UserError(f"--scale must be a finite, non-zero number of microvolts per file unit, not {scale:g}")


def reader_options(args: argparse.Namespace) -> dict[str, Any]:
    """The reader options the user gave (None for the rest, which the readers ignore), checked."""
    check_reader_options(args)
    return {name: getattr(args, name, None) for name in READER_OPTION_NAMES}
