"""Numbers as the views write them, one rule for the window and the terminal dashboard (no Qt here)."""

from __future__ import annotations

import math


def dash_number(value: float | None, fmt: str, suffix: str = "") -> str:
    """``value`` in ``fmt`` with ``suffix``; "—" where there is none (None or NaN: at rest, not assessed). A signed
    figure that rounds to nothing loses its minus: "-0 %" reads as a fall."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    text = format(value, fmt)
    if text.lstrip("+-").strip("0.") == "" and text[:1] in "+-":
        text = text[1:] if text[:1] == "-" else text
    return text + suffix
