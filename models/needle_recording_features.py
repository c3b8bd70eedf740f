"""Recording-level statistics of a needle EMG recording, of the kind a neurophysiologist reads.

One vector per recording (``recording_feature_vector``), computed from the signal at ``NEEDLE_FS`` after the model's
conditioning (``needle_features.condition``: 20 Hz high-pass, 50/60 Hz combs), in four groups:

- ``spectrum``: the recording's Welch spectrum (2048-point segments) in third-octave bands from 100 Hz to
  3.2 kHz (medians over bins: mains lines do not move them), relative to the mean band level, so the group is
  blind to gain; with spectral slope, median and mean frequency. Myopathic MUPs are short and spiky (more power
  high up), reinnervated units long (more power low down) (Brief; Stålberg & Daube, Clinical Neurophysiology of
  Disorders of Muscle and Neuromuscular Junction 2003).
- ``amplitude``: log percentiles of |x| and of a 25 ms RMS envelope, and their ratios to the median (shape,
  blind to gain), envelope coefficient of variation and the fraction of near-silent envelope frames (sparse
  firing of few large units in neuropathy vs a full pattern in myopathy).
- ``spikes``: peaks of the 300 Hz high-passed signal above 5 robust SDs: rate, log amplitude percentiles, the
  width at half height and the rise time of each (short in myopathy, long in neuropathy; Brief).
- ``turns``: Willison's turns-amplitude cloud (Willison 1964; Stålberg et al. 1983) per 100 ms epoch, turns
  with at least 100 µV on either side: median and spread of turns/s and of mean amplitude between turns, and
  the ratio of the two (turns per amplitude: high in myopathy, low in neuropathy).

Every group but ``spectrum`` carries amplitude in µV: gain enters them as an offset of the log values, which
training jitters (``needle_features.perturbed``) rather than removes, since amplitude is part of the diagnosis.
Rates 4-32 kHz: only bands below 3.2 kHz are read, so an 8 kHz recording fills every feature.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfilt, welch

from dsp.resample import NEEDLE_FS

THIRD_OCTAVE_EDGES_HZ = tuple(float(v) for v in 100.0 * 2.0 ** (np.arange(16) / 3.0))  # 100 Hz .. 3.2 kHz
EPOCH_S = 0.1
ENVELOPE_S = 0.025
TURN_STEP_UV = 100.0  # Willison 1964
SPIKE_SD = 5.0
_SPIKE_HIGHPASS = butter(2, 300.0, btype="highpass", fs=NEEDLE_FS, output="sos")


def _band_names() -> list[str]:
    edges = THIRD_OCTAVE_EDGES_HZ
    return [f"spectrum_rel_{int(lo)}_{int(hi)}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]


RECORDING_FEATURE_NAMES: tuple[str, ...] = tuple(
    _band_names()
    + ["spectrum_slope", "spectrum_median_khz", "spectrum_mean_khz"]
    + [f"amp_log_p{p}" for p in (50, 90, 99, 99.9)]
    + ["amp_ratio_p90", "amp_ratio_p99", "amp_ratio_p999"]
    + ["env_log_p10", "env_log_p50", "env_log_p90", "env_ratio_p90_p10", "env_cov", "env_quiet_fraction"]
    + ["spike_rate", "spike_log_amp_p25", "spike_log_amp_p50", "spike_log_amp_p90", "spike_width_ms_p50",
       "spike_width_ms_p90", "spike_rise_ms_p50"]
    + ["turns_log_p50", "turns_log_iqr", "turns_amp_log_p50", "turns_amp_log_iqr", "turns_per_log_amp",
       "turns_log_envelope_ratio"]
)


def _spectrum(x: np.ndarray) -> list[float]:
    freqs, psd = welch(x, fs=NEEDLE_FS, nperseg=2048)
    edges = THIRD_OCTAVE_EDGES_HZ
    levels = np.array([np.log(np.median(psd[(freqs >= lo) & (freqs < hi)]) + 1e-9)
                       for lo, hi in zip(edges[:-1], edges[1:], strict=True)])
    centres = np.log2(np.sqrt(np.array(edges[:-1]) * np.array(edges[1:])))
    slope = float(np.polyfit(centres, levels, 1)[0])
    usable = (freqs >= edges[0]) & (freqs < edges[-1])
    spectrum, f = psd[usable], freqs[usable]
    cumulative = np.cumsum(spectrum)
    median = float(f[np.searchsorted(cumulative, cumulative[-1] / 2)])
    mean = float((spectrum * f).sum() / (spectrum.sum() + 1e-12))
    return list(levels - levels.mean()) + [slope, median / 1000.0, mean / 1000.0]


def _amplitude(x: np.ndarray) -> list[float]:
    absx = np.abs(x)
    p50, p90, p99, p999 = (np.percentile(absx, q) + 1e-3 for q in (50, 90, 99, 99.9))
    frame = int(ENVELOPE_S * NEEDLE_FS)
    n = len(x) // frame
    envelope = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1)) + 1e-3
    e10, e50, e90 = np.percentile(envelope, [10, 50, 90])
    quiet = float(np.mean(envelope < 2.0 * e10))
    return [np.log(p50), np.log(p90), np.log(p99), np.log(p999), np.log(p90 / p50), np.log(p99 / p50),
            np.log(p999 / p50), np.log(e10), np.log(e50), np.log(e90), np.log(e90 / e10),
            float(envelope.std() / envelope.mean()), quiet]


def _spikes(x: np.ndarray) -> list[float]:
    y = sosfilt(_SPIKE_HIGHPASS, x)
    absy = np.abs(y)
    noise = np.median(absy) / 0.6745 + 1e-3
    above = absy > SPIKE_SD * noise
    peaks = np.flatnonzero(above[1:-1] & (absy[1:-1] >= absy[:-2]) & (absy[1:-1] > absy[2:])) + 1
    gap = int(0.002 * NEEDLE_FS)
    if len(peaks):
        peaks = peaks[np.concatenate([[True], np.diff(peaks) > gap])]
    seconds = len(x) / NEEDLE_FS
    if len(peaks) < 3:
        return [len(peaks) / seconds / 100.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    amplitudes = np.log(absy[peaks])
    # width at half height and rise time of the peak in the conditioned (not 300 Hz) signal: the MUP's own shape
    half = int(0.01 * NEEDLE_FS)
    widths, rises = [], []
    for peak in peaks:
        lo, hi = max(0, peak - half), min(len(x), peak + half)
        segment = np.abs(x[lo:hi])
        centre = peak - lo
        level = segment[centre] / 2.0
        left = centre - np.argmax(segment[centre::-1] < level) if np.any(segment[:centre + 1] < level) else 0
        right = centre + np.argmax(segment[centre:] < level) if np.any(segment[centre:] < level) else len(segment)
        widths.append((right - left) / NEEDLE_FS * 1000.0)
        tenth = segment[centre] / 10.0
        start = centre - np.argmax(segment[centre::-1] < tenth) if np.any(segment[:centre + 1] < tenth) else 0
        rises.append((centre - start) / NEEDLE_FS * 1000.0)
    return [len(peaks) / seconds / 100.0, *np.percentile(amplitudes, [25, 50, 90]),
            float(np.median(widths)), float(np.percentile(widths, 90)), float(np.median(rises))]


def _turns(x: np.ndarray) -> list[float]:
    """Turns-amplitude cloud (``dsp.interference.analyse_interference``: 100 ms epochs, 100 µV turns)."""
    from dsp.interference import analyse_interference

    pattern = analyse_interference(x, NEEDLE_FS, epoch_ms=EPOCH_S * 1000.0, step_uv=TURN_STEP_UV)
    turns = np.log1p(pattern.turns_per_s)
    amplitude = np.log1p(pattern.mean_amplitude_uv)
    finite = amplitude[np.isfinite(amplitude)]
    amp50 = float(np.median(finite)) if finite.size else 0.0
    amp_iqr = float(np.subtract(*np.percentile(finite, [75, 25]))) if finite.size else 0.0
    t50 = float(np.median(turns))
    return [t50, float(np.subtract(*np.percentile(turns, [75, 25]))), amp50, amp_iqr, t50 - amp50,
            float(np.log1p(pattern.median_envelope_uv) - t50)]


def recording_feature_vector(conditioned: np.ndarray) -> np.ndarray:
    """``RECORDING_FEATURE_NAMES`` of a conditioned signal at ``NEEDLE_FS`` (``needle_features.condition``)."""
    x = np.asarray(conditioned, dtype=np.float64)
    values = _spectrum(x) + _amplitude(x) + _spikes(x) + _turns(x)
    return np.nan_to_num(np.array(values, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
