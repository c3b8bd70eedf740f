"""Live myoelectric fatigue indices: spectral compression during sustained contraction, per channel.

Fed once per window with the window's features (MNF, MDF, FInsm5, RMS per channel), the tracker

1. learns each channel's rest RMS (the quietest stretch of the first ``rest_learning_s`` seconds: their
   ``rest_percentile`` th percentile, never above ``max_rest_rms``; then a slow average while the channel is at rest,
   and at once any window quieter than half of it; ``set_rest_level`` calibrates it explicitly),
2. calls a channel contracting while its RMS exceeds ``activity_ratio`` x rest (released below
   ``release_ratio`` x rest: hysteresis), and keeps only contraction windows,
3. smooths over ``epoch_s``-second epochs (20 % trimmed mean of the contraction windows of each epoch; an epoch
   counts when at least half its windows are contraction),
4. fits a Theil-Sen trend (``theil_sen``: scipy.stats.theilslopes vectorised over channels) to MNF and MDF over
   the last ``trend_window_s`` seconds of epochs of the current contraction, giving Hz/min and the % change from
   the contraction's baseline (the robust line's value at the contraction's start; for FInsm5 and RMS the median
   of its first steady ``baseline_s`` after ``settle_s``), only where the baseline was steady and the present
   stretch is steady at the baseline's force (else NaN: not assessed), and
5. names a state per channel and overall (rule in docs/dsp.md and ``classify``).

A contraction survives pauses up to ``max_pause_s``; a longer rest ends it, and the next contraction starts a new
baseline. Between contractions a channel keeps the figures and state of its last contraction.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.stats import norm, trim_mean

#: the state where no MDF change could be judged (no contraction, no steady baseline, another force): never "fresh"
NOT_ASSESSED = "not assessed"
FATIGUE_STATES = ("fresh", "fatiguing", "fatigued", NOT_ASSESSED)
#: why a channel's state is NOT_ASSESSED (FatigueReport.reasons; "" where it was assessed)
REASON_NO_CONTRACTION = "no contraction yet"
REASON_NO_BASELINE = "no steady baseline yet (force still rising or unsteady)"
REASON_OTHER_FORCE = "present stretch unsteady or not at the baseline's force"
REASON_SHORT = "too short for a trend (it needs {:g} s at the baseline's force)"  # min_trend_s
_INDICES = ("MNF", "MDF", "FInsm5", "RMS")
# epochs average their windows with a 20 % trimmed mean: nearly as efficient as the mean on the noisy per-window
# spectral estimates, yet a movement artefact in a few windows cannot drag the epoch
_EPOCH_TRIM = 0.2


@dataclass(frozen=True)
class FatigueSettings:
    epoch_s: float = 2.0
    rest_learning_s: float = 3.0
    # rest is the quietest the muscle gets: a low percentile of the learning windows, not their median, so a
    # contraction that begins during learning does not lift the rest level
    rest_percentile: float = 10.0
    # µV: a relaxed muscle's band-passed surface EMG stays below this (measured: 6-7 µV simulated rest, 10.5 µV on
    # the HD-EMG grid at 1.3 %MVC; docs/dsp.md). A stream that starts inside a contraction learns more; capping it
    # here lets that contraction read as one, instead of "at rest" until the muscle relaxes
    max_rest_rms: float | None = 20.0
    # µV: in needle mode the tracker's rest ceiling (``for_mode("needle")``, applied by dsp.engine) and the live
    # needle verdicts' rest gate (monitor.needle_live): the rest level never above this. Measured only, no
    # published concentric-needle figure cited: on the 258 clinical recordings (docs/needle-model.md) the quietest
    # 50 ms stretches, high-passed as in needle mode, reach 3.7-3.9 µV RMS; twice that leaves room for a noisier
    # amplifier. With the surface 20 µV a stream that starts inside a contraction gates at 80 µV and 16 % of
    # healthy, 12 % of myopathy 0.5 s windows read as rest (0.2 % and 4.9 % at 8 µV)
    needle_max_rest_rms: float = 8.0
    activity_ratio: float = 4.0
    release_ratio: float = 2.5
    rest_adaptation_s: float = 30.0
    max_pause_s: float = 3.0
    baseline_s: float = 4.0
    # a % change is computed only against a baseline taken once the force is steady: the first settle_s of a
    # contraction (the force rising; epoch_s-wide epochs at its onset mix rest with contraction) never enter it,
    # and a baseline_s stretch counts as steady when its epochs' RMS stay within steady_rms_ratio of one another
    # (ours: 1.5x. A constant-force hold's 2 s epochs vary by a few %, fatigue raises RMS ~30 % over minutes, a
    # contraction's onset or a pause mixed into an epoch changes it many-fold). Else the change is NaN: not assessed
    settle_s: float = 2.0
    steady_rms_ratio: float = 1.5
    # and the present stretch is compared only at the baseline's force: its RMS within same_force_ratio of the
    # baseline's (ours: 2x. At constant force surface RMS rises some 30 % as fatigue sets in, docs/dsp.md; a
    # stretch of rest-level spontaneous activity counted as contraction, then the real contraction, is 40x)
    same_force_ratio: float = 2.0
    trend_window_s: float = 120.0
    trend_update_s: float = 10.0
    min_trend_s: float = 10.0
    fatiguing_slope_pct_per_min: float = -3.0
    fatiguing_change_pct: float = -7.0
    fatigued_change_pct: float = -15.0

    def for_mode(self, mode: str) -> FatigueSettings:
        """These settings for the engine's filter ``mode``: in needle mode the rest ceiling is
        ``needle_max_rest_rms`` (needle baseline is a few µV; the surface 20 µV let a stream that starts inside a
        contraction gate at 80 µV, docs/needle-model.md); surface keeps them as they are."""
        return replace(self, max_rest_rms=self.needle_max_rest_rms) if mode == "needle" else self

    def __post_init__(self) -> None:
        if not self.release_ratio < self.activity_ratio:
            raise ValueError("release_ratio must be below activity_ratio (hysteresis)")
        if not self.fatigued_change_pct < self.fatiguing_change_pct < 0:
            raise ValueError("need fatigued_change_pct < fatiguing_change_pct < 0")
        if min(self.epoch_s, self.rest_learning_s, self.baseline_s, self.trend_window_s) <= 0:
            raise ValueError("durations must be positive")
        if not 0 <= self.rest_percentile <= 50:
            raise ValueError("rest_percentile must be within 0-50 (rest is the quiet end of the windows)")
        if self.max_rest_rms is not None and not self.max_rest_rms > 0:
            raise ValueError("max_rest_rms must be positive (or None: no ceiling)")
        if not self.needle_max_rest_rms > 0:
            raise ValueError("needle_max_rest_rms must be positive")


@dataclass
class FatigueReport:
    """The tracker's view after one window. Arrays are per channel; NaN where a channel has no contraction."""

    timestamp: float
    learning: bool  # still learning the rest level
    active: np.ndarray  # contracting now
    rest_rms: np.ndarray
    rms: np.ndarray  # smoothed (last epoch), µV
    mnf_hz: np.ndarray
    mdf_hz: np.ndarray
    fins_m5: np.ndarray
    mnf_slope_hz_per_min: np.ndarray
    mdf_slope_hz_per_min: np.ndarray
    mdf_slope_pct_per_min: np.ndarray
    mnf_change_pct: np.ndarray
    mdf_change_pct: np.ndarray
    fins_change_pct: np.ndarray
    rms_change_pct: np.ndarray
    contraction_s: np.ndarray  # length of the current (or last) contraction
    states: tuple[str, ...]
    state: str  # overall: the state rule applied to the median figures over channels with a judged contraction
    overall: dict[str, float] = field(default_factory=dict)  # those median figures (empty before any)
    # per channel, why its state is NOT_ASSESSED ("" where assessed), and the overall one's reason
    reasons: tuple[str, ...] = ()
    reason: str = ""
    # per channel, the steady FInsm5 baseline the % change is taken against (NaN: none yet); the window's FInsm5
    # trend is drawn against it
    fins_baseline: np.ndarray = field(default_factory=lambda: np.empty(0))
    rms_baseline: np.ndarray = field(default_factory=lambda: np.empty(0))  # µV, the baseline's force
    # when it began (NaN: none now), on the tracker's own clock: ``clock_s`` is this report's time on that clock
    # (dsp.engine feeds the sample counter's time and sets ``timestamp`` to the LSL time; their difference maps one
    # onto the other)
    contraction_start: np.ndarray = field(default_factory=lambda: np.empty(0))
    clock_s: float = float("nan")

    def to_dict(self) -> dict[str, object]:
        """JSON-safe (NaN becomes None)."""
        out: dict[str, object] = {}
        for name, value in self.__dict__.items():
            if isinstance(value, dict):
                out[name] = {k: None if np.isnan(v) else v for k, v in value.items()}
            elif isinstance(value, np.ndarray):
                out[name] = [None if isinstance(v, float) and np.isnan(v) else v for v in value.tolist()]
            elif isinstance(value, float) and np.isnan(value):  # timestamp / clock_s before the first window
                out[name] = None
            else:
                out[name] = list(value) if isinstance(value, tuple) else value
        return out


def theil_sen(times: np.ndarray, values: np.ndarray, alpha: float = 0.95) -> tuple[np.ndarray, ...]:
    """Theil-Sen slope with Sen's confidence interval for many series at once: ``values`` (n, C), NaN = missing.

    Returns (slope, low, high), each (C,), NaN where a series has fewer than two points. The same estimator and
    interval as ``scipy.stats.theilslopes`` (tested equal; no ties assumed, as for distinct epoch times and
    continuous values), but one sort for all channels: scipy's per-call overhead (~1 ms) times two indices times
    64-256 channels would cost more than the rest of the DSP together.
    """
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    first, second = np.triu_indices(len(times), k=1)
    dt = times[second] - times[first]
    forward = dt > 0
    first, second, dt = first[forward], second[forward], dt[forward]
    slopes = np.sort((values[second] - values[first]) / dt[:, np.newaxis], axis=0)  # NaN sort last
    count = np.isfinite(slopes).sum(axis=0)
    points = np.isfinite(values).sum(axis=0)
    nan = np.full(values.shape[1], np.nan)
    if not count.any():
        return nan, nan.copy(), nan.copy()
    columns = np.arange(values.shape[1])
    safe = np.maximum(count, 1)
    slope = 0.5 * (slopes[(safe - 1) // 2, columns] + slopes[safe // 2, columns])
    z = norm.ppf((1.0 - alpha) / 2.0 if alpha > 0.5 else alpha / 2.0)
    sigma = np.sqrt(points * (points - 1) * (2 * points + 5) / 18.0)
    upper_index = np.minimum(np.round((count - z * sigma) / 2.0).astype(np.int64), safe - 1)
    lower_index = np.maximum(np.round((count + z * sigma) / 2.0).astype(np.int64) - 1, 0)
    valid = count > 0
    return (
        np.where(valid, slope, np.nan),
        np.where(valid, slopes[np.minimum(lower_index, safe - 1), columns], np.nan),
        np.where(valid, slopes[upper_index, columns], np.nan),
    )


def _nanmedian(values: np.ndarray, axis: int) -> np.ndarray:
    """np.nanmedian without the warning for all-NaN columns (channels not contracting): those stay NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(values, axis=axis)


def _steady(rms_epochs: np.ndarray, ratio: float) -> np.ndarray:
    """(C,) whether each channel's epoch RMS values (epochs, C; NaN = none) hold at least two epochs and stay
    within ``ratio`` of one another: the force was steady."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        high, low = np.nanmax(rms_epochs, axis=0), np.nanmin(rms_epochs, axis=0)
    count = np.isfinite(rms_epochs).sum(axis=0)
    return (count >= 2) & (low > 0) & (high <= ratio * low)


def _same_force(rms: np.ndarray, baseline_rms: np.ndarray, ratio: float) -> np.ndarray:
    """Whether RMS (C,) or (epochs, C) lies within ``ratio`` of the baseline's (C,) (False where either is missing)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        quotient = rms / baseline_rms
    return np.isfinite(quotient) & (quotient > 0) & (quotient <= ratio) & (quotient >= 1.0 / ratio)


def _stretch(values: np.ndarray, rms: np.ndarray, times: np.ndarray, chosen: np.ndarray,
             settings: FatigueSettings) -> tuple[float, float] | None:  # fmt: skip
    """(median value, median RMS) of the ``chosen`` windows, or None unless they are at least two and steady (their
    ``epoch_s`` blocks' median RMS within ``steady_rms_ratio``; a stretch shorter than two blocks is split in
    halves)."""
    keep = chosen & np.isfinite(values) & np.isfinite(rms)
    if keep.sum() < 2:
        return None
    t = times[keep]
    blocks = np.floor((t - t[0]) / settings.epoch_s).astype(np.int64)
    if blocks.max() < 1:
        blocks = (t > np.median(t)).astype(np.int64)
    block_rms = np.array([[np.median(rms[keep][blocks == b])] for b in np.unique(blocks)])
    if not _steady(block_rms, settings.steady_rms_ratio)[0]:
        return None
    return float(np.median(values[keep])), float(np.median(rms[keep]))


def _baseline_and_present(values: np.ndarray, rms: np.ndarray, times: np.ndarray, settings: FatigueSettings,
                          span: float) -> tuple[tuple[float, float], tuple[float, float]] | None:  # fmt: skip
    """The steady baseline stretch (first ``span`` after ``settle_s``) and the steady present one (last ``span``)
    at the baseline's force, or None (not assessed)."""
    if not len(times) or span <= 0:
        return None
    first = (times >= times[0] + settings.settle_s) & (times <= times[0] + settings.settle_s + span)
    last = times >= times[-1] - span
    if (first & last).any():  # the stretches overlap: too short to compare
        return None
    baseline, present = _stretch(values, rms, times, first, settings), _stretch(values, rms, times, last, settings)
    if baseline is None or present is None:
        return None
    if not _same_force(np.array([present[1]]), np.array([baseline[1]]), settings.same_force_ratio)[0]:
        return None
    return baseline, present


def stretch_change_pct(values: np.ndarray, rms: np.ndarray, times: np.ndarray, settings: FatigueSettings,
                       span_s: float | None = None) -> float:  # fmt: skip
    """Offline, the live rule for FInsm5/RMS changes over one contraction's windows (``times`` from its start, s):
    % change of the median of the last ``span_s`` (default ``baseline_s``) against the median of the first
    ``span_s`` after ``settle_s``, or NaN (not assessed) unless both stretches are steady (their ``epoch_s``
    blocks' median RMS within ``steady_rms_ratio``; a stretch shorter than two blocks is split in halves) and the
    present's RMS lies within ``same_force_ratio`` of the baseline's. Used by monitor/recordings/contractions.py."""
    span = settings.baseline_s if span_s is None else span_s
    values, rms, times = (np.asarray(a, dtype=np.float64) for a in (values, rms, times))
    stretches = _baseline_and_present(values, rms, times, settings, span)
    if stretches is None:
        return float("nan")
    (baseline, _), (present, _) = stretches
    if not baseline > 0:
        return float("nan")
    return 100.0 * (present / baseline - 1.0)


def line_windows(rms: np.ndarray, times: np.ndarray, settings: FatigueSettings,
                 span_s: float | None = None) -> np.ndarray | None:  # fmt: skip
    """Offline, the live rule for the MNF/MDF line over one contraction's windows (``times`` from its start, s):
    the windows the line may pass through (from ``settle_s`` on, RMS within ``same_force_ratio`` of the steady
    baseline's, as ``FatigueTracker._settled``), or None (not assessed) where ``stretch_change_pct`` would give
    NaN: no steady baseline, or the present stretch unsteady or at another force (a force ramp)."""
    span = settings.baseline_s if span_s is None else span_s
    rms, times = np.asarray(rms, dtype=np.float64), np.asarray(times, dtype=np.float64)
    stretches = _baseline_and_present(rms, rms, times, settings, span)
    if stretches is None:
        return None
    (_, baseline_rms), _ = stretches
    at_force = _same_force(rms, np.array([baseline_rms]), settings.same_force_ratio)
    return at_force & (times >= times[0] + settings.settle_s - 1e-9)


def classify(change_pct: float, slope_pct_per_min: float, slope_upper_pct_per_min: float, settings: FatigueSettings,
             duration_s: float) -> str:  # fmt: skip
    """The state rule, for one channel's MDF.

    fatigued: MDF has fallen at least ``fatigued_change_pct`` (default 15 %) below the contraction's baseline.
    fatiguing: otherwise, after ``min_trend_s`` of contraction, MDF has fallen at least ``fatiguing_change_pct``
    (7 %), or it falls at ``fatiguing_slope_pct_per_min`` (3 %/min) or faster with the slope's 95 % confidence
    interval entirely below zero.
    not assessed (NOT_ASSESSED): the MDF change is NaN (no contraction, no steady baseline, the present stretch not
    at the baseline's force) or the contraction is shorter than ``min_trend_s``: never read as "fresh".
    fresh: everything else.
    """
    if np.isnan(change_pct) or duration_s < settings.min_trend_s:
        return NOT_ASSESSED
    if change_pct <= settings.fatigued_change_pct:
        return "fatigued"
    if change_pct <= settings.fatiguing_change_pct:
        return "fatiguing"
    if slope_pct_per_min <= settings.fatiguing_slope_pct_per_min and slope_upper_pct_per_min < 0:
        return "fatiguing"
    return "fresh"


def masked_trim_mean(rows: np.ndarray, active: np.ndarray, proportion: float) -> np.ndarray:
    """(F, C) trimmed mean over axis 0 of ``rows`` (W, F, C), each channel over its ``active`` (W, C) rows only, as
    ``scipy.stats.trim_mean`` of those rows cuts ``int(proportion * n)`` from each end; NaN for a channel without any.

    One pass for every channel: at a contraction's onset a 256-channel grid has ~200 channels active in only part of
    an epoch, and one trim_mean call each (~0.45 ms of scipy's argument handling apiece) made that DSP step ~100 ms
    of CPU, the slowest decisions' wait (bench_latency's tail)."""
    count = active.sum(axis=0)  # (C,)
    low = (proportion * count).astype(int)
    high = count - low
    ordered = np.sort(np.where(active[:, np.newaxis, :], rows, np.nan), axis=0)  # inactive rows (NaN) sort last
    sums = np.concatenate([np.zeros((1, *ordered.shape[1:])), np.cumsum(np.nan_to_num(ordered), axis=0)])

    def at(index: np.ndarray) -> np.ndarray:  # (F, C): the cumulative sum up to each channel's ``index``
        where = np.broadcast_to(index[np.newaxis, np.newaxis, :], (1, *sums.shape[1:]))
        return np.take_along_axis(sums, where, axis=0)[0]

    with np.errstate(invalid="ignore", divide="ignore"):
        means = (at(high) - at(low)) / (high - low)
    return np.where(count > 0, means, np.nan)


class FatigueTracker:
    def __init__(self, fs: float, n_channels: int, settings: FatigueSettings | None = None) -> None:
        if n_channels <= 0 or not fs > 0:
            raise ValueError(f"need a positive rate and channel count, got {fs} Hz x {n_channels}")
        self.fs = float(fs)
        self.n_channels = int(n_channels)
        self.settings = settings or FatigueSettings()
        self.reset()

    def reset(self) -> None:
        c = self.n_channels
        self._first_timestamp: float | None = None
        self._learned = False
        self._learning_rms: list[np.ndarray] = []
        self.rest_rms = np.full(c, np.nan)
        self._last_timestamp: float | None = None
        self._active = np.zeros(c, dtype=bool)
        self._epoch_index: int | None = None
        self._epoch_rows: list[np.ndarray] = []  # (4, C) per window
        self._epoch_active: list[np.ndarray] = []
        self._epochs_done = 0
        self._cached_report: FatigueReport | None = None
        # the last trend_window_s of epochs, shared by all channels: times (epoch centres) and values, NaN where a
        # channel was not contracting; per channel the start of its current contraction (NaN: none)
        s = self.settings
        capacity = int(np.ceil(s.trend_window_s / s.epoch_s)) + 1
        self._history_t = np.full(capacity, np.nan)
        self._history_v = np.full((capacity, len(_INDICES), c), np.nan)
        self._start = np.full(c, np.nan)
        self._paused = np.zeros(c)
        self._baseline = np.full((len(_INDICES), c), np.nan)
        nan = np.full(c, np.nan)
        self._smoothed = np.full((4, c), np.nan)
        self._slopes = {name: nan.copy() for name in ("MNF", "MDF", "MDF_upper")}
        self._change = np.full((4, c), np.nan)
        self._duration = np.zeros(c)
        self._baseline_mdf = nan.copy()
        self._states = [NOT_ASSESSED] * c
        self._reasons = [REASON_NO_CONTRACTION] * c

    @property
    def learning(self) -> bool:
        return not self._learned

    def set_rest_level(self, rest_rms: np.ndarray) -> None:
        """Calibrates the rest RMS (µV per channel), ending the learning phase."""
        rest_rms = np.asarray(rest_rms, dtype=np.float64).reshape(self.n_channels)
        if not (np.isfinite(rest_rms) & (rest_rms > 0)).all():
            raise ValueError("rest RMS must be positive and finite on every channel")
        self.rest_rms = rest_rms.copy()
        self._learned = True

    def update_features(self, timestamp: float, features: Mapping[str, np.ndarray],
                        usable: np.ndarray | None = None) -> FatigueReport:  # fmt: skip
        """``update`` taking a feature mapping with keys MNF, MDF, FInsm5 and RMS, each (C,)."""
        return self.update(timestamp, *(features[name] for name in _INDICES), usable=usable)

    def update(self, timestamp: float, mnf: np.ndarray, mdf: np.ndarray, fins_m5: np.ndarray, rms: np.ndarray,
               usable: np.ndarray | None = None) -> FatigueReport:  # fmt: skip
        """Feeds one window (its last sample's time, features per channel); unusable channels count as resting."""
        row = np.vstack([np.asarray(v, dtype=np.float64).reshape(self.n_channels) for v in (mnf, mdf, fins_m5, rms)])
        usable_mask = np.ones(self.n_channels, bool) if usable is None else np.asarray(usable, bool).copy()
        usable_mask &= np.isfinite(row).all(axis=0)
        if self._first_timestamp is None:
            self._first_timestamp = float(timestamp)
        self._learn_rest(float(timestamp), row[3], usable_mask)
        self._detect_activity(row[3], usable_mask)
        epoch = int((timestamp - self._first_timestamp) // self.settings.epoch_s)
        finished = self._epoch_index is not None and epoch != self._epoch_index
        if finished:
            self._finish_epoch(self._first_timestamp + (self._epoch_index + 0.5) * self.settings.epoch_s)
        self._epoch_index = epoch
        self._epoch_rows.append(row)
        self._epoch_active.append(self._active.copy())
        self._last_timestamp = float(timestamp)
        # the figures change only when an epoch ends; between, refresh just the per-window fields (building the
        # overall medians for every window would cost more than the rest of the tracker)
        if finished or self._cached_report is None:
            self._cached_report = self.report()
        else:
            self._cached_report = replace(
                self._cached_report,
                timestamp=self._last_timestamp,
                clock_s=self._last_timestamp,
                learning=self.learning,
                active=self._active.copy(),
                rest_rms=self.rest_rms.copy(),
            )
        return self._cached_report

    def _learn_rest(self, timestamp: float, rms: np.ndarray, usable: np.ndarray) -> None:
        s = self.settings
        if self.learning:
            self._learning_rms.append(np.where(usable, rms, np.nan))
            if timestamp - self._first_timestamp >= s.rest_learning_s:
                history = np.array(self._learning_rms)
                seen = ~np.isnan(history).all(axis=0)
                self.rest_rms[seen] = np.nanpercentile(history[:, seen], s.rest_percentile, axis=0)
                self._cap_rest()
                self._learning_rms = []
                self._learned = True
            return
        # a channel unusable throughout learning takes its first usable window as rest
        unlearned = np.isnan(self.rest_rms) & usable & (rms > 0)
        self.rest_rms[unlearned] = rms[unlearned]
        self._cap_rest()
        hop_s = 0.0 if self._last_timestamp is None else max(timestamp - self._last_timestamp, 0.0)
        weight = min(hop_s / s.rest_adaptation_s, 1.0)
        resting = usable & ~self._active & np.isfinite(rms) & (rms > 0)
        self.rest_rms[resting] += weight * (rms[resting] - self.rest_rms[resting])
        # a session that began mid-contraction learned a rest level far too high: the first quieter window
        # (a muscle at rest is never quieter than its rest level for long) pulls it down at once
        quieter = usable & np.isfinite(rms) & (rms > 0) & (rms < 0.5 * self.rest_rms)
        self.rest_rms[quieter] = rms[quieter]

    def _cap_rest(self) -> None:
        """A rest level above what a relaxed muscle shows was learned during a contraction: use the ceiling."""
        ceiling = self.settings.max_rest_rms
        if ceiling is not None:
            np.minimum(self.rest_rms, ceiling, out=self.rest_rms, where=np.isfinite(self.rest_rms))

    def _detect_activity(self, rms: np.ndarray, usable: np.ndarray) -> None:
        if self.learning:
            self._active[:] = False
            return
        s = self.settings
        starting = rms > s.activity_ratio * self.rest_rms
        staying = rms > s.release_ratio * self.rest_rms
        self._active = usable & np.where(self._active, staying, starting)

    def _finish_epoch(self, epoch_centre: float) -> None:
        s = self.settings
        rows = np.array(self._epoch_rows)  # (n, 4, C)
        active = np.array(self._epoch_active)  # (n, C)
        self._epoch_rows, self._epoch_active = [], []
        self._epochs_done += 1
        contracting = active.mean(axis=0) >= 0.5
        value = self._epoch_values(rows, active, contracting)

        # contractions end after a pause longer than max_pause_s; a new one forgets the channel's history. Once a
        # contraction has its steady baseline, an epoch beyond same_force_ratio of the baseline's RMS counts as a
        # pause too: it is another contraction (rest-level spontaneous activity above the release level, or a new
        # force level), and the next baseline is its own
        unlike = np.isfinite(self._baseline[3]) & ~_same_force(value[3], self._baseline[3], s.same_force_ratio)
        self._paused = np.where(contracting & ~unlike, 0.0, self._paused + s.epoch_s)
        self._start[self._paused > s.max_pause_s] = np.nan
        starting = contracting & np.isnan(self._start)
        if starting.any():
            self._start[starting] = epoch_centre - s.epoch_s / 2
            self._history_v[:, :, starting] = np.nan
            self._baseline[:, starting] = np.nan
            self._change[:, starting] = np.nan
            for slopes in self._slopes.values():
                slopes[starting] = np.nan
            for channel in np.flatnonzero(starting):
                self._states[channel] = NOT_ASSESSED
                self._reasons[channel] = REASON_NO_BASELINE

        slot = (self._epochs_done - 1) % len(self._history_t)
        self._history_t[slot] = epoch_centre
        self._history_v[slot] = np.where(contracting, value, np.nan)
        if not contracting.any():
            return
        self._smoothed[:, contracting] = value[:, contracting]
        self._duration[contracting] = epoch_centre + s.epoch_s / 2 - self._start[contracting]
        self._set_amplitude_baselines(epoch_centre, contracting)
        self._fit_trends(contracting)
        self._update_changes(epoch_centre, contracting)

    def _epoch_values(self, rows: np.ndarray, active: np.ndarray, contracting: np.ndarray) -> np.ndarray:
        """(4, C) trimmed means of each contracting channel's contraction windows in the epoch."""
        value = np.full((len(_INDICES), self.n_channels), np.nan)
        whole = contracting & active.all(axis=0)
        if whole.any():
            value[:, whole] = trim_mean(rows[:, :, whole], _EPOCH_TRIM, axis=0)
        partial = contracting & ~whole
        if partial.any():
            value[:, partial] = masked_trim_mean(rows[:, :, partial], active[:, partial], _EPOCH_TRIM)
        return value

    def _relative_times(self) -> np.ndarray:
        """(epochs, C): each history epoch's time since the start of each channel's contraction."""
        return self._history_t[:, np.newaxis] - self._start[np.newaxis, :]

    def _set_amplitude_baselines(self, epoch_centre: float, contracting: np.ndarray) -> None:
        # FInsm5 and RMS: median of the first steady baseline_s of the contraction after settle_s, set once. Until
        # one is found (the force still rising, an onset, a stretch too short) no % change is computed.
        s = self.settings
        relative = self._relative_times()
        end = epoch_centre - self._start
        # epochs are placed at their centres: the stretch is the epochs that begin at or after settle_s and end
        # within the last baseline_s
        half = s.epoch_s / 2
        due = contracting & np.isnan(self._baseline[2]) & (end + half >= s.settle_s + s.baseline_s - 1e-9)
        if not due.any():
            return
        stretch = (relative > (end - s.baseline_s)[np.newaxis, :]) & (relative - half >= s.settle_s - 1e-9)
        values = np.where(stretch[:, np.newaxis, :], self._history_v[:, 2:, :], np.nan)[:, :, due]
        steady = _steady(values[:, 1, :], s.steady_rms_ratio)
        chosen = np.flatnonzero(due)[steady]
        self._baseline[2:, chosen] = _nanmedian(values[:, :, steady], axis=0)

    def _fit_trends(self, contracting: np.ndarray) -> None:
        # refit every trend_update_s (all channels in one vectorised fit), and at once for a channel without one
        s = self.settings
        update_every = max(1, int(round(s.trend_update_s / s.epoch_s)))
        due = contracting & (self._duration >= s.min_trend_s)
        if self._epochs_done % update_every:
            due &= np.isnan(self._slopes["MDF"])
        if not due.any():
            return
        # a line needs min_trend_s of epochs at the baseline's force: two epochs of a 5 s bout gave -1077 Hz/min
        needed = int(np.ceil(s.min_trend_s / s.epoch_s))
        history = self._settled()
        for index, name in ((0, "MNF"), (1, "MDF")):
            # unused ring slots have NaN times and values; other channels' epochs are NaN for this channel
            settled = history[:, index, due]
            slope, _low, high = theil_sen(self._history_t, settled)
            few = np.isfinite(settled).sum(axis=0) < needed
            slope[few], high[few] = np.nan, np.nan
            self._slopes[name][due] = slope * 60.0
            if name == "MDF":
                self._slopes["MDF_upper"][due] = high * 60.0

    def _settled(self) -> np.ndarray:
        """(epochs, 2, C) MNF and MDF history at the baseline's force: without each contraction's first settle_s
        (the force still rising) and without epochs whose RMS lies beyond same_force_ratio of the baseline's (a
        pause, an onset, or rest-level activity counted as contraction: their spectra belong to another force).
        All NaN for a channel without a steady baseline yet."""
        s = self.settings
        begins = self._relative_times() - s.epoch_s / 2
        at_force = _same_force(self._history_v[:, 3, :], self._baseline[3], s.same_force_ratio)
        like = (begins >= s.settle_s - 1e-9) & at_force
        return np.where(like[:, np.newaxis, :], self._history_v[:, :2, :], np.nan)

    def _update_changes(self, epoch_centre: float, contracting: np.ndarray) -> None:
        s = self.settings
        relative = self._relative_times()
        now = epoch_centre - self._start  # the latest epoch, relative to each contraction's start
        current = np.full((len(_INDICES), self.n_channels), np.nan)
        # FInsm5 and RMS: median of the last baseline_s of epochs
        recent = relative > (now - s.baseline_s)[np.newaxis, :]
        recent_values = np.where(recent[:, np.newaxis, :], self._history_v[:, 2:, :], np.nan)
        current[2:] = _nanmedian(recent_values, axis=0)
        # the present stretch must be steady and at the baseline's force: an onset, a pause or another force level
        # inside it would compare unlike contractions (then every index reads "not assessed")
        comparable = _steady(recent_values[:, 1, :], s.steady_rms_ratio) & _same_force(
            current[3], self._baseline[3], s.same_force_ratio
        )
        # MNF and MDF: the robust line through the history (Theil-Sen slope, median residual as level). Its value
        # at the contraction's start is the baseline while the history still reaches back to the start (then
        # frozen): a line through many epochs is a far steadier baseline than the first few noisy epochs.
        covers_start = self._start >= np.nanmin(self._history_t) - 0.75 * s.epoch_s
        history = self._settled()
        for index, name in ((0, "MNF"), (1, "MDF")):
            slope_per_s = self._slopes[name] / 60.0
            fitted = np.isfinite(slope_per_s) & contracting
            level = _nanmedian(history[:, index, :] - slope_per_s[np.newaxis, :] * relative, axis=0)
            current[index] = np.where(fitted, level + slope_per_s * now, np.nan)
            refresh = fitted & covers_start
            self._baseline[index, refresh] = level[refresh]
        # no steady baseline (amplitude baseline unset): MNF/MDF not assessed either
        current[:, ~comparable] = np.nan
        change = (current - self._baseline) / self._baseline * 100.0
        self._change[:, contracting] = change[:, contracting]
        self._baseline_mdf[contracting] = self._baseline[1, contracting]
        slope_pct = self._slopes["MDF"] / self._baseline[1] * 100.0
        upper_pct = self._slopes["MDF_upper"] / self._baseline[1] * 100.0
        for channel in np.flatnonzero(contracting):
            self._states[channel] = classify(
                self._change[1, channel], slope_pct[channel], upper_pct[channel], s, self._duration[channel]
            )
            if self._states[channel] != NOT_ASSESSED:
                self._reasons[channel] = ""
            elif np.isnan(self._baseline[3, channel]):
                self._reasons[channel] = REASON_NO_BASELINE
            elif not comparable[channel]:
                self._reasons[channel] = REASON_OTHER_FORCE
            else:
                self._reasons[channel] = REASON_SHORT.format(self.settings.min_trend_s)

    def report(self) -> FatigueReport:
        slope_pct = self._slopes["MDF"] / self._baseline_mdf * 100.0
        upper_pct = self._slopes["MDF_upper"] / self._baseline_mdf * 100.0
        judged = np.isfinite(self._change[1])
        overall: dict[str, float] = {}
        state = NOT_ASSESSED
        # nothing judged: the most common of the channels' reasons
        reason = max(set(self._reasons), key=self._reasons.count) if self._reasons else REASON_NO_CONTRACTION
        if judged.any():
            # one channel's noise should not decide: the rule is applied to the median over judged channels
            figures = {
                "mdf_change_pct": self._change[1],
                "mnf_change_pct": self._change[0],
                "fins_change_pct": self._change[2],
                "rms_change_pct": self._change[3],
                "mdf_slope_hz_per_min": self._slopes["MDF"],
                "mnf_slope_hz_per_min": self._slopes["MNF"],
                "mdf_slope_pct_per_min": slope_pct,
                "mdf_hz": self._smoothed[1],
                "mnf_hz": self._smoothed[0],
                "contraction_s": self._duration,
            }
            overall = {name: float(np.nanmedian(values[judged])) for name, values in figures.items()}
            state = classify(
                overall["mdf_change_pct"],
                overall["mdf_slope_pct_per_min"],
                float(np.nanmedian(upper_pct[judged])),
                self.settings,
                overall["contraction_s"],
            )
            reason = REASON_SHORT.format(self.settings.min_trend_s) if state == NOT_ASSESSED else ""
        return FatigueReport(
            timestamp=float(self._last_timestamp if self._last_timestamp is not None else np.nan),
            learning=self.learning,
            active=self._active.copy(),
            rest_rms=self.rest_rms.copy(),
            rms=self._smoothed[3].copy(),
            mnf_hz=self._smoothed[0].copy(),
            mdf_hz=self._smoothed[1].copy(),
            fins_m5=self._smoothed[2].copy(),
            mnf_slope_hz_per_min=self._slopes["MNF"].copy(),
            mdf_slope_hz_per_min=self._slopes["MDF"].copy(),
            mdf_slope_pct_per_min=slope_pct,
            mnf_change_pct=self._change[0].copy(),
            mdf_change_pct=self._change[1].copy(),
            fins_change_pct=self._change[2].copy(),
            rms_change_pct=self._change[3].copy(),
            contraction_s=self._duration.copy(),
            states=tuple(self._states),
            state=state,
            overall=overall,
            reasons=tuple(self._reasons),
            reason=reason,
            fins_baseline=self._baseline[2].copy(),
            rms_baseline=self._baseline[3].copy(),
            contraction_start=self._start.copy(),
            clock_s=float(self._last_timestamp if self._last_timestamp is not None else np.nan),
        )
