"""How far a recording's labels lead (or trail) the muscle activity they name.

Gesture recordings are labelled from the cue shown to the subject, and the muscle answers a reaction time later
(and relaxes a while after the cue returns to rest). For each change between rest and a gesture this finds when the
EMG envelope (100 ms RMS over all channels) crosses halfway between its rest level and the gesture's plateau, and
reports that moment relative to the label change. A causal classifier cannot be right about the windows in between,
which is why the evaluation also reports accuracy on windows away from label changes.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def envelope(filtered: np.ndarray, fs: float, width_s: float = 0.1) -> np.ndarray:
    """Centred moving RMS over all channels: (n, C) -> (n,)."""
    width = max(1, int(round(width_s * fs)))
    power = np.mean(np.square(filtered, dtype=np.float64), axis=1)
    return np.sqrt(np.convolve(power, np.ones(width) / width, mode="same"))


def activity_lags(
    filtered: np.ndarray, labels: np.ndarray, fs: float, rest_label: int = 0, search_s: float = 1.0,
    plateau_s: tuple[float, float] = (0.5, 1.5),
) -> tuple[np.ndarray, np.ndarray]:
    """-> (onset lags, offset lags) in seconds, one per rest->gesture and gesture->rest change (positive: the
    muscle moved after the label). A change is skipped when no half-level crossing lies within ``search_s``."""
    labels = np.asarray(labels)
    level = envelope(filtered, fs)
    rest_level = float(np.median(level[labels == rest_label])) if np.any(labels == rest_label) else 0.0
    search = int(round(search_s * fs))
    near, far = (int(round(t * fs)) for t in plateau_s)
    onsets, offsets = [], []
    for change in np.flatnonzero(np.diff(labels)) + 1:
        start, stop = max(0, change - search), min(len(labels), change + search)
        if labels[change] != rest_label and labels[change - 1] == rest_label:
            plateau = level[change + near : change + far]
            rising = True
        elif labels[change] == rest_label and labels[change - 1] != rest_label:
            plateau = level[max(0, change - far) : max(0, change - near)]
            rising = False
        else:
            continue
        if len(plateau) == 0:
            continue
        half = rest_level + 0.5 * (float(np.median(plateau)) - rest_level)
        segment = level[start:stop]
        crossed = np.flatnonzero(segment > half if rising else segment < half)
        if not rising:  # the envelope is below half before the gesture's start too: look only after the plateau
            crossed = crossed[start + crossed >= max(0, change - near)]
        if len(crossed):
            (onsets if rising else offsets).append((start + crossed[0] - change) / fs)
    return np.asarray(onsets), np.asarray(offsets)


def summarise_lags(onsets: np.ndarray, offsets: np.ndarray) -> dict[str, Any]:
    def percentiles(values: np.ndarray) -> dict[str, float] | None:
        if len(values) == 0:
            return None
        p10, p25, p50, p75, p90 = np.percentile(values, [10, 25, 50, 75, 90])
        return {"p10": round(p10, 3), "p25": round(p25, 3), "median": round(p50, 3), "p75": round(p75, 3),
                "p90": round(p90, 3), "n": int(len(values))}

    return {"onset_lag_s": percentiles(onsets), "offset_lag_s": percentiles(offsets)}
