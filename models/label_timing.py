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


def half_level_crossing(level: np.ndarray, start: int, stop: int, rest_level: float, active_level: float,
                        rising: bool) -> int | None:
    """The first sample in [start, stop) where ``level`` crosses halfway between ``rest_level`` and
    ``active_level`` (upward when ``rising``, else downward); None when it does not."""
    half = rest_level + 0.5 * (active_level - rest_level)
    segment = level[start:stop]
    crossed = np.flatnonzero(segment > half if rising else segment < half)
    return int(start + crossed[0]) if len(crossed) else None


def label_changes(
    filtered: np.ndarray, labels: np.ndarray, fs: float, rest_label: int = 0, search_s: float = 1.0,
    plateau_s: tuple[float, float] = (0.5, 1.5),
) -> list[tuple[int, int | None]]:
    """-> (label change sample, muscle change sample or None) for every rest->gesture and gesture->rest change, the
    muscle change being where the envelope crosses halfway between rest and the gesture's plateau within
    ``search_s`` of the label change (None when it does not)."""
    labels = np.asarray(labels)
    level = envelope(filtered, fs)
    rest_level = float(np.median(level[labels == rest_label])) if np.any(labels == rest_label) else 0.0
    search = int(round(search_s * fs))
    near, far = (int(round(t * fs)) for t in plateau_s)
    found: list[tuple[int, int | None]] = []
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
            found.append((int(change), None))
            continue
        if not rising:  # the envelope is below half before the gesture's start too: look only after the plateau
            start = max(start, change - near)
        found.append((int(change), half_level_crossing(level, start, stop, rest_level, float(np.median(plateau)),
                                                       rising)))
    return found


def activity_lags(
    filtered: np.ndarray, labels: np.ndarray, fs: float, rest_label: int = 0, search_s: float = 1.0,
    plateau_s: tuple[float, float] = (0.5, 1.5),
) -> tuple[np.ndarray, np.ndarray]:
    """-> (onset lags, offset lags) in seconds, one per rest->gesture and gesture->rest change (positive: the
    muscle moved after the label). A change is skipped when no half-level crossing lies within ``search_s``."""
    labels = np.asarray(labels)
    return lags_of(label_changes(filtered, labels, fs, rest_label, search_s, plateau_s), labels, fs, rest_label)


def lags_of(
    changes: list[tuple[int, int | None]], labels: np.ndarray, fs: float, rest_label: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(onset lags, offset lags) in seconds of the changes ``label_changes`` found a muscle change for."""
    onsets, offsets = [], []
    for change, muscle in changes:
        if muscle is not None:
            (onsets if labels[change] != rest_label else offsets).append((muscle - change) / fs)
    return np.asarray(onsets), np.asarray(offsets)


def muscle_timed_labels(
    filtered: np.ndarray, labels: np.ndarray, fs: float, rest_label: int = 0,
    fallback_lag_s: tuple[float, float] | None = None,
) -> np.ndarray:
    """``labels`` with every rest<->gesture change moved to where the muscle made it. A change whose crossing is
    not found moves by ``fallback_lag_s`` (onset, offset; default: the median of the changes that were found),
    so one unclear change does not leave a cue-timed edge among muscle-timed ones."""
    labels = np.asarray(labels)
    changes = label_changes(filtered, labels, fs, rest_label)
    onsets, offsets = lags_of(changes, labels, fs, rest_label)
    if fallback_lag_s is None:
        fallback_lag_s = (float(np.median(onsets)) if len(onsets) else 0.0,
                          float(np.median(offsets)) if len(offsets) else 0.0)
    moved = labels.copy()
    every_change = np.concatenate([[0], np.flatnonzero(np.diff(labels)) + 1, [len(labels)]])
    for change, muscle in changes:
        rising = labels[change] != rest_label
        if muscle is None:
            muscle = change + int(round((fallback_lag_s[0] if rising else fallback_lag_s[1]) * fs))
        # never past the neighbouring label changes: a short run keeps at least its own label somewhere
        position = int(np.searchsorted(every_change, change))
        muscle = int(np.clip(muscle, every_change[position - 1] + 1, every_change[position + 1] - 1))
        # the run before the change extends to the muscle change, or the new label starts early (negative lag)
        if muscle > change:
            moved[change:muscle] = labels[change - 1]
        elif muscle < change:
            moved[muscle:change] = labels[change]
    return moved


def summarise_lags(onsets: np.ndarray, offsets: np.ndarray) -> dict[str, Any]:
    def percentiles(values: np.ndarray) -> dict[str, float] | None:
        if len(values) == 0:
            return None
        p10, p25, p50, p75, p90 = np.percentile(values, [10, 25, 50, 75, 90])
        return {"p10": round(p10, 3), "p25": round(p25, 3), "median": round(p50, 3), "p75": round(p75, 3),
                "p90": round(p90, 3), "n": int(len(values))}

    return {"onset_lag_s": percentiles(onsets), "offset_lag_s": percentiles(offsets)}


def align_spans_to_muscle(
    filtered: np.ndarray, labels: np.ndarray, inside: np.ndarray, fs: float, rest_label: int = 0,
    search_s: float = 1.0, plateau_s: tuple[float, float] = (0.5, 1.5),
) -> tuple[np.ndarray, np.ndarray]:
    """Calibration labels timed by the muscle, from the labelled spans alone: -> (labels, usable mask).

    Where a gesture's cue starts inside a span, the samples before the muscle answers (the envelope crosses halfway
    from rest to the gesture's plateau) are relabelled rest: the muscle is at rest there, and teaching the network
    otherwise costs accuracy on every later onset. Where rest's cue starts inside a span and the muscle is still
    relaxing, the samples before it falls halfway are marked unusable (which gesture it relaxes from may lie outside
    the spans). Only the spans' labels are read, plus the label just before a span to tell whether its start is a
    cue change: held-out labels never shape the calibration labels."""
    labels = np.asarray(labels)
    inside = np.asarray(inside, dtype=bool)
    level = envelope(filtered, fs)
    known_rest = inside & (labels == rest_label)
    rest_level = float(np.median(level[known_rest])) if np.any(known_rest) else float(np.percentile(level, 5))
    search = int(round(search_s * fs))
    near, far = (int(round(t * fs)) for t in plateau_s)
    aligned, usable = labels.copy(), inside.copy()
    for start in np.flatnonzero(inside & np.concatenate([[False], np.diff(labels) != 0])):
        end = start + 1
        while end < len(labels) and inside[end] and labels[end] == labels[start]:
            end += 1
        if labels[start] != rest_label:
            plateau = level[start + near : min(end, start + far)]
            if len(plateau) == 0 or np.median(plateau) <= 2 * rest_level:
                continue
            onset = half_level_crossing(level, start, min(end, start + search), rest_level,
                                        float(np.median(plateau)), rising=True)
            if onset is not None:
                aligned[start:onset] = rest_label
        else:
            active = float(np.max(level[start : start + max(1, int(0.1 * fs))]))
            if active <= 2 * rest_level:
                continue
            relaxed = half_level_crossing(level, start, min(end, start + search), rest_level, active, rising=False)
            usable[start : min(end, start + search) if relaxed is None else relaxed] = False
    return aligned, usable


def window_majority(labels: np.ndarray, ends: np.ndarray, window_samples: int) -> np.ndarray:
    """The label most samples of each window [end - window_samples, end) carry (non-negative labels)."""
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.zeros((len(labels) + 1, int(labels.max()) + 1), dtype=np.int32)
    np.add.at(counts, (np.arange(1, len(labels) + 1), labels), 1)
    counts = np.cumsum(counts, axis=0)
    return np.argmax(counts[ends] - counts[ends - window_samples], axis=1)


def muscle_timed_window_labels(
    filtered: np.ndarray, labels: np.ndarray, ends: np.ndarray, window_samples: int, fs: float,
    classes: list[str],
) -> np.ndarray | None:
    """Each window's label once label changes are moved to the muscle (None without a "rest" class: the changes
    are then not between rest and a gesture, and nothing says when the muscle made them)."""
    if "rest" not in classes or len(ends) == 0:
        return None
    moved = muscle_timed_labels(filtered, labels, fs, rest_label=classes.index("rest"))
    return window_majority(moved, ends, window_samples)
