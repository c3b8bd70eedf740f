"""Measures of one motor-unit potential (MUP) template, their summary over units, and reference ranges.

Definitions follow Stålberg et al. 1986 (J Clin Neurophysiol 3:313-348, standardized terminology for MUP
measurement), with the automatic onset/end criterion of multi-MUP analysis:
- baseline: median of the first and last 2 ms of the analysis window;
- a sample is *active* while the potential leaves the baseline by more than ``amplitude_threshold_uv`` or its
  slope (measured over ±0.2 ms) exceeds ``slope_threshold_uv_per_ms`` (both raised to 4 SDs of the template's
  own noise where that is larger); onset (end) is the first (last) active sample reached when walking out from
  the main peak until the potential has stayed inactive for ``quiet_ms``, so the slow initial and terminal phases
  count while a brief baseline crossing between phases does not end the MUP; onset and end are then placed
  between samples, where the larger of |deviation| / threshold and |slope| / threshold crosses 1 (linear
  interpolation), so a short MUP's duration is not rounded to whole samples;
- amplitude: peak-to-peak inside [onset, end]; area: integral of |x - baseline| there (µV·ms);
  thickness: area / amplitude (ms); size index: 2 log10(amplitude in mV) + thickness (Sonoo & Stålberg 1993);
- phases: baseline crossings inside the duration + 1, a phase counting only if it peaks beyond the amplitude
  threshold; polyphasic: more than 4 phases;
- turns: changes of direction with at least ``turn_step_uv`` (25 µV) on either side;
- satellites: time-locked deflections beyond the threshold after the end (or before the onset) of the main MUP,
  separated from it by an isoelectric interval of at least ``quiet_ms``;
- rise time: from the positive peak before the main negative peak to that peak (reported; acceptance < 0.5 ms).

Reference ranges are data (``MEAN_REFERENCE``, ``INDIVIDUAL_REFERENCE``): limits for the mean over ~20 MUPs of a
muscle and for single MUPs, with their sources; a lab should replace them with its own per muscle and age
(docs/needle-emg.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import ndimage

POLYPHASIC_MIN_PHASES = 5
BASELINE_EDGE_MS = 2.0


def json_number(value: float, digits: int = 4) -> float | None:
    """``value`` rounded for a report, None where it is NaN or infinite (strict JSON has no NaN)."""
    value = float(value)
    return round(value, digits) if np.isfinite(value) else None


@dataclass(frozen=True)
class MeasureSettings:
    amplitude_threshold_uv: float = 20.0  # a phase or a satellite must exceed it
    activity_threshold_uv: float = 20.0  # onset/end: the smoothed potential leaves the baseline by more
    slope_threshold_uv_per_ms: float = 40.0
    slope_span_ms: float = 0.2
    quiet_ms: float = 1.0
    turn_step_uv: float = 25.0
    noise_factor: float = 4.0
    profile_factor: float = 1.25  # onset/end thresholds at least this many per-sample standard errors


@dataclass(frozen=True)
class MupMeasures:
    """Measures of one MUP; times in ms relative to the template's first sample."""

    amplitude_uv: float
    duration_ms: float
    onset_ms: float
    end_ms: float
    phases: int
    turns: int
    area_uv_ms: float
    thickness_ms: float
    size_index: float
    satellites: int
    polyphasic: bool
    rise_time_ms: float  # from the positive peak before the main negative peak to it (acceptance: < 0.5 ms)

    def to_dict(self) -> dict[str, float | int | bool]:
        return {key: (json_number(value) if isinstance(value, float) else value) for key, value in asdict(self).items()}


@dataclass(frozen=True)
class ReferenceRange:
    """Normal limits (inclusive) of one measure; None where the measure has no limit on that side."""

    low: float | None
    high: float | None
    unit: str
    source: str

    def flag(self, value: float) -> str:
        """'low', 'high' or 'normal'."""
        if self.low is not None and value < self.low:
            return "low"
        if self.high is not None and value > self.high:
            return "high"
        return "normal"


_TA_CONTROLS = (
    "tibialis anterior controls, mean ± 2 SD (amplitude 661.5±92 µV, area 851.5±158.7 µV·ms, duration "
    "9.35±0.93 ms, phases 3.47±0.36, turns 3.35±0.52, polyphasic 5-40 %, ULN 35 %): J Neurol Neurosurg "
    "Psychiatry, table 1 'Control values in the healthy subjects for tibialis anterior (TA) muscle recordings'"
)
_WORKING = "working single-MUP limits set here (no published outlier table at hand); replace with the lab's own"

# Limits for the MEAN over the MUPs of one muscle: tibialis anterior controls, mean ± 2 SD (upper limits of
# normal as published). Other muscles and ages need their own table.
MEAN_REFERENCE: dict[str, ReferenceRange] = {
    "amplitude_uv": ReferenceRange(477.5, 845.5, "µV", _TA_CONTROLS),
    "duration_ms": ReferenceRange(7.49, 11.2, "ms", _TA_CONTROLS),
    "area_uv_ms": ReferenceRange(534.1, 1168.9, "µV·ms", _TA_CONTROLS),
    "phases": ReferenceRange(None, 4.19, "count", _TA_CONTROLS),
    "turns": ReferenceRange(None, 4.39, "count", _TA_CONTROLS),
    "polyphasic_percent": ReferenceRange(None, 35.0, "%", _TA_CONTROLS),
}

# Limits for a SINGLE MUP: more than ~20 % of the MUPs outside them is abnormal (the outlier idea of
# Stålberg et al. 1996, Muscle Nerve 19:457); polyphasic means more than 4 phases (Stålberg et al. 1986).
INDIVIDUAL_REFERENCE: dict[str, ReferenceRange] = {
    "amplitude_uv": ReferenceRange(150.0, 2500.0, "µV", _WORKING),
    "duration_ms": ReferenceRange(5.0, 15.0, "ms", _WORKING),
    "phases": ReferenceRange(None, 4.0, "count", "Stålberg et al. 1986, J Clin Neurophysiol 3:313 (polyphasic > 4)"),
    "turns": ReferenceRange(None, 5.0, "count", _WORKING),
}


def baseline_of(template: np.ndarray, fs: float) -> float:
    edge = max(1, int(round(BASELINE_EDGE_MS * 1e-3 * fs)))
    return float(np.median(np.concatenate([template[:edge], template[-edge:]])))


def _span(fs: float, settings: MeasureSettings) -> int:
    return max(1, int(round(settings.slope_span_ms * 1e-3 * fs)))


def smoothed_deviation(x: np.ndarray, fs: float, settings: MeasureSettings, baseline: float = 0.0) -> np.ndarray:
    """``x - baseline`` averaged over ±slope_span_ms along the last axis (one waveform or a stack of windows)."""
    span = _span(fs, settings)
    return ndimage.uniform_filter1d(np.asarray(x, dtype=np.float64) - baseline, 2 * span + 1, axis=-1, mode="nearest")


def signed_slope(x: np.ndarray, fs: float, settings: MeasureSettings) -> np.ndarray:
    """Slope in µV/ms measured over ±slope_span_ms along the last axis."""
    span = _span(fs, settings)
    pad = [(0, 0)] * (np.ndim(x) - 1) + [(span, span)]
    padded = np.pad(np.asarray(x, dtype=np.float64), pad, mode="edge")
    return (padded[..., 2 * span :] - padded[..., : -2 * span]) / (2 * span) * fs * 1e-3


def slope_of(x: np.ndarray, fs: float, settings: MeasureSettings) -> np.ndarray:
    """|slope| in µV/ms measured over ±slope_span_ms along the last axis."""
    return np.abs(signed_slope(x, fs, settings))


@dataclass(frozen=True)
class NoiseProfile:
    """Per-sample standard error of a median template (µV) and of its slope (µV/ms), from the spread of the
    windows it was taken from. In a moderate contraction the background is other units' slow potentials: it is
    low-frequency and uneven in time, so one noise figure divided by the smoothing gain (white-noise thinking)
    understates it several-fold and the onset/end criterion then follows the background for tens of ms."""

    deviation_se: np.ndarray
    slope_se: np.ndarray

    @classmethod
    def from_windows(cls, windows: np.ndarray, fs: float, settings: MeasureSettings | None = None) -> NoiseProfile:
        settings = settings or MeasureSettings()
        windows = np.asarray(windows, dtype=np.float64)
        # the median of n is ~1.25x noisier than the mean; the robust spread ignores superimposed discharges
        scale = 1.25 / np.sqrt(max(windows.shape[0], 1)) / 0.6745

        def spread(values: np.ndarray) -> np.ndarray:
            return scale * np.median(np.abs(values - np.median(values, axis=0)), axis=0)

        return cls(spread(smoothed_deviation(windows, fs, settings)), spread(signed_slope(windows, fs, settings)))


def activity_ratio(
    template: np.ndarray, fs: float, settings: MeasureSettings, profile: NoiseProfile | None = None
) -> np.ndarray:
    """Per sample, how far the potential (averaged over ±slope_span_ms) leaves the baseline or its slope rises, as a
    multiple of the threshold: the larger of |deviation| / activity threshold and |slope| / slope threshold.
    With a ``profile`` each threshold is at least ``noise_factor`` standard errors of the template at that
    sample (after Malanda et al. 2016: what is time-locked to the discharges is the MUP, what varies between
    them is background)."""
    # both over ±slope_span_ms, not sample by sample: at 10 kHz a few µV of residual noise per sample would
    # already read as tens of µV/ms, and averaging keeps the slow terminal phases while it thins the noise
    deviation = np.abs(smoothed_deviation(template, fs, settings, baseline_of(template, fs)))
    slope = slope_of(template, fs, settings)
    amplitude_threshold: np.ndarray | float = settings.activity_threshold_uv
    slope_threshold: np.ndarray | float = settings.slope_threshold_uv_per_ms
    if profile is not None:
        amplitude_threshold = np.maximum(amplitude_threshold, settings.profile_factor * profile.deviation_se)
        slope_threshold = np.maximum(slope_threshold, settings.profile_factor * profile.slope_se)
    return np.maximum(deviation / amplitude_threshold, slope / slope_threshold)


def active_mask(
    template: np.ndarray, fs: float, settings: MeasureSettings, profile: NoiseProfile | None = None
) -> np.ndarray:
    """Samples where the potential (averaged over ±slope_span_ms) leaves the baseline by amplitude or by slope."""
    return activity_ratio(template, fs, settings, profile) > 1.0


def onset_and_end(
    template: np.ndarray, fs: float, peak_index: int, settings: MeasureSettings, profile: NoiseProfile | None = None
) -> tuple[int, int]:
    """(onset, end) sample indices of the MUP around ``peak_index`` by the amplitude/slope criterion."""
    active = active_mask(template, fs, settings, profile)
    quiet = max(1, int(round(settings.quiet_ms * 1e-3 * fs)))
    # a run of `quiet` inactive samples starting at i: cumulative sums of the active flags
    counts = np.concatenate([[0], np.cumsum(active)])
    quiet_from = np.flatnonzero(counts[quiet:] - counts[:-quiet] == 0)  # first index of each all-quiet run
    after = quiet_from[quiet_from > peak_index]
    before = quiet_from[quiet_from + quiet - 1 < peak_index]
    end_quiet = int(after[0]) if after.size else len(template)
    onset_quiet_last = int(before[-1] + quiet - 1) if before.size else -1
    segment = np.flatnonzero(active[onset_quiet_last + 1 : end_quiet]) + onset_quiet_last + 1
    if segment.size == 0:
        return peak_index, peak_index
    return int(segment[0]), int(segment[-1])


def subsample_edges(
    template: np.ndarray,
    fs: float,
    onset: int,
    end: int,
    settings: MeasureSettings,
    profile: NoiseProfile | None = None,
) -> tuple[float, float]:
    """(onset, end) in fractional samples: where the activity ratio crosses the threshold between the first
    (last) active sample and its inactive neighbour, by linear interpolation. A 3 ms MUP spans 30 samples at
    10 kHz, so whole samples alone would cost up to ±7 % of its duration."""
    if end <= onset:
        return float(onset), float(end)
    ratio = activity_ratio(template, fs, settings, profile)

    def crossing(active: int, inactive: int) -> float:
        if not 0 <= inactive < ratio.size or ratio[inactive] >= 1.0 or ratio[active] <= 1.0:
            return float(active)
        step = (ratio[active] - 1.0) / (ratio[active] - ratio[inactive])
        return active + (inactive - active) * float(np.clip(step, 0.0, 1.0))

    return crossing(onset, onset - 1), crossing(end, end + 1)


def count_turns(x: np.ndarray, min_step_uv: float) -> np.ndarray:
    """Indices of turns: changes of direction with at least ``min_step_uv`` on either side (Willison's rule).

    Walks the local extrema keeping a running candidate, so a small wiggle never splits a large excursion."""
    x = np.asarray(x, dtype=np.float64)
    if x.size < 3:
        return np.empty(0, dtype=np.int64)
    diff = np.diff(x)
    nonflat = np.flatnonzero(diff != 0)
    if nonflat.size == 0:
        return np.empty(0, dtype=np.int64)
    direction = np.sign(diff[nonflat])
    change = np.flatnonzero(direction[1:] != direction[:-1])
    extrema = np.concatenate([[0], nonflat[change + 1], [x.size - 1]])
    values = x[extrema]
    turns: list[int] = []
    # until the signal has moved by a full step there is no direction yet; then the last extreme is the candidate
    low = high = values[0]
    start = 1
    rising = False
    candidate_index, candidate = extrema[0], values[0]
    for start in range(1, values.size):
        low, high = min(low, values[start]), max(high, values[start])
        if high - low >= min_step_uv:
            rising = values[start] == high
            candidate_index, candidate = extrema[start], values[start]
            break
    else:
        return np.empty(0, dtype=np.int64)
    for index, value in zip(extrema[start + 1 :], values[start + 1 :], strict=True):
        if (value > candidate) == rising and value != candidate:
            candidate_index, candidate = index, value  # the excursion continues further
        elif abs(candidate - value) >= min_step_uv:
            turns.append(int(candidate_index))  # reversal large enough: the candidate was a turn
            rising = not rising
            candidate_index, candidate = index, value
    return np.asarray(turns, dtype=np.int64)


def count_phases(segment: np.ndarray, threshold_uv: float) -> int:
    """Phases of a baseline-corrected segment: runs of one sign whose peak exceeds the threshold."""
    if segment.size == 0:
        return 0
    sign = np.sign(segment)
    boundaries = np.flatnonzero(np.diff(sign) != 0) + 1
    runs = np.split(segment, boundaries)
    significant = [run for run in runs if np.abs(run).max() > threshold_uv]
    if not significant:
        return 0
    # adjacent significant runs of the same sign (a sub-threshold dip between them) are one phase
    signs = np.sign([run[np.argmax(np.abs(run))] for run in significant])
    return int(1 + np.count_nonzero(np.diff(signs) != 0))


def count_satellites(template: np.ndarray, fs: float, onset: int, end: int, settings: MeasureSettings) -> int:
    """Groups of active samples outside [onset - quiet, end + quiet] that exceed the amplitude threshold."""
    deviation = np.abs(template - baseline_of(template, fs))
    quiet = max(1, int(round(settings.quiet_ms * 1e-3 * fs)))
    edge = max(1, int(round(BASELINE_EDGE_MS * 1e-3 * fs)))
    outside = deviation > settings.amplitude_threshold_uv
    outside[max(onset - quiet, 0) : end + quiet + 1] = False
    outside[:edge] = False  # the baseline edges themselves are not potentials
    outside[-edge:] = False
    starts = np.flatnonzero(np.diff(outside.astype(np.int8)) == 1)
    return int(starts.size + (1 if outside[0] else 0))


def noise_adapted(settings: MeasureSettings, noise_uv: float, fs: float) -> MeasureSettings:
    """Thresholds raised to ``noise_factor`` SDs of the template's own noise where that is the larger, so residual
    noise of an averaged template neither lengthens the duration nor adds phases and satellites."""
    if noise_uv <= 0:
        return settings
    span = max(1, int(round(settings.slope_span_ms * 1e-3 * fs)))
    slope_noise = noise_uv * np.sqrt(2.0) / (2 * span) * fs * 1e-3
    smoothed_noise = noise_uv / np.sqrt(2 * span + 1)
    return replace(
        settings,
        amplitude_threshold_uv=max(settings.amplitude_threshold_uv, settings.noise_factor * noise_uv),
        activity_threshold_uv=max(settings.activity_threshold_uv, settings.noise_factor * smoothed_noise),
        slope_threshold_uv_per_ms=max(settings.slope_threshold_uv_per_ms, settings.noise_factor * slope_noise),
    )


def measure_mup(
    template: np.ndarray,
    fs: float,
    peak_index: int | None = None,
    settings: MeasureSettings | None = None,
    noise_uv: float = 0.0,
    profile: NoiseProfile | None = None,
) -> MupMeasures:
    """Measures of ``template`` (µV, sampled at ``fs``) around its main peak (default: the largest |deflection|);
    ``noise_uv`` is the template's residual noise SD (0 for a noise-free waveform), ``profile`` its per-sample
    standard error where the windows it came from are known (real recordings)."""
    settings = noise_adapted(settings or MeasureSettings(), noise_uv, fs)
    template = np.asarray(template, dtype=np.float64)
    baseline = baseline_of(template, fs)
    centred = template - baseline
    if peak_index is None:
        peak_index = int(np.argmax(np.abs(centred)))
    onset, end = onset_and_end(template, fs, peak_index, settings, profile)
    onset_exact, end_exact = subsample_edges(template, fs, onset, end, settings, profile)
    segment = centred[onset : end + 1]
    ms_per_sample = 1e3 / fs
    amplitude = float(segment.max() - segment.min()) if segment.size else 0.0
    area = float(np.trapezoid(np.abs(segment), dx=ms_per_sample)) if segment.size > 1 else 0.0
    thickness = area / amplitude if amplitude > 0 else 0.0
    size_index = 2.0 * np.log10(amplitude / 1000.0) + thickness if amplitude > 0 else float("nan")
    phases = count_phases(segment, settings.amplitude_threshold_uv)
    return MupMeasures(
        amplitude_uv=amplitude,
        duration_ms=(end_exact - onset_exact) * ms_per_sample,
        onset_ms=onset_exact * ms_per_sample,
        end_ms=end_exact * ms_per_sample,
        phases=phases,
        turns=int(count_turns(segment, settings.turn_step_uv).size),
        area_uv_ms=area,
        thickness_ms=thickness,
        size_index=float(size_index),
        satellites=count_satellites(template, fs, onset, end, settings),
        polyphasic=phases >= POLYPHASIC_MIN_PHASES,
        rise_time_ms=rise_time_ms(segment, fs),
    )


def main_peak(template: np.ndarray, fs: float, anchor: int, search_ms: float = 1.0) -> int:
    """Index of the largest |deflection| within ±``search_ms`` of ``anchor`` (the discharge alignment point): in a
    template from a busy recording the largest deflection of the whole window can be background, not the MUP."""
    centred = np.asarray(template, dtype=np.float64) - baseline_of(template, fs)
    half = max(1, int(round(search_ms * 1e-3 * fs)))
    lo, hi = max(anchor - half, 0), min(anchor + half + 1, centred.size)
    return lo + int(np.argmax(np.abs(centred[lo:hi])))


def rise_time_ms(segment: np.ndarray, fs: float) -> float:
    """Time from the positive peak preceding the main negative peak to that peak (ms); a distant MUP rises
    slowly, so clinical acceptance asks for < 0.5 ms (Stålberg et al. 1986). 0 for an empty segment."""
    if segment.size == 0:
        return 0.0
    negative = int(np.argmin(segment))
    positive = int(np.argmax(segment[: negative + 1]))
    return (negative - positive) * 1e3 / fs


@dataclass(frozen=True)
class MeasureSummary:
    """Mean and spread of each measure over the units, the polyphasic share, and flags against the references."""

    n_units: int
    mean: dict[str, float]
    sd: dict[str, float]
    polyphasic_percent: float
    satellite_percent: float
    mean_flags: dict[str, str]
    outliers: dict[str, dict[str, int]]  # measure -> {"low": count, "high": count} of single MUPs outside limits

    def to_dict(self) -> dict[str, object]:
        return {
            "n_units": self.n_units,
            "mean": {k: json_number(v) for k, v in self.mean.items()},
            "sd": {k: json_number(v) for k, v in self.sd.items()},
            "polyphasic_percent": json_number(self.polyphasic_percent, 2),
            "satellite_percent": json_number(self.satellite_percent, 2),
            "mean_flags": dict(self.mean_flags),
            "outliers": {k: dict(v) for k, v in self.outliers.items()},
        }


SUMMARISED = ("amplitude_uv", "duration_ms", "phases", "turns", "area_uv_ms", "thickness_ms", "size_index")


def summarise(
    measures: list[MupMeasures],
    mean_reference: dict[str, ReferenceRange] | None = None,
    individual_reference: dict[str, ReferenceRange] | None = None,
) -> MeasureSummary:
    """Mean/SD over units with flags: the mean against ``mean_reference`` (default ``MEAN_REFERENCE``), each MUP
    against ``individual_reference`` (default ``INDIVIDUAL_REFERENCE``); a muscle's ranges come from
    ``dsp.mup_references``."""
    mean_reference = MEAN_REFERENCE if mean_reference is None else mean_reference
    individual_reference = INDIVIDUAL_REFERENCE if individual_reference is None else individual_reference
    if not measures:
        return MeasureSummary(0, {}, {}, 0.0, 0.0, {}, {})
    table = {name: np.array([getattr(m, name) for m in measures], dtype=np.float64) for name in SUMMARISED}
    mean = {name: float(np.nanmean(values)) for name, values in table.items()}
    sd = {name: float(np.nanstd(values, ddof=1)) if len(measures) > 1 else 0.0 for name, values in table.items()}
    polyphasic = 100.0 * float(np.mean([m.polyphasic for m in measures]))
    satellites = 100.0 * float(np.mean([m.satellites > 0 for m in measures]))
    flags = {name: reference.flag(mean[name]) for name, reference in mean_reference.items() if name in mean}
    if "polyphasic_percent" in mean_reference:
        flags["polyphasic_percent"] = mean_reference["polyphasic_percent"].flag(polyphasic)
    outliers = {}
    for name, reference in individual_reference.items():
        verdicts = [reference.flag(value) for value in table[name]]
        outliers[name] = {"low": verdicts.count("low"), "high": verdicts.count("high")}
    return MeasureSummary(len(measures), mean, sd, polyphasic, satellites, flags, outliers)


def reference_table() -> dict[str, dict[str, dict[str, object]]]:
    """The reference ranges as JSON-safe data (for reports and the GUI)."""
    return {
        "mean": {name: asdict(reference) for name, reference in MEAN_REFERENCE.items()},
        "individual": {name: asdict(reference) for name, reference in INDIVIDUAL_REFERENCE.items()},
    }
