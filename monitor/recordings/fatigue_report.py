"""The fatigue part of an analysis report: the per-contraction table and the fatigue figure.

The figure draws what the live fatigue view (monitor/gui/fatigue.py) draws, for the whole recording at once: MDF
and MNF bright during contractions and dim at rest, each contraction shaded, its fitted MDF line dashed red, and the
fatigue states in the live badge's colours (each contraction's state, and the live tracker's state window by
window in a strip below).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# the live badge's colours (monitor/gui/fatigue.py STATE_COLOURS; importing it would load Qt into `analyze`)
STATE_COLOURS = {"fresh": (60, 170, 90), "fatiguing": (230, 160, 40), "fatigued": (210, 60, 60)}
UNJUDGED_COLOUR = (110, 110, 110)
TREND_COLOUR = (255 / 255, 90 / 255, 90 / 255)


def _rgb(colour: tuple[int, int, int]) -> tuple[float, ...]:
    return tuple(channel / 255 for channel in colour)


def _number(value: Any, digits: int = 1, unit: str = "", signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:{'+' if signed else ''}.{digits}f}{unit}"


def contractions_markdown(fatigue: dict[str, Any]) -> str:
    """The per-contraction table (or why there is none) for report.md."""
    from dsp.fatigue import FatigueSettings

    min_trend_s = FatigueSettings().min_trend_s  # the engine's tracker runs with the default settings
    contractions = fatigue.get("contractions") or []
    source = fatigue.get("contraction_source") or "activity"
    where = {"activity": "where the muscle rose above the rest level learned from the first seconds",
             "whole recording": "the whole analysed part taken as one contraction (--whole-contraction)",
             "given spans": "the spans given with --contraction"}.get(source, source)  # fmt: skip
    lines = ["## Fatigue per contraction", "", f"Contractions: {where}.", ""]
    if fatigue.get("note"):
        lines += [f"**Note:** {fatigue['note']}.", ""]
    if not contractions:
        lines += ["" if fatigue.get("note") else "No span held enough windows for a trend.", ""]
        return "\n".join(lines)
    lines += [
        "| # | start | end | duration | MDF slope | MDF slope (95 % CI) | MDF change | MNF slope | RMS change | "
        "FInsm5 change | state |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in contractions:
        low, high = c["mdf_slope_ci_pct_per_min"] or (None, None)
        lines.append(
            f"| {c['index'] + 1} | {c['start_s']:.1f} s | {c['end_s']:.1f} s | {c['duration_s']:.1f} s | "
            f"{_number(c['mdf_slope_hz_per_min'], 2, ' Hz/min', True)} | "
            f"{_number(c['mdf_slope_pct_per_min'], 1, ' %/min', True)} ({_number(low, 1)} to {_number(high, 1)}) | "
            f"{_number(c['mdf_change_pct'], 1, ' %', True)} | "
            f"{_number(c['mnf_slope_hz_per_min'], 2, ' Hz/min', True)} | "
            f"{_number(c['rms_change_pct'], 1, ' %', True)} | {_number(c['fins_change_pct'], 1, ' %', True)} | "
            f"{c['state'] or f'too short to judge (< {min_trend_s:g} s)'} |"
        )
    lines += ["", "Slopes: least-squares line through every window's MDF/MNF (median over usable channels) of the "
              "contraction, in % of the line's value at its start; change along that line from start to end; RMS "
              "and FInsm5 change: median of the last 4 s against the first. State: the live rule (docs/dsp.md).", ""]
    return "\n".join(lines)


def fatigue_figure(analysis: Any, path: Any, plt: Any) -> Any:
    """fatigue.png: spectral indices with each contraction's trend line and state, RMS, and the live states."""
    windows = analysis.windows
    times = np.array([w.time_s for w in windows])
    active = np.array([w.contracting for w in windows], dtype=bool)
    inside = np.zeros(len(windows), dtype=bool)
    for c in analysis.contractions:
        inside |= (times > c.start_s) & (times <= c.end_s)
    bright = active | inside
    figure, (spectral, amplitude, states) = plt.subplots(
        3, 1, figsize=(10, 5.4), sharex=True, gridspec_kw={"height_ratios": [3, 2, 0.45]})
    for name, attribute, colour in (("MNF", "mnf_hz", (255, 200, 60)), ("MDF", "mdf_hz", (120, 180, 255))):
        values = np.array([getattr(w, attribute) for w in windows], dtype=float)
        spectral.plot(times, np.where(bright, np.nan, values), color=_rgb(colour), alpha=0.3, linewidth=0.6)
        spectral.plot(times, np.where(bright, values, np.nan), color=_rgb(colour), linewidth=0.9, label=name)
    for c in analysis.contractions:
        colour = _rgb(STATE_COLOURS.get(c.state or "", UNJUDGED_COLOUR))
        for axis in (spectral, amplitude):
            axis.axvspan(c.start_s, c.end_s, color=colour, alpha=0.12, linewidth=0)
        ends = np.array([c.start_s, c.end_s])
        spectral.plot(ends, c.mdf_start_hz + c.mdf_slope_hz_per_min * (ends - c.start_s) / 60.0, "--",
                      color=TREND_COLOUR, linewidth=1.8, label="MDF trend" if c.index == 0 else None)
        # a contraction whose trend was not assessed has no slope: say why instead of "+nan %/min"
        slope = (f"{c.mdf_slope_pct_per_min:+.1f} %/min" if np.isfinite(c.mdf_slope_pct_per_min)
                 else "no trend")  # fmt: skip
        spectral.annotate(f"{c.state or 'too short'}\n{slope}",
                          xy=(0.5 * (c.start_s + c.end_s), 1.0), xycoords=("data", "axes fraction"),
                          ha="center", va="top", fontsize=7, color=colour)  # fmt: skip
    spectral.set_ylabel("Hz (median over channels)")
    spectral.legend(fontsize=7, loc="lower left")
    spectral.set_title(f"fatigue per contraction ({analysis.contraction_source or 'activity'})")
    amplitude.plot(times, [w.rms_uv for w in windows], linewidth=0.8, color="0.4")
    amplitude.set_ylabel("RMS µV")
    # the live tracker's state at each window, in the badge's colours
    codes = {name: index for index, name in enumerate(STATE_COLOURS)}
    strip = np.array([codes.get(w.fatigue_state, -1) for w in windows], dtype=float)[np.newaxis, :]
    from matplotlib.colors import ListedColormap

    palette = ListedColormap([_rgb(colour) for colour in STATE_COLOURS.values()])
    if len(times):
        states.imshow(np.ma.masked_less(strip, 0), aspect="auto", cmap=palette, vmin=-0.5,
                      vmax=len(STATE_COLOURS) - 0.5, extent=(times[0], times[-1], 0, 1), interpolation="nearest")
    states.set_yticks([])
    states.set_ylabel("live", rotation=0, ha="right", va="center", fontsize=8)
    states.set_xlabel("seconds  (state colours: " + ", ".join(STATE_COLOURS) + ")")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
