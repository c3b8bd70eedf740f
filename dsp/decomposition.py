"""Offline motor-unit decomposition of high-density surface EMG by convolutive blind source separation.

The method of Negro et al. 2016 (J Neural Eng 13:026027), with the conventions of MUedit (Avrillon et al. 2024)
and openhdemg (Valli et al. 2024):

1. causal band-pass (20-500 Hz), the same filter the live path runs, so live and offline sources are one function;
2. extension: each channel with its R - 1 previous samples (R ~ 1000 / channels), which turns the convolutive
   mixture of motor-unit action potentials into an (over-determined) instantaneous one;
3. whitening of the extended signal, eigenvalues below the mean of the smallest half dropped (noise);
4. per start: fixed-point iterations (FastICA, one unit) with a contrast function, orthogonalised against every
   vector already found, started from the sample of largest activity (sum of squares of the whitened signal);
5. refinement in the manner of CKC (Holobar & Zazula 2007): the separation vector becomes the mean whitened
   sample at the detected discharges, repeated while the coefficient of variation of the inter-spike intervals
   falls;
6. discharges: local maxima of the normalised source s|s| within +-half window split in two by k-means, the
   higher cluster kept; the silhouette (SIL) of that split is the unit's quality;
7. units with SIL < 0.9 dropped; of two units sharing > 30 % of their discharges (rate of agreement, +-0.5 ms,
   after aligning their lag) only the one with the higher SIL is kept.

Every unit carries its separation filter in the extended (unwhitened) signal space, a threshold and a scale, so
``dsp.decomposition_live`` applies it causally to a stream and gets the same discharges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import signal

CONTRASTS = ("skew", "logcosh", "cube")
#: calibration samples per extended dimension below which the extension is shortened: with 12 per dimension (6 s of
#: a simulated 64-channel grid at R = 16) every start converged onto one isolated sample; 20 (10 s) found units
SAMPLES_PER_DIMENSION = 20


@dataclass(frozen=True)
class DecompositionSettings:
    extension: int | None = None  # delays per channel (R); None: ceil(1000 / channels)
    low_hz: float = 20.0
    high_hz: float = 500.0
    filter_order: int = 2
    starts: int = 64  # fixed-point runs, each from the most active sample not used yet
    batch: int = 16  # starts iterated together (one pass over the data per iteration for all of them)
    max_iterations: int = 40  # fixed-point iterations per start
    tolerance: float = 1e-4  # 1 - |<w_new, w>| at convergence
    max_refinements: int = 10
    contrast: str = "skew"  # G(x) = x^3/3 (Negro 2016); "logcosh"; "cube" (G = x^4/4)
    sil_threshold: float = 0.9
    min_discharges: int = 10
    peak_half_window_s: float = 0.010  # a discharge is the largest value within +-10 ms (rates below 50 Hz)
    duplicate_roa: float = 0.3
    duplicate_tolerance_s: float = 0.0005
    duplicate_max_lag_s: float = 0.025  # extension shifts a duplicate by up to R samples and more
    seed: int = 0
    #: BLAS and OpenMP threads while decomposing (None: the libraries' default). One: the products are many and
    #: small (k starts x K rows) and k-means runs on a few hundred heights, so threads mostly wait on each other; on
    #: the 2-core project machine under load, 12 s / 32 starts took 29.6 s CPU with the defaults, 4.9 s with one
    threads: int | None = 1

    def extension_for(self, n_channels: int, n_samples: int) -> int:
        """R: as set, else ceil(1000 / channels) capped so that the calibration holds at least
        ``SAMPLES_PER_DIMENSION`` samples per extended dimension (fewer, and a start can separate a single sample)."""
        if self.extension:
            return int(self.extension)
        return max(1, min(math.ceil(1000 / n_channels), n_samples // (SAMPLES_PER_DIMENSION * n_channels)))

    def validate(self) -> None:
        if self.contrast not in CONTRASTS:
            raise ValueError(f"unknown contrast {self.contrast!r}: use one of {', '.join(CONTRASTS)}")
        if not 0 < self.low_hz < self.high_hz:
            raise ValueError(f"band {self.low_hz:g}-{self.high_hz:g} Hz is not a band")
        if self.starts < 1 or self.max_iterations < 1 or self.batch < 1:
            raise ValueError("starts, batch and max_iterations must be at least 1")
        if self.extension is not None and self.extension < 1:
            raise ValueError(f"extension must be at least 1, not {self.extension}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1 (or None), not {self.threads}")


@dataclass
class MotorUnit:
    """One unit: its separation filter (source(t) = sum_{c,k} filter[c, k] * x[c, t - (R-1) + k] + bias on the
    band-passed signal x), the scale and threshold of its normalised source s|s|/scale, and what calibration found."""

    filter: np.ndarray  # (C, R) float64
    bias: float
    scale: float  # mean of s|s| at the calibration discharges: normalised discharges sit near 1
    threshold: float  # on the normalised s|s|: the midpoint of the two k-means centroids
    sil: float
    discharges: np.ndarray  # sample indices in the calibration data
    whitened_vector: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    @property
    def n_discharges(self) -> int:
        return int(self.discharges.size)


@dataclass
class Decomposition:
    fs: float
    n_channels: int
    extension: int
    settings: DecompositionSettings
    units: list[MotorUnit]
    sos: np.ndarray  # the causal band-pass the filters expect their input through
    candidates_tried: int = 0
    rejected_sil: int = 0
    duplicates_removed: int = 0

    @property
    def filters(self) -> np.ndarray:
        """(U, C, R) separation filters."""
        if not self.units:
            return np.zeros((0, self.n_channels, self.extension))
        return np.stack([unit.filter for unit in self.units])

    def discharge_times(self) -> list[np.ndarray]:
        return [unit.discharges / self.fs for unit in self.units]


# ----- signal helpers shared with the live path --------------------------------------------------------------------
def bandpass_sos(fs: float, settings: DecompositionSettings) -> np.ndarray:
    high = min(settings.high_hz, 0.45 * fs)
    return signal.butter(settings.filter_order, [settings.low_hz, high], btype="bandpass", fs=fs, output="sos")


def filter_state_at(sos: np.ndarray, first_sample: np.ndarray) -> np.ndarray:
    """(sections, 2, C) band-pass state as if the signal had sat at its first sample for ever: an electrode offset
    then gives no step transient (which would be the data's largest 'source' and pull every start towards it)."""
    return signal.sosfilt_zi(sos)[:, :, None] * np.asarray(first_sample, dtype=np.float64)[None, None, :]


def bandpass(sos: np.ndarray, data: np.ndarray) -> np.ndarray:
    """(N, C) float32: the causal band-pass of a whole recording, started as the live path starts a stream."""
    data = np.asarray(data, dtype=np.float64)
    if data.shape[0] == 0:
        return np.zeros(data.shape, dtype=np.float32)
    filtered, _ = signal.sosfilt(sos, data, axis=0, zi=filter_state_at(sos, data[0]))
    return filtered.astype(np.float32)


def extend(filtered: np.ndarray, extension: int) -> np.ndarray:
    """(C * R, N) float32: row c * R + k holds x[c, t - (R-1) + k] (zeros before the start)."""
    n_samples, n_channels = filtered.shape
    padded = np.zeros((n_channels, n_samples + extension - 1), dtype=np.float32)
    padded[:, extension - 1 :] = filtered.T
    windows = np.lib.stride_tricks.sliding_window_view(padded, n_samples, axis=1)  # (C, R, N)
    return windows.reshape(n_channels * extension, n_samples)


def normalised_source(source: np.ndarray, scale: float) -> np.ndarray:
    """s|s| / scale: large positive discharges, noise squeezed towards 0 (MUedit's convention)."""
    return source * np.abs(source) / scale


def local_peak_mask(values: np.ndarray, half_window: int) -> np.ndarray:
    """For ``values`` (..., L), a mask over the centres [half_window, L - half_window) whose value is positive,
    above every value in the half window before and at least every value in the half window after: a flat top
    counts once, at its first sample. The live detector applies the same rule with the half window after each
    sample as its delay, so live and offline discharges are the same samples."""
    windows = np.lib.stride_tricks.sliding_window_view(values, 2 * half_window + 1, axis=-1)
    centre = windows[..., half_window]
    before = windows[..., :half_window].max(axis=-1)
    after = windows[..., half_window + 1 :].max(axis=-1)
    return (centre > 0) & (centre > before) & (centre >= after)


def peak_candidates(normalised: np.ndarray, half_window: int) -> np.ndarray:
    """Indices of the local peaks of a whole source (``local_peak_mask``, nothing before the start or after the end)."""
    padded = np.full(normalised.size + 2 * half_window, -np.inf, dtype=np.float64)
    padded[half_window : half_window + normalised.size] = normalised
    return np.flatnonzero(local_peak_mask(padded, half_window))


def split_discharges(heights: np.ndarray, seed: int = 0) -> tuple[np.ndarray, float, float]:
    """k-means (2 classes) over candidate heights: (mask of the higher class, threshold between the centroids, SIL).

    SIL as in MUedit: (between - within) / max(within, between), with the squared distances of the discharge class
    to its own centroid (within) and to the other centroid (between)."""
    from sklearn.cluster import KMeans  # here: importing scikit-learn takes a second the GUI need not wait for

    if heights.size < 3:
        return np.zeros(heights.size, dtype=bool), math.inf, 0.0
    model = KMeans(n_clusters=2, n_init=3, random_state=seed).fit(heights.reshape(-1, 1))
    centroids = model.cluster_centers_.ravel()
    high = int(np.argmax(centroids))
    spikes = model.labels_ == high
    within = float(((heights[spikes] - centroids[high]) ** 2).sum())
    between = float(((heights[spikes] - centroids[1 - high]) ** 2).sum())
    sil = (between - within) / max(within, between) if max(within, between) > 0 else 0.0
    return spikes, float(centroids.mean()), sil


# ----- discharge comparison ------------------------------------------------------------------------------------------
def match_discharges(a: np.ndarray, b: np.ndarray, tolerance: int) -> int:
    """Discharges of ``a`` paired one-to-one with one of ``b`` within +-tolerance samples (nearest first)."""
    a = np.sort(np.asarray(a, dtype=np.int64))
    b = np.sort(np.asarray(b, dtype=np.int64))
    if a.size == 0 or b.size == 0:
        return 0
    position = np.clip(np.searchsorted(b, a), 1, b.size - 1) if b.size > 1 else np.zeros(a.size, np.int64)
    left = b[position - 1] if b.size > 1 else b[position]
    right = b[position]
    nearest = np.where(np.abs(a - left) <= np.abs(a - right), position - 1 if b.size > 1 else position, position)
    close = np.abs(a - b[nearest]) <= tolerance
    return int(np.unique(nearest[close]).size)


def best_lag(a: np.ndarray, b: np.ndarray, max_lag: int) -> int:
    """The lag L (samples) maximising the discharges of ``a`` that have one of ``b`` at exactly a + L."""
    a = np.sort(np.asarray(a, dtype=np.int64))
    b = np.sort(np.asarray(b, dtype=np.int64))
    if a.size == 0 or b.size == 0:
        return 0
    lo = np.searchsorted(b, a - max_lag)
    hi = np.searchsorted(b, a + max_lag, side="right")
    counts = hi - lo
    if counts.sum() == 0:
        return 0
    owner = np.repeat(np.arange(a.size), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    differences = b[np.repeat(lo, counts) + offsets] - a[owner]
    histogram = np.bincount(differences + max_lag, minlength=2 * max_lag + 1)
    # the lag +-1 sample around each candidate counts too, so a jittered pair is not split across two bins
    smoothed = np.convolve(histogram, np.ones(3), mode="same")
    best = np.flatnonzero(smoothed == smoothed.max())
    return int(best[np.argmax(histogram[best])]) - max_lag  # a tie goes to the lag with most exact pairs


@dataclass(frozen=True)
class Agreement:
    common: int
    only_first: int
    only_second: int
    lag: int  # samples added to the first train to align it with the second

    @property
    def rate_of_agreement(self) -> float:
        total = self.common + self.only_first + self.only_second
        return self.common / total if total else 0.0

    @property
    def sensitivity(self) -> float:
        """Share of the second (reference) train's discharges found in the first."""
        return self.common / (self.common + self.only_second) if self.common + self.only_second else 0.0

    @property
    def precision(self) -> float:
        return self.common / (self.common + self.only_first) if self.common + self.only_first else 0.0


def agreement(found: np.ndarray, reference: np.ndarray, tolerance: int, max_lag: int) -> Agreement:
    """Rate of agreement of two discharge trains (sample indices) after aligning their lag (within +-max_lag):
    common / (common + only found + only reference), a pair counting within +-tolerance samples."""
    found = np.asarray(found, dtype=np.int64)
    reference = np.asarray(reference, dtype=np.int64)
    lag = best_lag(found, reference, max_lag) if max_lag > 0 else 0
    common = match_discharges(found + lag, reference, tolerance)
    return Agreement(common, found.size - common, reference.size - common, lag)


# ----- the decomposition -------------------------------------------------------------------------------------------
def _contrast(source: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """g(s) and the mean of g'(s) over time, per row of ``source`` (k, N), for the contrast G."""
    if name == "skew":  # G = s^3 / 3
        return source * source, 2.0 * source.mean(axis=1)
    if name == "cube":  # G = s^4 / 4
        return source**3, 3.0 * (source * source).mean(axis=1)
    tanh = np.tanh(source)
    return tanh, (1.0 - tanh * tanh).mean(axis=1)


def _whiten(extended: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(whitened (K, N) float32, whitening matrix (K, C*R), mean (C*R,)), keeping the K eigenvalues above the mean of
    the smallest half (MUedit's regularisation). PCA whitening: MUedit's ZCA matrix is this one rotated back by the
    eigenvectors, and the fixed point (starts taken from the whitened data, Gram-Schmidt deflation, a contrast on
    w'z) is equivariant to that rotation, so both give the same units; here every pass costs K rows instead of C*R
    (673 instead of 1024 on the 64-channel file)."""
    n_samples = extended.shape[1]
    mean = extended.mean(axis=1, dtype=np.float64)
    covariance = (extended @ extended.T).astype(np.float64) / n_samples - np.outer(mean, mean)
    values, vectors = np.linalg.eigh(covariance)
    floor = values[: max(1, values.size // 2)].mean()
    keep = values > max(floor, 1e-12 * values.max())
    values, vectors = values[keep], vectors[:, keep]
    whitening = (vectors / np.sqrt(values)).T
    matrix = whitening.astype(np.float32)
    whitened = matrix @ extended
    whitened -= (matrix @ mean.astype(np.float32))[:, None]
    return whitened, whitening, mean


class _Detector:
    def __init__(self, fs: float, settings: DecompositionSettings) -> None:
        self.half_window = max(1, int(round(settings.peak_half_window_s * fs)))
        self.settings = settings

    def detect(self, source: np.ndarray) -> tuple[np.ndarray, float, float, float]:
        """(discharges, scale, threshold, SIL) of a source; the sign is chosen so that discharges are positive."""
        if _skewness(source) < 0:
            source = -source
        squared = source * np.abs(source)
        candidates = peak_candidates(squared, self.half_window)
        heights = squared[candidates]
        spikes, threshold, sil = split_discharges(heights, self.settings.seed)
        discharges = candidates[spikes]
        scale = float(heights[spikes].mean()) if spikes.any() else 1.0
        return discharges, scale, threshold / scale, sil


def _skewness(source: np.ndarray) -> float:
    centred = source - source.mean()
    return float((centred**3).mean())


def _coefficient_of_variation(discharges: np.ndarray) -> float:
    if discharges.size < 3:
        return math.inf
    intervals = np.diff(discharges)
    return float(intervals.std() / intervals.mean())


def decompose(data: np.ndarray, fs: float, settings: DecompositionSettings | None = None) -> Decomposition:
    """Motor units of ``data`` ((N, C) µV, raw): their filters, discharges (sample indices) and SIL."""
    settings = settings or DecompositionSettings()
    settings.validate()
    if settings.threads is None:
        return _decompose(data, fs, settings)
    import sklearn.cluster  # noqa: F401  (k-means' OpenMP runtime must be loaded for the limit to reach it)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=settings.threads):
        return _decompose(data, fs, settings)


def _decompose(data: np.ndarray, fs: float, settings: DecompositionSettings) -> Decomposition:
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[0] < 2 * fs:
        raise ValueError(f"need (samples, channels) data of at least 2 s, got shape {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError("the calibration data holds NaN or infinite samples")
    n_samples, n_channels = data.shape
    extension = settings.extension_for(n_channels, n_samples)
    sos = bandpass_sos(fs, settings)
    filtered = bandpass(sos, data)
    extended = extend(filtered, extension)
    whitened, whitening, mean = _whiten(extended)
    del extended
    detector = _Detector(fs, settings)
    rng = np.random.default_rng(settings.seed)

    activity = np.einsum("kn,kn->n", whitened, whitened)
    basis = np.zeros((whitened.shape[0], 0))
    found: list[MotorUnit] = []
    rejected = 0
    for first in range(0, settings.starts, settings.batch):
        count = min(settings.batch, settings.starts - first)
        initial = np.empty((count, whitened.shape[0]))
        for row in range(count):
            start = int(np.argmax(activity))
            activity[max(0, start - detector.half_window) : start + detector.half_window + 1] = 0.0
            initial[row] = whitened[:, start]
        bad = ~np.isfinite(initial).all(axis=1) | (np.linalg.norm(initial, axis=1) == 0)
        initial[bad] = rng.standard_normal((int(bad.sum()), whitened.shape[0]))
        vectors = _fixed_point(whitened, initial, basis, settings)
        basis = np.column_stack([basis, vectors.T])
        for w in vectors:
            unit = _refine(whitened, w, detector, settings)
            if unit is None or unit.sil < settings.sil_threshold or unit.n_discharges < settings.min_discharges:
                rejected += 1
                continue
            unit.filter, unit.bias = _to_extended_space(unit.whitened_vector, whitening, mean, n_channels, extension)
            found.append(unit)
            # its discharges are explained: later starts come from other units' activity (fewer duplicates)
            near = unit.discharges[:, None] + np.arange(-extension, extension + 1)[None, :]
            activity[np.clip(near, 0, activity.size - 1)] = 0.0
    kept = remove_duplicates(found, fs, settings)
    kept.sort(key=lambda unit: unit.discharges[0] if unit.n_discharges else math.inf)  # by recruitment
    return Decomposition(fs, n_channels, extension, settings, kept, sos, settings.starts, rejected,
                         len(found) - len(kept))  # fmt: skip


def _fixed_point(
    whitened: np.ndarray, initial: np.ndarray, basis: np.ndarray, settings: DecompositionSettings
) -> np.ndarray:
    """(k, K) separation vectors from k starts at once: one pass over the whitened data serves all k (a matrix
    product instead of k vector products). Each is kept orthogonal to ``basis`` and to the rows before it
    (Gram-Schmidt in start order), i.e. deflation as in Negro 2016, run side by side."""
    n_samples = whitened.shape[1]

    def orthonormal(vectors: np.ndarray) -> np.ndarray:
        if basis.shape[1]:
            vectors = vectors - (vectors @ basis) @ basis.T
        q, r = np.linalg.qr(vectors.T)
        return (q * np.where(np.diag(r) < 0, -1.0, 1.0)).T  # Gram-Schmidt keeping each vector's direction

    w = orthonormal(initial)
    active = np.ones(w.shape[0], dtype=bool)
    for _ in range(settings.max_iterations):
        # converged starts sit out: the products cost in proportion to the starts still moving
        source = (w[active].astype(np.float32) @ whitened).astype(np.float64)
        g, g_prime = _contrast(source, settings.contrast)
        updated = w.copy()
        updated[active] = (g.astype(np.float32) @ whitened.T).astype(np.float64) / n_samples - g_prime[:, None] * w[
            active
        ]
        updated = orthonormal(updated)
        change = np.abs(1.0 - np.abs(np.einsum("ij,ij->i", updated, w)))
        w = updated
        active = change >= settings.tolerance
        if not active.any():
            break
    return w


def _refine(
    whitened: np.ndarray, w: np.ndarray, detector: _Detector, settings: DecompositionSettings
) -> MotorUnit | None:
    source = w.astype(np.float32) @ whitened
    if _skewness(source) < 0:
        w, source = -w, -source
    discharges, scale, threshold, sil = detector.detect(source)
    variation = _coefficient_of_variation(discharges)
    for _ in range(settings.max_refinements):
        if discharges.size < 2:
            break
        candidate = whitened[:, discharges].mean(axis=1, dtype=np.float64)
        candidate /= max(np.linalg.norm(candidate), 1e-12)
        candidate_source = candidate.astype(np.float32) @ whitened
        new = detector.detect(candidate_source)
        new_variation = _coefficient_of_variation(new[0])
        if not new_variation < variation:
            break
        w, (discharges, scale, threshold, sil), variation = candidate, new, new_variation
    if _skewness(w.astype(np.float32) @ whitened) < 0:
        w = -w
    if discharges.size == 0:
        return None
    return MotorUnit(np.zeros(0), 0.0, scale, threshold, sil, discharges, w)


def _to_extended_space(
    w: np.ndarray, whitening: np.ndarray, mean: np.ndarray, n_channels: int, extension: int
) -> tuple[np.ndarray, float]:
    """source = w . V (x_ext - mean) = f . x_ext + bias with f = V^T w."""
    vector = whitening.T @ w
    return vector.reshape(n_channels, extension), float(-(vector @ mean))


def match_units(
    old: list[np.ndarray], new: list[np.ndarray], fs: float, settings: DecompositionSettings
) -> dict[int, int]:
    """new unit -> old unit, for two unit sets' discharge trains over the same samples: pairs sharing more than
    ``duplicate_roa`` of their discharges (the duplicate rule), one-to-one by the highest rates of agreement."""
    from scipy.optimize import linear_sum_assignment

    if not old or not new:
        return {}
    tolerance = max(1, int(round(settings.duplicate_tolerance_s * fs)))
    max_lag = int(round(settings.duplicate_max_lag_s * fs))
    roa = np.array([[agreement(n, o, tolerance, max_lag).rate_of_agreement for o in old] for n in new])
    rows, columns = linear_sum_assignment(-roa)
    return {int(r): int(c) for r, c in zip(rows, columns, strict=True) if roa[r, c] > settings.duplicate_roa}


def remove_duplicates(units: list[MotorUnit], fs: float, settings: DecompositionSettings) -> list[MotorUnit]:
    """Of units sharing more than ``duplicate_roa`` of their discharges (after lag alignment), the highest SIL."""
    tolerance = max(1, int(round(settings.duplicate_tolerance_s * fs)))
    max_lag = int(round(settings.duplicate_max_lag_s * fs))
    order = sorted(range(len(units)), key=lambda index: -units[index].sil)
    kept: list[MotorUnit] = []
    for index in order:
        unit = units[index]
        duplicate = any(
            agreement(unit.discharges, other.discharges, tolerance, max_lag).rate_of_agreement > settings.duplicate_roa
            for other in kept
        )
        if not duplicate:
            kept.append(unit)
    return kept


def sources(decomposition: Decomposition, data: np.ndarray, block: int = 8192) -> np.ndarray:
    """(U, N) normalised sources s|s|/scale of every unit over ``data`` (raw µV), as the live path computes them;
    extended ``block`` samples at a time, so a long recording never needs its whole extended copy."""
    filtered = bandpass(decomposition.sos, data)
    n_samples, extension = filtered.shape[0], decomposition.extension
    padded = np.vstack([np.zeros((extension - 1, filtered.shape[1]), np.float32), filtered])
    flat = decomposition.filters.reshape(len(decomposition.units), -1).astype(np.float32)
    bias = np.array([unit.bias for unit in decomposition.units], dtype=np.float32)
    scales = np.array([unit.scale for unit in decomposition.units], dtype=np.float32)
    out = np.empty((len(decomposition.units), n_samples), dtype=np.float32)
    for start in range(0, n_samples, block):
        stop = min(n_samples, start + block)
        windows = np.lib.stride_tricks.sliding_window_view(padded[start : stop + extension - 1], extension, axis=0)
        raw = windows.reshape(stop - start, -1) @ flat.T + bias  # rows in dsp.decomposition.extend's order
        out[:, start:stop] = (raw * np.abs(raw) / scales).T
    return out


def detect(decomposition: Decomposition, data: np.ndarray) -> list[np.ndarray]:
    """Each unit's discharges (sample indices) over ``data`` (raw µV) with its calibrated filter and threshold: what
    the live detector finds over the same samples fed from rest."""
    normalised = sources(decomposition, data)
    half_window = max(1, int(round(decomposition.settings.peak_half_window_s * decomposition.fs)))
    found = []
    for unit, values in zip(decomposition.units, normalised, strict=True):
        peaks = peak_candidates(values, half_window)
        found.append(peaks[values[peaks] > unit.threshold])
    return found


def match_to_reference(
    found: list[np.ndarray], reference: list[np.ndarray], tolerance: int, max_lag: int
) -> list[tuple[int, Agreement]]:
    """For each reference train, the found train (index, agreement) with the highest rate of agreement; index -1
    and an empty agreement when nothing was found."""
    matches = []
    for train in reference:
        scored = [(index, agreement(candidate, train, tolerance, max_lag)) for index, candidate in enumerate(found)]
        if not scored:
            matches.append((-1, Agreement(0, 0, int(len(train)), 0)))
            continue
        matches.append(max(scored, key=lambda pair: pair[1].rate_of_agreement))
    return matches
