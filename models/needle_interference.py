"""Interference-pattern (turns-amplitude) measures of needle EMG, per 0.5 s window, for the needle condition model.

The clinical interference-pattern analysis, computed on each window of the model's conditioned signal
(``models.needle_features``: 16384 Hz, 20 Hz high-pass, 50/60 Hz combs), so that a live stream gets exactly the
numbers a whole recording gets (each window reads only its own samples). Sources and what is ours: the table in
docs/needle-model.md ("Third round").

- Turns (Willison 1964, J Neurol Neurosurg Psychiatry 27:386): reversals with at least ``TURN_STEP_UV`` on either
  side (``dsp.mup_measures.count_turns``); per 100 ms epoch the turns per second and the mean amplitude between
  consecutive turns: one point of Stålberg's cloud (Stålberg et al. 1983, Electroencephalogr Clin Neurophysiol
  56:672). Myopathy moves the points to many turns at low amplitude, neuropathy to few turns at high amplitude.
- Number of small segments, activity, envelope and upper centile amplitude: the quantities of Nandedkar, Sanders &
  Stålberg 1986 (Muscle Nerve 9:431), in operational forms of our own (thresholds below).
- The cloud: a normal range learned from healthy people's epochs (``fit_cloud``), and per window the fraction of
  epochs above it (large for their turns: neurogenic) and below it (small for their turns: myopathic).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from dsp.mup_measures import count_turns
from dsp.resample import NEEDLE_FS

TURN_STEP_UV = 100.0  # Willison 1964
EPOCH_S = 0.1  # one cloud point per 100 ms
SMALL_SEGMENT_UV = 2.0 * TURN_STEP_UV  # ours: a segment no larger than two turn steps counts as small
ACTIVITY_BIN_S = 0.002  # ours: a 2 ms bin with a turn is active (about one MUP phase)
ENVELOPE_S = 0.010  # Nandedkar et al. 1986's envelope over 10 ms sub-windows (as dsp/interference.py)
UPPER_CENTILE = 95.0
CLOUD_PERCENTILES = (2.5, 97.5)
MIN_CLOUD_TURNS = 2  # an epoch needs two turns (one segment inside it) to be a cloud point

INTERFERENCE_NAMES = ("ip_log_turns_per_s", "ip_log_amplitude_per_turn", "ip_small_segments_per_ms",
                      "ip_activity", "ip_log_envelope", "ip_log_upper_centile")
CLOUD_NAMES = ("ip_cloud_above", "ip_cloud_below")


def window_interference(windows: np.ndarray, fs: float = NEEDLE_FS) -> tuple[np.ndarray, np.ndarray]:
    """Interference measures of (W, S) conditioned windows in µV.

    -> (features (W, len(INTERFERENCE_NAMES)) float32, cloud points (W, E, 3): per epoch log(1 + turns/s),
    log(1 + amplitude per turn) and 1.0 where the epoch has ``MIN_CLOUD_TURNS`` turns (else 0.0))."""
    x = np.asarray(windows, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"window_interference needs (windows, samples), got shape {x.shape}")
    n_windows, n_samples = x.shape
    epoch = int(round(EPOCH_S * fs))
    n_epochs = max(1, n_samples // epoch)
    epoch_s = epoch / fs
    seconds = n_samples / fs
    activity_bin = max(1, int(round(ACTIVITY_BIN_S * fs)))
    n_bins = max(1, n_samples // activity_bin)
    sub = max(2, int(round(ENVELOPE_S * fs)))
    features = np.zeros((n_windows, len(INTERFERENCE_NAMES)))
    points = np.zeros((n_windows, n_epochs, 3))
    for row, signal in enumerate(x):
        turns = count_turns(signal, TURN_STEP_UV)
        steps = np.abs(np.diff(signal[turns])) if turns.size >= 2 else np.empty(0)
        step_epoch = np.minimum(turns[1:] // epoch, n_epochs - 1) if turns.size >= 2 else np.empty(0, int)
        turn_epoch = np.minimum(turns // epoch, n_epochs - 1)
        turns_per_s = np.bincount(turn_epoch, minlength=n_epochs)[:n_epochs] / epoch_s
        step_sum = np.bincount(step_epoch, weights=steps, minlength=n_epochs)[:n_epochs]
        step_count = np.bincount(step_epoch, minlength=n_epochs)[:n_epochs]
        amplitude = np.divide(step_sum, step_count, out=np.zeros(n_epochs), where=step_count > 0)
        valid = (turns_per_s * epoch_s >= MIN_CLOUD_TURNS) & (step_count > 0)
        points[row] = np.column_stack([np.log1p(turns_per_s), np.log1p(amplitude), valid.astype(float)])
        blocks = signal[: (n_samples // sub) * sub].reshape(-1, sub)
        active_bins = np.unique(np.minimum(turns // activity_bin, n_bins - 1)).size
        features[row] = [
            np.log1p(turns_per_s.mean()),
            np.log1p(amplitude[valid].mean()) if valid.any() else 0.0,
            np.count_nonzero(steps < SMALL_SEGMENT_UV) / seconds / 1000.0,
            active_bins / n_bins,
            np.log1p(np.ptp(blocks, axis=1).mean()),
            np.log1p(np.percentile(steps, UPPER_CENTILE)) if steps.size else 0.0,
        ]
    return features.astype(np.float32), points


@dataclass(frozen=True)
class CloudLimits:
    """The normal turns-amplitude cloud: log amplitude = intercept + slope x log turns, normal between
    ``lower`` and ``upper`` residuals."""

    intercept: float
    slope: float
    lower: float
    upper: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, float]) -> CloudLimits:
        return cls(**{key: float(data[key]) for key in ("intercept", "slope", "lower", "upper")})


def fit_cloud(points: list[np.ndarray]) -> CloudLimits:
    """Normal cloud from the cloud points ((W, E, 3) each) of healthy recordings; ValueError when fewer than 10
    epochs qualify."""
    flat = np.concatenate([p.reshape(-1, 3) for p in points]) if points else np.zeros((0, 3))
    flat = flat[flat[:, 2] > 0]
    if len(flat) < 10:
        raise ValueError(f"a normal cloud needs at least 10 epochs with {MIN_CLOUD_TURNS} turns, got {len(flat)}")
    slope, intercept = np.polyfit(flat[:, 0], flat[:, 1], 1)
    residuals = flat[:, 1] - (intercept + slope * flat[:, 0])
    lower, upper = np.percentile(residuals, CLOUD_PERCENTILES)
    return CloudLimits(float(intercept), float(slope), float(lower), float(upper))


def cloud_fractions(points: np.ndarray, limits: CloudLimits) -> np.ndarray:
    """(W, 2) float32: per window the fraction of its cloud epochs above and below the normal cloud (0 when the
    window has no cloud epoch)."""
    points = np.asarray(points, dtype=np.float64)
    residual = points[..., 1] - (limits.intercept + limits.slope * points[..., 0])
    valid = points[..., 2] > 0
    n_valid = valid.sum(axis=1)
    above = np.where(valid, residual > limits.upper, False).sum(axis=1)
    below = np.where(valid, residual < limits.lower, False).sum(axis=1)
    denominator = np.maximum(n_valid, 1)
    return np.column_stack([above / denominator, below / denominator]).astype(np.float32)
