"""EMG features computed for many windows and channels at once.

``compute_features(windows (W, C, S), fs, names)`` returns one (W, C) array per feature name. Every feature is
vectorised over windows x channels; intermediate results (absolute values, first differences, the spectrum and
its cumulative sum) are computed at most once per call and shared by the features that need them.

Units: samples in µV, so amplitude features are in µV (VAR, SM0, band powers in µV², spectral densities in
µV²/Hz), frequencies in Hz, counts (ZC, SSC, WAMP) per window. Definitions (docs/dsp.md has the references):

- MAV mean|x|, IAV sum|x|, RMS, VAR (population variance, ddof=0), WL sum|x[i+1]-x[i]|,
  DASDV sqrt(mean((x[i+1]-x[i])²)), LD exp(mean(ln(1+|x|))) (the +1 keeps silent samples finite; as in LibEMG).
- ZC: x[i]·x[i+1] < 0 and |x[i]-x[i+1]| >= zc_threshold. SSC: (x[i]-x[i-1])·(x[i]-x[i+1]) >= ssc_threshold
  (Hudgins 1993). WAMP: |x[i]-x[i+1]| > wamp_threshold.
- Hjorth (1970): activity var(x), mobility sqrt(var(x')/var(x)), complexity mobility(x')/mobility(x), with x' the
  first difference.
- Spectral features use one rectangular-window periodogram per window (one-sided PSD in µV²/Hz, no detrending,
  no zero padding; SM0 = mean(x²) by Parseval): MNF sum(f·P)/sum(P); MDF the frequency splitting the power in
  half, linearly interpolated along the cumulative spectrum; PKF the frequency of the largest PSD bin above DC;
  SMk sum(f^k·P)·df; FInsm5 (Dimitrov 2006) M(-1)/M(5) over ``fins_band_hz``; BP_<lo>_<hi> sum(P)·df over
  lo <= f < hi.
- DWT_A<L>, DWT_D<k>: energy (sum of squared coefficients divided by S) of the ``wavelet`` decomposition to
  ``dwt_level`` levels (pywt.wavedec); D1 is the finest (fs/4..fs/2) band.
- ``log_<NAME>`` is ln(max(NAME, 1e-6)): amplitude features vary over decades, models prefer their logarithm.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pywt
from scipy import fft as sp_fft


@dataclass(frozen=True)
class FeatureParams:
    """Thresholds and bands. Thresholds are in the windows' units (µV; SSC's in µV²)."""

    zc_threshold: float = 0.0
    ssc_threshold: float = 0.0
    wamp_threshold: float = 10.0
    fins_band_hz: tuple[float, float] = (20.0, 450.0)
    wavelet: str = "db4"
    dwt_level: int = 4


DEFAULT_PARAMS = FeatureParams()
_LOG_FLOOR = 1e-6
_BLOCK_BYTES = 1 << 20
DEFAULT_BANDS_HZ = ((20, 50), (50, 100), (100, 200), (200, 450))


class _Windows:
    """The windows plus lazily computed intermediates that several features share."""

    def __init__(self, windows: np.ndarray, fs: float, params: FeatureParams) -> None:
        self.x = windows
        self.fs = fs
        self.params = params
        self.n_samples = windows.shape[-1]

    @cached_property
    def abs(self) -> np.ndarray:
        return np.abs(self.x)

    @cached_property
    def diff(self) -> np.ndarray:
        return np.diff(self.x, axis=-1)

    @cached_property
    def abs_diff(self) -> np.ndarray:
        return np.abs(self.diff)

    @cached_property
    def mean_square(self) -> np.ndarray:
        # pairwise float32 summation (~1e-7 relative); einsum with a float64 accumulator costs 3x as much
        return np.square(self.x).sum(axis=-1).astype(np.float64) / self.n_samples

    @cached_property
    def variance(self) -> np.ndarray:
        return np.var(self.x, axis=-1, dtype=np.float64)

    @cached_property
    def diff_variance(self) -> np.ndarray:
        return np.var(self.diff, axis=-1, dtype=np.float64)

    @cached_property
    def frequencies(self) -> np.ndarray:
        return np.fft.rfftfreq(self.n_samples, 1.0 / self.fs)

    @cached_property
    def bin_width(self) -> float:
        return self.fs / self.n_samples

    @cached_property
    def psd(self) -> np.ndarray:
        """One-sided periodogram (W, C, S//2+1) in µV²/Hz."""
        spectrum = sp_fft.rfft(self.x, axis=-1)
        # squares in the spectrum's own precision (float32 for float32 windows), then one pass to float64 that
        # also scales to a density and folds the negative frequencies onto the positive ones (DC and Nyquist
        # have no mirror): several times cheaper than casting real and imaginary parts first
        power = spectrum.real**2 + spectrum.imag**2
        scale = np.full(power.shape[-1], 2.0 / (self.fs * self.n_samples))
        scale[0] /= 2.0
        if self.n_samples % 2 == 0:
            scale[-1] /= 2.0
        return np.multiply(power, scale, dtype=np.float64)

    @cached_property
    def total_power(self) -> np.ndarray:
        return self.psd.sum(axis=-1)

    def moment(self, order: float, band_hz: tuple[float, float] | None = None) -> np.ndarray:
        frequencies = self.frequencies
        in_band = np.ones_like(frequencies, dtype=bool) if band_hz is None else _band_mask(frequencies, *band_hz)
        if order < 0:
            in_band &= frequencies > 0
        weights = np.where(in_band, np.power(np.where(in_band, frequencies, 1.0), order), 0.0)
        return (self.psd @ weights) * self.bin_width

    @cached_property
    def dwt_energies(self) -> dict[str, np.ndarray]:
        level = self.params.dwt_level
        max_level = pywt.dwt_max_level(self.n_samples, pywt.Wavelet(self.params.wavelet).dec_len)
        if level > max_level:
            raise ValueError(
                f"{self.n_samples}-sample windows allow at most {max_level} {self.params.wavelet} levels, "
                f"not {level}: use longer windows or a lower dwt_level"
            )
        coefficients = pywt.wavedec(self.x, self.params.wavelet, level=level, axis=-1)
        names = [f"DWT_A{level}"] + [f"DWT_D{k}" for k in range(level, 0, -1)]
        return {
            name: np.einsum("wcs,wcs->wc", c, c, dtype=np.float64) / self.n_samples
            for name, c in zip(names, coefficients, strict=True)
        }


def _band_mask(frequencies: np.ndarray, low_hz: float, high_hz: float) -> np.ndarray:
    return (frequencies >= low_hz) & (frequencies < high_hz)


def _count(mask: np.ndarray) -> np.ndarray:
    """True values along the last axis (a bool sum with a 32-bit accumulator: about twice as fast as
    count_nonzero or a default bool sum)."""
    return mask.sum(axis=-1, dtype=np.int32).astype(np.int64)


def _zero_crossings(w: _Windows) -> np.ndarray:
    crossing = (w.x[..., :-1] * w.x[..., 1:]) < 0
    if w.params.zc_threshold > 0:
        crossing &= w.abs_diff >= w.params.zc_threshold
    return _count(crossing)


def _slope_sign_changes(w: _Windows) -> np.ndarray:
    # (x[i]-x[i-1]) * (x[i]-x[i+1]) = -diff[i-1] * diff[i] >= threshold
    product = w.diff[..., :-1] * w.diff[..., 1:]
    return _count(product <= -w.params.ssc_threshold)


_MDF_BLOCK = 16


def _median_frequency(w: _Windows) -> np.ndarray:
    """First bin whose cumulative power reaches half the total, interpolated linearly from the bin before it.

    A full cumulative sum along short rows is slow in numpy (it cannot vectorise across the running sum), so the
    half-power bin is found in two steps: cumulative sums of 16-bin block totals pick the block, then a cumulative
    sum inside that one block per row picks the bin.
    """
    psd = w.psd
    n_bins = psd.shape[-1]
    rows = psd.reshape(-1, n_bins)
    n_rows = rows.shape[0]
    n_blocks = -(-n_bins // _MDF_BLOCK)
    blocks = np.zeros((n_rows, n_blocks * _MDF_BLOCK))
    blocks[:, :n_bins] = rows
    blocks = blocks.reshape(n_rows, n_blocks, _MDF_BLOCK)
    block_cumulative = np.cumsum(blocks.sum(axis=-1), axis=-1)
    half = block_cumulative[:, -1] / 2.0
    row = np.arange(n_rows)
    block = np.minimum(np.count_nonzero(block_cumulative < half[:, np.newaxis], axis=-1), n_blocks - 1)
    before_block = np.where(block > 0, block_cumulative[row, block - 1], 0.0)
    cumulative = before_block[:, np.newaxis] + np.cumsum(blocks[row, block], axis=-1)
    offset = np.minimum(np.count_nonzero(cumulative < half[:, np.newaxis], axis=-1), _MDF_BLOCK - 1)
    first = np.minimum(block * _MDF_BLOCK + offset, n_bins - 1)
    c_hi = cumulative[row, offset]
    c_lo = np.where(offset > 0, cumulative[row, offset - 1], before_block)
    f_hi = w.frequencies[first]
    f_lo = np.where(first > 0, w.frequencies[first - 1], 0.0)
    step = c_hi - c_lo
    fraction = np.divide(half - c_lo, step, out=np.zeros_like(step), where=step > 0)
    return (f_lo + fraction * (f_hi - f_lo)).reshape(psd.shape[:-1])


def _peak_frequency(w: _Windows) -> np.ndarray:
    return w.frequencies[1:][np.argmax(w.psd[..., 1:], axis=-1)]


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros_like(numerator, dtype=np.float64), where=denominator > 0)


def _hjorth_mobility(w: _Windows) -> np.ndarray:
    return np.sqrt(_ratio(w.diff_variance, w.variance))


def _hjorth_complexity(w: _Windows) -> np.ndarray:
    second_diff_variance = np.var(np.diff(w.diff, axis=-1), axis=-1, dtype=np.float64)
    diff_mobility = np.sqrt(_ratio(second_diff_variance, w.diff_variance))
    return _ratio(diff_mobility, _hjorth_mobility(w))


def _fins_band(w: _Windows) -> tuple[float, float]:
    low, high = w.params.fins_band_hz
    return low, min(high, w.fs / 2)


_FEATURES: dict[str, Callable[[_Windows], np.ndarray]] = {
    # sums in the windows' own precision: numpy's pairwise summation keeps float32 to ~1e-7 relative here, and
    # casting every sample to float64 would cost more than the sum
    "MAV": lambda w: w.abs.mean(axis=-1).astype(np.float64),
    "IAV": lambda w: w.abs.sum(axis=-1).astype(np.float64),
    "RMS": lambda w: np.sqrt(w.mean_square),
    "VAR": lambda w: w.variance,
    "WL": lambda w: w.abs_diff.sum(axis=-1).astype(np.float64),
    "DASDV": lambda w: np.sqrt(np.einsum("wcs,wcs->wc", w.diff, w.diff, dtype=np.float64) / (w.n_samples - 1)),
    "LD": lambda w: np.exp(np.log1p(w.abs).mean(axis=-1, dtype=np.float64)),
    "ZC": _zero_crossings,
    "SSC": _slope_sign_changes,
    "WAMP": lambda w: _count(w.abs_diff > w.params.wamp_threshold),
    "HJORTH_ACT": lambda w: w.variance,
    "HJORTH_MOB": _hjorth_mobility,
    "HJORTH_COMP": _hjorth_complexity,
    "MNF": lambda w: _ratio(w.psd @ w.frequencies, w.total_power),
    "MDF": _median_frequency,
    "PKF": _peak_frequency,
    "SM0": lambda w: w.moment(0),
    "SM1": lambda w: w.moment(1),
    "SM2": lambda w: w.moment(2),
    "FInsm5": lambda w: _ratio(w.moment(-1, _fins_band(w)), w.moment(5, _fins_band(w))),
}

_BAND_NAME = re.compile(r"^BP_(\d+(?:\.\d+)?)_(\d+(?:\.\d+)?)$")
_DWT_NAME = re.compile(r"^DWT_(A|D)(\d+)$")


def band_power_name(low_hz: float, high_hz: float) -> str:
    return f"BP_{low_hz:g}_{high_hz:g}"


FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "hudgins_td": ("MAV", "WL", "ZC", "SSC"),
    "time_domain": ("MAV", "IAV", "RMS", "VAR", "WL", "DASDV", "LD", "ZC", "SSC", "WAMP"),
    "hjorth": ("HJORTH_ACT", "HJORTH_MOB", "HJORTH_COMP"),
    "spectral": ("MNF", "MDF", "PKF", "SM0", "SM1", "SM2", "FInsm5"),
    "band_powers": tuple(band_power_name(low, high) for low, high in DEFAULT_BANDS_HZ),
    "wavelet": ("DWT_A4", "DWT_D4", "DWT_D3", "DWT_D2", "DWT_D1"),
    "fatigue": ("MNF", "MDF", "FInsm5", "RMS"),
}

# What NeuroFusionNet fuses per channel: amplitude on a log scale, shape (counts, Hjorth) and spectrum. All are
# defined at any sampling rate and window length the monitor uses (no wavelet levels, no fixed bands that a
# 200 Hz armband could not reach).
MODEL_FEATURES: tuple[str, ...] = (
    "log_MAV",
    "log_RMS",
    "log_WL",
    "ZC",
    "SSC",
    "WAMP",
    "HJORTH_MOB",
    "HJORTH_COMP",
    "MNF",
    "MDF",
    "PKF",
)
FEATURE_GROUPS["model"] = MODEL_FEATURES


def expand_names(names: Iterable[str]) -> list[str]:
    """Feature names with any group name (a key of FEATURE_GROUPS) replaced by its members, duplicates dropped."""
    if isinstance(names, str):
        names = [names]
    expanded: list[str] = []
    for name in names:
        for member in FEATURE_GROUPS.get(name, (name,)):
            if member not in expanded:
                expanded.append(member)
    return expanded


def available_features() -> list[str]:
    return [*_FEATURES, "BP_<low>_<high>", "DWT_A<level>", "DWT_D<k>", "log_<NAME>", *FEATURE_GROUPS]


def _compute_one(name: str, w: _Windows) -> np.ndarray:
    if name in _FEATURES:
        return _FEATURES[name](w)
    if name.startswith("log_"):
        return np.log(np.maximum(_compute_one(name[4:], w), _LOG_FLOOR))
    band = _BAND_NAME.match(name)
    if band:
        low, high = float(band.group(1)), float(band.group(2))
        if not low < high:
            raise ValueError(f"band {name}: low edge must be below the high edge")
        return w.psd[..., _band_mask(w.frequencies, low, high)].sum(axis=-1) * w.bin_width
    if _DWT_NAME.match(name):
        energies = w.dwt_energies
        if name not in energies:
            raise ValueError(f"{name} is not among {list(energies)} (dwt_level={w.params.dwt_level})")
        return energies[name]
    raise ValueError(f"unknown feature {name!r}; known: {', '.join(available_features())}")


def compute_features(
    windows: np.ndarray, fs: float, names: Iterable[str], params: FeatureParams = DEFAULT_PARAMS
) -> dict[str, np.ndarray]:
    """Computes the named features (or groups) for ``windows`` (W, C, S); returns {name: (W, C) array}.

    Counts come back as integers, everything else as float64.
    """
    windows = np.asarray(windows)
    if windows.ndim != 3:
        raise ValueError(f"windows must be (n_windows, n_channels, n_samples), got shape {windows.shape}")
    if windows.shape[-1] < 3:
        raise ValueError(f"windows need at least 3 samples, got {windows.shape[-1]}")
    if not fs > 0:
        raise ValueError(f"sampling rate must be positive, got {fs}")
    if not np.issubdtype(windows.dtype, np.floating):
        windows = windows.astype(np.float64)
    names = expand_names(names)
    # Work through large batches a few windows at a time: the intermediates of one block stay in cache (and
    # below the allocator's mmap threshold), which makes a 100-window batch ~4x faster than in one piece.
    per_block = max(1, _BLOCK_BYTES // max(1, windows[0].nbytes))
    if len(windows) <= per_block:
        context = _Windows(windows, float(fs), params)
        return {name: _compute_one(name, context) for name in names}
    blocks = [
        compute_features(windows[start : start + per_block], fs, names, params)
        for start in range(0, len(windows), per_block)
    ]
    return {name: np.concatenate([block[name] for block in blocks]) for name in names}


def feature_matrix(
    windows: np.ndarray,
    fs: float,
    names: Iterable[str] = MODEL_FEATURES,
    params: FeatureParams = DEFAULT_PARAMS,
) -> np.ndarray:
    """The named features stacked as (W, C, F) float32, F in the order of ``expand_names(names)``."""
    features = compute_features(windows, fs, names, params)
    return np.stack([np.asarray(v, dtype=np.float32) for v in features.values()], axis=-1)
