"""Offline fatigue figures per contraction: where each contraction of a recording lies and how its spectrum fell.

The live tracker (dsp/fatigue.py) follows the current contraction only. Offline the whole recording is known, so
each contraction gets its own figures: a least-squares line through its per-window MDF and MNF (windows, not
epochs: offline there is no hurry; by the live rule, ``dsp.fatigue.line_windows``, only those from ``settle_s`` on at
the steady baseline's force, and none, "not assessed", where the baseline or the present stretch is not steady or
at the same force), its slope in Hz/min and in % of the line's value at the contraction's start per
minute with a 95 % interval, the change along the line, and the RMS and FInsm5 change by the live rule
(``dsp.fatigue.stretch_change_pct``: median of the last ``baseline_s`` against the first steady ``baseline_s`` after
``settle_s``, at the same force, else NaN: not assessed). The state is the live rule (``dsp.fatigue.classify``)
applied to those figures.

Contractions come from one of three places:

- *activity* (default): runs of windows in which the live tracker saw an electrode contracting (RMS above
  ``activity_ratio`` x the rest level it learned), joined across pauses up to ``max_pause_s``;
- *whole recording* (``analyze --whole-contraction``): the analysed part is one contraction, for recordings that
  are one continuous hold with no rest to learn a rest level from;
- *given spans* (``analyze --contraction START-END``): seconds from the analysed part's first sample.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from dsp.fatigue import FatigueSettings, classify, line_windows, stretch_change_pct

SOURCE_ACTIVITY = "activity"
SOURCE_WHOLE = "whole recording"
SOURCE_GIVEN = "given spans"
MIN_WINDOWS = 10  # fewer windows give no line worth a slope
# the windows this close to an activity-found contraction's edges mix rest with the force rising or falling: on
# simulated 10 s holds keeping them doubled the MDF slope (-109 against -57 Hz/min true)
EDGE_S = 0.5


@dataclass
class ContractionFigures:
    index: int
    start_s: float  # the first window's first sample, seconds from the recording's first sample
    end_s: float  # the last window's last sample
    duration_s: float
    windows: int
    mdf_start_hz: float  # the fitted line at start_s (windows placed at their centres)
    mdf_slope_hz_per_min: float
    mdf_slope_pct_per_min: float
    mdf_slope_ci_pct_per_min: tuple[float, float]
    mdf_change_pct: float  # along the fitted line, start_s to end_s
    mnf_start_hz: float
    mnf_slope_hz_per_min: float
    mnf_slope_pct_per_min: float
    mnf_change_pct: float
    rms_change_pct: float
    fins_change_pct: float
    # the live rule; None when shorter than the rule's min_trend_s; "not assessed" where no line was fitted (no
    # steady baseline, or the present stretch unsteady or at another force)
    state: str | None

    def to_dict(self) -> dict[str, Any]:
        return {key: (None if isinstance(value, float) and not math.isfinite(value) else value)
                for key, value in asdict(self).items()}  # fmt: skip


def activity_spans(times: np.ndarray, active: np.ndarray, window_s: float, max_pause_s: float) -> list[tuple]:
    """(start_s, end_s) of each run of active windows (window end times ``times``), runs closer than
    ``max_pause_s`` joined, less ``EDGE_S`` at either end; a run starts where its first window began."""
    spans: list[list[float]] = []
    for run in np.split(np.arange(len(times)), np.flatnonzero(np.diff(active.astype(np.int8))) + 1):
        if len(run) == 0 or not active[run[0]]:
            continue
        start, end = float(times[run[0]]) - window_s, float(times[run[-1]])
        if spans and start - spans[-1][1] <= max_pause_s:
            spans[-1][1] = end
        else:
            spans.append([start, end])
    return [(start + EDGE_S, end - EDGE_S) for start, end in spans if end - start > 2 * EDGE_S]


def no_rest_note(rms: np.ndarray, found: bool, settings: FatigueSettings | None = None) -> str | None:
    """Why the activity-found contractions may be wrong, when the recording seems to hold no rest; else None.

    A recording with rest and contraction spans a wide range of RMS (contraction is ``activity_ratio`` x rest or
    more). When its loudest windows (95th percentile) are less than ``activity_ratio`` x its quietest (5th), there
    is no rest in it to learn a rest level from: it is all rest, or one continuous contraction of which the live
    rule finds parts at best."""
    settings = settings or FatigueSettings()
    finite = rms[np.isfinite(rms) & (rms > 0)]
    hint = ("if the recording is one continuous contraction, analyse it with --whole-contraction (or name its "
            "contractions with --contraction START-END)")
    if len(finite) < MIN_WINDOWS:
        return None
    contrast = float(np.percentile(finite, 95) / np.percentile(finite, 5))
    if contrast < settings.activity_ratio:
        partial = (" and the contractions below are parts of it (its first seconds, while a rest level was "
                   "learned, are missing at least)") if found else ""  # fmt: skip
        return (f"no rest found: the loudest windows are only {contrast:.1f}x the quietest (rest to contraction is "
                f"{settings.activity_ratio:g}x or more), so the recording is one level of activity throughout"
                f"{partial}; {hint}")
    if not found:
        return f"no contraction found against the rest level learned from the first seconds; {hint}"
    return None


def _line(times_min: np.ndarray, values: np.ndarray) -> tuple[float, float, float, float]:
    """(value at 0, slope per minute, slope's 95 % interval low, high) of the least-squares line."""
    from scipy.stats import linregress, t

    if len(values) < 3 or np.ptp(times_min) <= 0:
        return math.nan, math.nan, math.nan, math.nan
    fit = linregress(times_min, values)
    half = float(t.ppf(0.975, len(values) - 2) * fit.stderr)
    return float(fit.intercept), float(fit.slope), float(fit.slope) - half, float(fit.slope) + half


def contraction_figures(
    times: np.ndarray, window_s: float, columns: dict[str, np.ndarray], spans: list[tuple[float, float]],
    settings: FatigueSettings | None = None,
) -> list[ContractionFigures]:
    """Figures of each span that holds at least MIN_WINDOWS windows with a finite MDF.

    ``times`` are the windows' last-sample times (s), ``columns`` their MDF, MNF, RMS and FInsm5 (median over
    usable channels). A window counts when it lies entirely inside the span."""
    settings = settings or FatigueSettings()
    found = []
    for start_s, end_s in spans:
        inside = (times - window_s >= start_s - 1e-9) & (times <= end_s + 1e-9) & np.isfinite(columns["MDF"])
        if inside.sum() < MIN_WINDOWS:
            continue
        t = times[inside]
        first, last = float(t[0] - window_s), float(t[-1])
        duration = last - first
        minutes = (t - window_s / 2 - first) / 60.0  # each window at its centre, 0 at the contraction's start
        # the live rule's stretches (settle_s skipped, then baseline_s), shortened to fit a short contraction
        edge = min(settings.baseline_s, (duration - settings.settle_s) / 3.0)
        since_start = t - first
        # the line only through the windows the live tracker's line takes (settle_s skipped, at the steady
        # baseline's force), and none where it would not assess (a force ramp: no steady baseline, or the present
        # at another force): a line through every window of a ramp gave a "fatiguing" MDF slope of the force
        at_force = line_windows(columns["RMS"][inside], since_start, settings, edge)
        figures: dict[str, tuple[float, ...]] = {}
        for name in ("MDF", "MNF"):
            values = columns[name][inside]
            keep = np.isfinite(values) & (at_force if at_force is not None else False)
            at_start, slope, low, high = _line(minutes[keep], values[keep]) if keep.sum() >= MIN_WINDOWS else (
                math.nan, math.nan, math.nan, math.nan)  # fmt: skip
            figures[name] = (at_start, slope, 100 * slope / at_start, 100 * slope * duration / 60.0 / at_start,
                             100 * low / at_start, 100 * high / at_start)  # fmt: skip
        mdf = figures["MDF"]
        state = classify(mdf[3], mdf[2], mdf[5], settings, duration) if duration >= settings.min_trend_s else None
        found.append(ContractionFigures(
            index=len(found), start_s=first, end_s=last, duration_s=duration,
            windows=int(inside.sum()), mdf_start_hz=mdf[0], mdf_slope_hz_per_min=mdf[1], mdf_slope_pct_per_min=mdf[2],
            mdf_slope_ci_pct_per_min=(mdf[4], mdf[5]), mdf_change_pct=float(mdf[3]), mnf_start_hz=figures["MNF"][0],
            mnf_slope_hz_per_min=figures["MNF"][1], mnf_slope_pct_per_min=figures["MNF"][2],
            mnf_change_pct=float(figures["MNF"][3]),
            rms_change_pct=stretch_change_pct(columns["RMS"][inside], columns["RMS"][inside], since_start, settings,
                                              edge),
            fins_change_pct=stretch_change_pct(columns["FInsm5"][inside], columns["RMS"][inside], since_start,
                                               settings, edge), state=state,
        ))  # fmt: skip
    return found
