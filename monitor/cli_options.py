"""Command-line options that several commands share, defined once so that the commands accept the same values."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

# the notch's frequencies: the two mains frequencies in use worldwide, or 0 for no notch. `analyze` used to take any
# number (55 ran a 55 Hz notch that removes nothing) while `monitor` refused all but these.
MAINS_CHOICES_HZ = (0.0, 50.0, 60.0)


class _MainsFrequency(argparse.Action):
    """Stores --mains as a float; any other value is refused in one line (no usage block), exit code 2."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        try:
            hz = float(str(values))
        except ValueError:
            hz = float("nan")
        if hz not in MAINS_CHOICES_HZ:
            parser.exit(2, f"{parser.prog}: error: {option_string} {values}: the mains frequency to notch is 50 or "
                        "60 Hz, or 0 for no notch\n")
        setattr(namespace, self.dest, hz)


def add_mains_argument(group: argparse._ActionsContainer) -> None:
    """--mains HZ: 0, 50 (default) or 60, as `monitor` and `analyze` take it."""
    group.add_argument("--mains", action=_MainsFrequency, default=50.0, metavar="{0,50,60}",
                       help="mains frequency to notch: 50 or 60 Hz, 0 for none (default 50)")


def check_start_end(args: argparse.Namespace) -> None:
    """--start/--end as `replay` and `analyze` take them: seconds into the recording, or absent. A nan or inf was a
    ValueError from an integer sample index: refused in one line."""
    import math

    from monitor.errors import UserError

    for option, value in (("--start", args.start), ("--end", args.end)):
        if value is not None and not math.isfinite(value):
            raise UserError(f"{option} must be a number of seconds into the recording, not {value:g}")
