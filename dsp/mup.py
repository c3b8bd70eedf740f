"""Motor-unit potentials from needle EMG at low effort: detection, alignment, clustering into templates, firing.

Pipeline per channel (the multi-MUP approach of Stålberg et al. 1996, with scikit-learn doing the clustering;
docs/needle-emg.md has the figures):
0. at needle rates the mains (50/60 Hz and harmonics) is fitted and subtracted (``dsp.mup_mains``);
1. the analysis signal is high-passed at 5 Hz, zero-phase and without notches; a causal 300 Hz high-pass
   sharpens spikes for detection only, as clinical trigger filters do;
2. spikes are peaks of |detection signal| above ``threshold_sd`` robust noise SDs (``scipy.signal.find_peaks``,
   one per refractory interval);
3. each spike's detection snippet (±``feature_ms``) is reduced by PCA and clustered by a Gaussian mixture whose
   number of components minimises BIC;
4. members are realigned by cross-correlation on their cluster's median waveform; a cluster breaking the
   refractory period is split in two, look-alike clusters whose union obeys it are merged, and discharges
   locked at a fixed lag to a larger unit (the same unit caught at another peak) are removed;
5. the template is the median of the aligned windows without those a superimposed discharge disturbs, after
   the discharges of every unit found have been peeled off each window (their templates subtracted at their
   times, twice over), so overlapping units no longer blur it or raise its noise;
6. firing rate is 1 / median inter-discharge interval, trimmed of double and stray intervals, with the ISI CoV.
Optionally (``MupSettings.residual_passes``, off by default) steps 2-4 run again on what the units found leave.
Optionally (``MupSettings.template_match``, off by default) each unit's template is slid over the whole signal
before step 5 to add the discharges it matches (docs/needle-emg.md: little gain on the tuning half).
Optionally (``MupSettings.mixture_split_components``, off by default) a cluster that breaks the refractory period
is split into up to N parts when the parts keep more regularly firing discharges as units than the cluster does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import signal

from dsp.filters import highpass
from dsp.mup_measures import NoiseProfile, baseline_of, json_number

NEEDLE_RATE_HZ = 4000.0  # from here up a recording is taken for needle EMG


@dataclass(frozen=True)
class MupSettings:
    analysis_highpass_hz: float = 5.0
    detection_highpass_hz: float = 300.0
    threshold_sd: float = 4.0  # tuned on the healthy tuning people of the clinical set (was 6: 2 MUPs/recording)
    surface_threshold_sd: float = 6.0  # below NEEDLE_RATE_HZ
    min_threshold_uv: float = 30.0
    refractory_ms: float = 3.0
    window_before_ms: float = 20.0
    window_after_ms: float = 25.0
    feature_ms: float = 1.5
    realign_ms: float = 2.0
    align_core_ms: float = 6.0
    merge_correlation: float = 0.9
    merge_amplitude_ratio: float = 1.3
    merge_max_lag_ms: float = 6.0
    max_components: int = 10
    pca_components: int = 5
    min_discharges: int = 20
    min_template_uv: float = 50.0
    lock_tolerance_ms: float = 0.3
    min_isi_ms: float = 20.0
    max_refractory_violations: float = 0.1
    min_pruned_share: float = 0.5  # a cluster keeps a unit only if this share of it obeys the refractory period
    superposition_sd: float = 6.0
    peel_iterations: int = 2
    residual_passes: int = 0  # clusterings of what the units found so far leave unexplained
    remove_mains: bool = True  # fitted mains sinusoids subtracted at needle rates (dsp.mup_mains)
    max_isi_ms: float = 250.0
    seed: int = 0
    template_match: bool = False  # each unit's template slid over the whole recording to add matching discharges
    match_correlation: float = 0.9  # normalised correlation of the ±align_core_ms core with the unit's template
    match_amplitude_ratio: float = 1.3  # least-squares scale of the template onto the window within [1/r, r]
    # a cluster breaking the refractory period may be split into up to this many parts (0: off; off by default, the
    # simulator at moderate effort says the parts are mostly not single units: docs/needle-emg.md)
    mixture_split_components: int = 0
    # a part of such a split counts as a unit only when this share of its intervals is regular (firing_regularity;
    # on the simulator 0.6 keeps all 59 isolated units and 16 of 92 junk ones); 0 counts any refractory-clean part
    split_min_regularity: float = 0.6


@dataclass
class MotorUnit:
    """One motor unit on one channel: its template (µV; ``peak_index`` is the alignment point, at or next to the
    main peak) and its firing."""

    channel: int
    fs: float
    template: np.ndarray
    peak_index: int
    discharges: np.ndarray  # sample index of each discharge's alignment point in the recording
    firing_rate_hz: float
    isi_cov: float
    first_discharge_s: float
    template_noise_uv: float = 0.0
    extras: dict[str, float] = field(default_factory=dict)
    noise_profile: NoiseProfile | None = None  # per-sample standard error of the template (from its windows)

    @property
    def n_discharges(self) -> int:
        return int(self.discharges.size)

    def to_dict(self, with_template: bool = False) -> dict[str, object]:
        out: dict[str, object] = {
            "channel": self.channel,
            "n_discharges": self.n_discharges,
            "firing_rate_hz": json_number(self.firing_rate_hz, 3),
            "isi_cov": json_number(self.isi_cov),
            "first_discharge_s": json_number(self.first_discharge_s),
            "template_noise_uv": json_number(self.template_noise_uv, 3),
            **self.extras,
        }
        if with_template:
            out["template_uv"] = [round(float(v), 2) for v in self.template]
            out["peak_index"] = self.peak_index
        return out


def without_mains(x: np.ndarray, fs: float, settings: MupSettings | None = None) -> np.ndarray:
    """(n, C) ``x`` with its mains fitted and subtracted (``dsp.mup_mains``) at needle rates; as given below them
    (surface EMG, whose analysis was validated without it) or when ``settings.remove_mains`` is off."""
    settings = settings or MupSettings()
    if not settings.remove_mains or fs < NEEDLE_RATE_HZ:
        return x
    from dsp.mup_mains import remove_mains

    return remove_mains(x, fs)


def analysis_signal(x: np.ndarray, fs: float, settings: MupSettings | None = None) -> np.ndarray:
    """(n, C) copy of ``x`` (n, C) high-passed at a few hertz for MUP measures, forward and backward, no notch.

    MUP analysis works on a recorded epoch, so the filter runs zero-phase: a causal high-pass leaves an
    undershoot after every large MUP that the onset/end criterion would count as duration. Notch filters ring
    on MUPs and cut the bands their slow phases live in (clinical practice avoids them in needle EMG); mains is
    not time-locked to discharges, so the median template cancels it instead."""
    settings = settings or MupSettings()
    sos = highpass(fs, settings.analysis_highpass_hz, x.shape[1], order=2).sos
    return signal.sosfiltfilt(sos, x, axis=0)


def detection_signal(x: np.ndarray, fs: float, settings: MupSettings | None = None) -> np.ndarray:
    settings = settings or MupSettings()
    cutoff = min(settings.detection_highpass_hz, 0.4 * fs)
    return highpass(fs, cutoff, x.shape[1]).process(x).astype(np.float64)


def robust_sd(x: np.ndarray) -> float:
    """Noise SD from the median absolute value (Quiroga et al. 2004): spikes barely move it."""
    return float(np.median(np.abs(x - np.median(x))) / 0.6745)


def detect_spikes(detection: np.ndarray, fs: float, settings: MupSettings) -> tuple[np.ndarray, float]:
    """Peak indices of |detection| (1-D) above the threshold, at most one per refractory interval."""
    # a needle's noise floor is low and its spikes sharp; below needle rates (surface EMG) the same threshold
    # catches the tails of the interference pattern and mixtures pass for units (114 on the 64-channel HD-EMG)
    factor = settings.threshold_sd if fs >= NEEDLE_RATE_HZ else settings.surface_threshold_sd
    threshold = max(factor * robust_sd(detection), settings.min_threshold_uv)
    distance = max(1, int(round(settings.refractory_ms * 1e-3 * fs)))
    peaks, _ = signal.find_peaks(np.abs(detection), height=threshold, distance=distance)
    return peaks, threshold


def _snippets(x: np.ndarray, centres: np.ndarray, before: int, after: int) -> np.ndarray:
    offsets = np.arange(-before, after + 1)
    return x[centres[:, None] + offsets[None, :]]


def _cluster(features: np.ndarray, settings: MupSettings) -> np.ndarray:
    """Labels from a Gaussian mixture on the PCA scores, the number of components chosen by BIC."""
    from sklearn.decomposition import PCA  # ~0.8 s to import: only when there is something to cluster
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    n = features.shape[0]
    if n < 2 * settings.min_discharges:
        return np.zeros(n, dtype=np.int64)
    n_pca = min(settings.pca_components, features.shape[1], n - 1)
    best, best_bic = None, np.inf
    # tiny matrices: BLAS threads only fight the other processes on the machine (10x slower on 2 busy cores)
    with threadpool_limits(1):
        scores = PCA(n_components=n_pca, random_state=settings.seed).fit_transform(features)
        for k in range(1, min(settings.max_components, n // settings.min_discharges) + 1):
            model = GaussianMixture(k, covariance_type="full", random_state=settings.seed, reg_covar=1e-3)
            model.fit(scores)
            bic = model.bic(scores)
            if bic < best_bic:
                best, best_bic = model, bic
        return best.predict(scores) if best is not None else np.zeros(n, dtype=np.int64)


def _realign(windows: np.ndarray, centre: int, max_shift: int, core_half: int, iterations: int = 3) -> np.ndarray:
    """Shift per window (within ±max_shift) that best matches the median of the aligned windows over
    ``centre ± core_half``, by cross-correlation; repeated so that the reference sharpens as members line up
    (polyphasic MUPs are first caught at different peaks of the same waveform)."""
    shifts = np.arange(-max_shift, max_shift + 1)
    lo, hi = max(centre - core_half, max_shift), min(centre + core_half, windows.shape[1] - max_shift)
    best = np.zeros(windows.shape[0], dtype=np.int64)
    for _ in range(iterations):
        rows = np.arange(windows.shape[0])[:, None]
        aligned = windows[rows, (np.arange(lo, hi)[None, :] + best[:, None])]
        core = np.median(aligned, axis=0)
        core = core - core.mean()
        scores = np.stack([windows[:, lo + s : hi + s] @ core for s in shifts], axis=1)
        updated = shifts[np.argmax(scores, axis=1)]
        # keep the reference where most members already sit: re-centre on the median shift
        updated = np.clip(updated - int(np.median(updated)), -max_shift, max_shift)
        if np.array_equal(updated, best):
            break
        best = updated
    return best


def _firing(discharges: np.ndarray, fs: float, settings: MupSettings) -> tuple[float, float]:
    if discharges.size < 3:
        return 0.0, float("nan")
    intervals = np.diff(np.sort(discharges)) / fs * 1e3
    usable = intervals[(intervals >= settings.min_isi_ms) & (intervals <= settings.max_isi_ms)]
    if usable.size < 2:
        return 0.0, float("nan")
    # discharges lost to superposition leave double intervals and stray detections short ones; keeping the
    # intervals within 0.5-1.5x the running median trims both (ISI CoV 0.1-0.2 puts few real ones outside)
    typical = float(np.median(usable))
    single = usable
    for _ in range(5):
        within = usable[(usable > 0.5 * typical) & (usable < 1.5 * typical)]
        if within.size < 2:
            break
        single, typical = within, float(np.median(within))
    return 1e3 / typical, float(np.std(single) / np.mean(single))


def locked_discharges(reference: np.ndarray, train: np.ndarray, fs: float, settings: MupSettings) -> np.ndarray:
    """Mask of ``train`` discharges that follow a ``reference`` discharge at one fixed lag (±``lock_tolerance_ms``):
    the reference unit seen through another of its peaks, not a unit of its own."""
    window = int(round(settings.window_after_ms * 1e-3 * fs))
    tolerance = max(1, int(round(settings.lock_tolerance_ms * 1e-3 * fs)))
    position = np.clip(np.searchsorted(reference, train), 1, max(reference.size - 1, 1))
    left = reference[np.clip(position - 1, 0, reference.size - 1)]
    right = reference[np.clip(position, 0, reference.size - 1)]
    lag = np.where(np.abs(train - left) <= np.abs(train - right), train - left, train - right)
    near = np.abs(lag) <= window
    if np.count_nonzero(near) < settings.min_discharges // 2:
        return np.zeros(train.size, dtype=bool)
    values, counts = np.unique(lag[near], return_counts=True)
    # the most common lag, counting its ±tolerance neighbours
    support = np.array([counts[np.abs(values - v) <= tolerance].sum() for v in values])
    typical = values[np.argmax(support)]
    if support.max() < settings.min_discharges // 2:
        return np.zeros(train.size, dtype=bool)
    return near & (np.abs(lag - typical) <= tolerance)


def clean_template(windows: np.ndarray, settings: MupSettings) -> tuple[np.ndarray, np.ndarray, float]:
    """(template, kept mask, template noise SD in µV): median of the windows after dropping those that a
    superimposed discharge of another unit disturbs (largest deviation from the median beyond
    ``superposition_sd`` robust SDs of all deviations)."""
    median = np.median(windows, axis=0)
    residual = windows - median
    noise = robust_sd(residual.ravel()) or 1.0
    worst = np.abs(residual).max(axis=1)
    kept = worst <= settings.superposition_sd * noise
    if np.count_nonzero(kept) < max(settings.min_discharges // 2, windows.shape[0] // 4):
        kept = worst <= np.quantile(worst, 0.5)  # crowded recording: keep the cleaner half
    template = np.median(windows[kept], axis=0)
    # the median of n samples is ~1.25x noisier than their mean; superimposed activity of other units makes the
    # spread of the windows overstate that, so the template's own edges (before and after the MUP) bound it
    spread_noise = 1.25 * robust_sd((windows[kept] - median).ravel()) / np.sqrt(np.count_nonzero(kept))
    edge = max(2, windows.shape[1] // 20)
    head, tail = template[:edge], template[-edge:]
    edges = np.concatenate([head - np.median(head), tail - np.median(tail)])
    return template, kept, float(min(spread_noise, np.sqrt(np.mean(edges**2))))


def decompose_channel(
    analysis: np.ndarray, detection: np.ndarray, fs: float, channel: int = 0, settings: MupSettings | None = None
) -> list[MotorUnit]:
    """Motor units of one channel from its analysis and detection signals (1-D, same length)."""
    settings = settings or MupSettings()
    before = int(round(settings.window_before_ms * 1e-3 * fs))
    after = int(round(settings.window_after_ms * 1e-3 * fs))
    shift = max(1, int(round(settings.realign_ms * 1e-3 * fs)))
    candidates = _clustered_trains(analysis, detection, fs, settings)
    for _ in range(settings.residual_passes):
        if not candidates:
            break
        # the units found so far subtracted from the signal: spikes they hid or blurred into mixtures stand out,
        # and a second clustering on what remains finds the smaller units of a moderate contraction
        windows = [_snippets(analysis, members, before, after) for members in candidates]
        model, _ = _model_of(analysis.size, fs, candidates, windows, before, after, settings)
        residual = analysis - model
        residual_detection = detection_signal(residual[:, None], fs, settings)[:, 0]
        found = _clustered_trains(residual, residual_detection, fs, settings, analysis_for_templates=analysis)
        if not found:
            break
        candidates = _merge_similar(candidates + found, analysis, fs, before, after, shift, settings)
        candidates = _remove_locked(candidates, analysis, fs, before, after, settings)
    if settings.template_match and candidates:
        candidates = _matched_trains(candidates, analysis, fs, before, after, settings)
    windows = [_snippets(analysis, members, before, after) for members in candidates]
    for _ in range(settings.peel_iterations):
        model, shapes = _model_of(analysis.size, fs, candidates, windows, before, after, settings)
        windows = _peeled_windows(analysis - model, candidates, shapes, before, after)
    units: list[MotorUnit] = []
    for members, unit_windows in zip(candidates, windows, strict=True):
        template, clean, template_noise = clean_template(unit_windows, settings)
        if np.ptp(template) < settings.min_template_uv:
            continue
        rate, cov = _firing(members, fs, settings)
        units.append(
            MotorUnit(
                channel=channel,
                fs=fs,
                template=template,
                peak_index=before,
                discharges=members,
                firing_rate_hz=rate,
                isi_cov=cov,
                first_discharge_s=float(members[0] / fs),
                template_noise_uv=template_noise,
                extras={"template_discharges": int(np.count_nonzero(clean))},
                noise_profile=NoiseProfile.from_windows(unit_windows[clean], fs),
            )
        )
    return units


def _clustered_trains(
    analysis: np.ndarray,
    detection: np.ndarray,
    fs: float,
    settings: MupSettings,
    analysis_for_templates: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Discharge trains (aligned samples, one array per unit) from spikes of ``detection`` clustered by shape:
    detection, clustering, realignment, split, merge and removal of locked discharges. Alignment and templates use
    ``analysis_for_templates`` where given (the full signal while spikes come from a residual)."""
    templates_from = analysis if analysis_for_templates is None else analysis_for_templates
    before = int(round(settings.window_before_ms * 1e-3 * fs))
    after = int(round(settings.window_after_ms * 1e-3 * fs))
    feature = int(round(settings.feature_ms * 1e-3 * fs))
    shift = max(1, int(round(settings.realign_ms * 1e-3 * fs)))
    core_half = int(round(settings.align_core_ms * 1e-3 * fs))
    margin_lo, margin_hi = before + shift, after + shift
    peaks, _ = detect_spikes(detection, fs, settings)
    peaks = peaks[(peaks >= margin_lo) & (peaks < analysis.size - margin_hi)]
    if peaks.size < settings.min_discharges:
        return []
    labels = _cluster(_snippets(detection, peaks, feature, feature), settings)
    candidates: list[np.ndarray] = []  # aligned discharge samples per cluster
    for label in np.unique(labels):
        members = peaks[labels == label]
        if members.size < settings.min_discharges:
            continue
        windows = _snippets(analysis, members, before + shift, after + shift)
        members = np.sort(members + _realign(windows, before + shift, shift, core_half))
        candidates.extend(_split_interleaved(members, analysis, fs, core_half, settings))
    candidates = _merge_similar(candidates, templates_from, fs, before, after, shift, settings)
    candidates = _remove_locked(candidates, templates_from, fs, before, after, settings)
    # removing another unit's discharges sharpens the templates, so look-alike halves of one unit now match
    return _merge_similar(candidates, templates_from, fs, before, after, shift, settings)


def _matched_trains(
    candidates: list[np.ndarray], analysis: np.ndarray, fs: float, before: int, after: int, settings: MupSettings
) -> list[np.ndarray]:
    """Each unit's train with the discharges its template finds anywhere in the recording: the clustering keeps
    only spikes that cleared the detection threshold and fell in the unit's cluster, so a unit that also fires
    below threshold or inside a mixture gets few discharges. Largest unit first; a match needs the normalised
    correlation of the ±``align_core_ms`` core and the template's least-squares scale within bounds, must not
    overlap a discharge already assigned (to any unit) and keeps the unit's train free of refractory breaks."""
    core = int(round(settings.align_core_ms * 1e-3 * fs))
    min_isi = int(round(settings.min_isi_ms * 1e-3 * fs))
    lo, hi = max(before, core), analysis.size - max(after, core) - 1
    order = sorted(
        range(len(candidates)),
        key=lambda k: -np.ptp(np.median(_snippets(analysis, candidates[k], core, core), axis=0)),
    )
    taken = np.zeros(analysis.size, dtype=bool)  # samples within a core of a discharge already assigned
    for members in candidates:
        for centre in members:
            taken[max(0, centre - core) : centre + core + 1] = True
    result: list[np.ndarray] = list(candidates)
    width = 2 * core + 1
    for k in order:
        members = candidates[k]
        template = np.median(_snippets(analysis, members, core, core), axis=0)
        template = template - template.mean()
        norm_t = float(np.linalg.norm(template)) or 1.0
        # sliding dot product and window energy (mean removed) for every alignment point at once
        dots = signal.correlate(analysis, template, mode="valid")  # index i: window starting at i
        sums = np.convolve(analysis, np.ones(width), mode="valid")
        squares = np.convolve(analysis**2, np.ones(width), mode="valid")
        energy = np.maximum(squares - sums**2 / width, 1e-12)
        corr = dots / (np.sqrt(energy) * norm_t)
        scale = dots / norm_t**2
        centres = np.arange(corr.size) + core
        ok = (corr >= settings.match_correlation) & (scale >= 1 / settings.match_amplitude_ratio)
        ok &= (scale <= settings.match_amplitude_ratio) & (centres >= lo) & (centres < hi) & ~taken[centres]
        # away from the unit's own discharges by a refractory interval
        own = np.zeros(analysis.size, dtype=bool)
        for centre in members:
            own[max(0, centre - min_isi + 1) : centre + min_isi] = True
        ok &= ~own[centres]
        if not ok.any():
            continue
        score = np.where(ok, corr, 0.0)
        peaks, _ = signal.find_peaks(score, height=settings.match_correlation, distance=max(1, min_isi))
        added = peaks + core
        if added.size == 0:
            continue
        union = np.sort(np.concatenate([members, added]))
        if refractory_violations(union, fs, settings) > settings.max_refractory_violations:
            continue
        result[k] = union
        for centre in added:
            taken[max(0, centre - core) : centre + core + 1] = True
    return result


def _model_of(
    size: int,
    fs: float,
    candidates: list[np.ndarray],
    windows: list[np.ndarray],
    before: int,
    after: int,
    settings: MupSettings,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The signal the found units explain (each unit's baseline-free template at each of its discharges) and those
    templates, one per unit: the residual pass and peeling subtract the model, peeling adds each unit's own back."""
    offsets = np.arange(-before, after + 1)
    shapes = []
    model = np.zeros(size)
    for members, unit_windows in zip(candidates, windows, strict=True):
        template, _, _ = clean_template(unit_windows, settings)
        shape = template - baseline_of(template, fs)
        shapes.append(shape)
        np.add.at(model, (members[:, None] + offsets[None, :]).ravel(), np.tile(shape, members.size))
    return model, shapes


def _peeled_windows(
    residual: np.ndarray, candidates: list[np.ndarray], shapes: list[np.ndarray], before: int, after: int
) -> list[np.ndarray]:
    """Each unit's windows with every other discharge of every unit found (its own neighbours included) taken out:
    ``residual`` is the signal less the found units' model (``_model_of``: each unit's current template ``shapes``
    at its time), so superimposed discharges of the units found no longer disturb the median, giant MUPs among
    overlapping discharges keep their slow tails and their templates' noise falls."""
    # the model holds each window's own centred discharge too: add it back, so only the others are removed
    pairs = zip(candidates, shapes, strict=True)
    return [_snippets(residual, members, before, after) + shape for members, shape in pairs]


def _best_lag(a: np.ndarray, b: np.ndarray, max_shift: int) -> tuple[int, float]:
    """(lag, normalised correlation) maximising the match of ``b`` shifted by lag onto ``a``."""
    a = a - a.mean()
    b = b - b.mean()
    lags = signal.correlation_lags(a.size, b.size, mode="full")
    corr = signal.correlate(a, b, mode="full")
    allowed = np.abs(lags) <= max_shift
    best = int(np.argmax(np.where(allowed, corr, -np.inf)))
    norm = float(np.linalg.norm(a) * np.linalg.norm(b)) or 1.0
    return int(lags[best]), float(corr[best] / norm)


def _split_interleaved(
    members: np.ndarray, analysis: np.ndarray, fs: float, core_half: int, settings: MupSettings
) -> list[np.ndarray]:
    """Splits a cluster whose train breaks the refractory period (two look-alike units) in two by a mixture on
    its aligned waveforms, when both halves then obey it; otherwise returns it whole."""
    if refractory_violations(members, fs, settings) <= settings.max_refractory_violations:
        return [members]
    if members.size < 2 * settings.min_discharges:
        return [members]
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    windows = _snippets(analysis, members, core_half, core_half)
    scores = PCA(n_components=min(settings.pca_components, members.size - 1), random_state=settings.seed)
    with threadpool_limits(1):
        projected = scores.fit_transform(windows)
        labels = GaussianMixture(2, random_state=settings.seed, reg_covar=1e-3).fit_predict(projected)
    parts = [np.sort(members[labels == k]) for k in (0, 1)]
    if min(p.size for p in parts) >= settings.min_discharges and (
        max(refractory_violations(p, fs, settings) for p in parts) <= settings.max_refractory_violations
    ):
        return parts
    if settings.mixture_split_components >= 2:
        return _split_mixture(members, projected, analysis, fs, settings)
    return [members]


def _valid_discharges(members: np.ndarray, analysis: np.ndarray, fs: float, settings: MupSettings) -> int:
    """Discharges ``members`` keeps as a unit after ``_remove_locked``'s pruning rule (0: it would be rejected)."""
    if members.size < settings.min_discharges:
        return 0
    pruned = _prune_to_refractory(members, analysis, fs, settings)
    if pruned.size < settings.min_pruned_share * members.size or pruned.size < settings.min_discharges:
        return 0
    if refractory_violations(pruned, fs, settings) > settings.max_refractory_violations:
        return 0
    if settings.split_min_regularity > 0 and firing_regularity(pruned, fs, settings) < settings.split_min_regularity:
        return 0
    return int(pruned.size)


def firing_regularity(discharges: np.ndarray, fs: float, settings: MupSettings | None = None) -> float:
    """Share of inter-discharge intervals within ±25 % of the unit's typical interval or of twice it (one discharge
    missed): a motor unit fires quasi-periodically, a train gathered from several units or from background spikes
    does not (0 when there are too few intervals to tell). Decomposition methods use discharge regularity to catch
    wrongly merged trains (Fang, Agarwal & Shahani 1999, IEEE Trans Biomed Eng 46:685) and validate a MUP train
    before measuring it (Parsaei & Stashuk 2011, Med Eng Phys 33:581, from its shapes); this simple share is ours.
    Intervals shorter than the refractory period count as irregular."""
    settings = settings or MupSettings()
    intervals = np.diff(np.sort(discharges)) / fs * 1e3
    intervals = intervals[intervals > settings.refractory_ms]
    usable = intervals[(intervals >= settings.min_isi_ms) & (intervals <= settings.max_isi_ms)]
    if usable.size < 3:
        return 0.0
    typical = float(np.median(usable))
    for _ in range(5):
        within = usable[(usable > 0.5 * typical) & (usable < 1.5 * typical)]
        if within.size < 2:
            break
        typical = float(np.median(within))
    near = (np.abs(intervals - typical) <= 0.25 * typical) | (np.abs(intervals - 2 * typical) <= 0.5 * typical)
    return float(np.mean(near))


def _split_mixture(
    members: np.ndarray, projected: np.ndarray, analysis: np.ndarray, fs: float, settings: MupSettings
) -> list[np.ndarray]:
    """A cluster that breaks the refractory period split into 2 to ``mixture_split_components`` parts by a mixture
    on its aligned waveforms (the number of parts by BIC), when the parts together keep more discharges as units
    (after the refractory pruning) than the cluster does whole: in a moderate contraction look-alike units fall
    into one cluster, and pruning it keeps one unit's worth of discharges from several units (a template mixed
    from them). Parts that are one unit split in two merge back later (``_merge_similar``: their union obeys the
    refractory period)."""
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    best_labels, best_bic = None, np.inf
    top = min(settings.mixture_split_components, members.size // settings.min_discharges)
    with threadpool_limits(1):
        for k in range(2, top + 1):
            model = GaussianMixture(k, covariance_type="full", random_state=settings.seed, reg_covar=1e-3)
            labels = model.fit_predict(projected)
            bic = model.bic(projected)
            if bic < best_bic:
                best_labels, best_bic = labels, bic
    if best_labels is None:
        return [members]
    parts = [np.sort(members[best_labels == k]) for k in np.unique(best_labels)]
    whole = _valid_discharges(members, analysis, fs, settings)
    split = sum(_valid_discharges(p, analysis, fs, settings) for p in parts)
    if split <= whole:
        return [members]
    return [p for p in parts if p.size >= settings.min_discharges]


def _remove_locked(
    candidates: list[np.ndarray], analysis: np.ndarray, fs: float, before: int, after: int, settings: MupSettings
) -> list[np.ndarray]:
    """Largest first, strips from each cluster the discharges time-locked to a larger unit (that unit caught at
    another of its peaks); drops what is left too small or still breaking the refractory period (a mixture)."""
    candidates = sorted(candidates, key=lambda m: -np.ptp(np.median(_snippets(analysis, m, before, after), axis=0)))
    kept: list[np.ndarray] = []
    for members in candidates:
        for unit in kept:
            members = members[~locked_discharges(unit, members, fs, settings)]
        pruned = _prune_to_refractory(members, analysis, fs, settings)
        if pruned.size < settings.min_pruned_share * members.size:
            continue  # most of it broke the refractory period: a mixture of units, not one unit with strays
        members = pruned
        if members.size < settings.min_discharges:
            continue
        if refractory_violations(members, fs, settings) > settings.max_refractory_violations:
            continue  # a clinician would reject this MUP as unstable
        kept.append(members)
    return kept


def _prune_to_refractory(members: np.ndarray, analysis: np.ndarray, fs: float, settings: MupSettings) -> np.ndarray:
    """``members`` without the discharges that break the refractory period and match the cluster's median waveform
    worse than their neighbour: in a moderate contraction a cluster of one unit also catches look-alike spikes of
    others, which would otherwise get the whole unit rejected (the template, a median, barely feels them)."""
    half = max(1, int(round(settings.feature_ms * 1e-3 * fs)))
    for _ in range(5):
        if members.size < settings.min_discharges:
            return members
        intervals = np.diff(members) / fs * 1e3
        short = np.flatnonzero((intervals < settings.min_isi_ms) & (intervals > settings.refractory_ms))
        if short.size == 0 or refractory_violations(members, fs, settings) <= settings.max_refractory_violations / 2:
            return members
        windows = _snippets(analysis, members, half, half)
        misfit = np.sum((windows - np.median(windows, axis=0)) ** 2, axis=1)
        worse = np.where(misfit[short] >= misfit[short + 1], short, short + 1)
        members = np.delete(members, np.unique(worse))
    return members


def _drop_repeats(discharges: np.ndarray, fs: float, settings: MupSettings) -> np.ndarray:
    """Sorted discharges without those within ``refractory_ms`` of the previous one (one discharge found twice)."""
    gap = settings.refractory_ms * 1e-3 * fs
    keep = np.concatenate([[True], np.diff(discharges) > gap])
    return discharges[keep]


def refractory_violations(discharges: np.ndarray, fs: float, settings: MupSettings) -> float:
    """Fraction of inter-discharge intervals shorter than a motor unit can fire (``min_isi_ms``)."""
    if discharges.size < 2:
        return 0.0
    intervals = np.diff(np.sort(discharges)) / fs * 1e3
    # the same discharge caught twice (two peaks of one waveform, a few ms apart) is not a second discharge
    intervals = intervals[intervals > settings.refractory_ms]
    return float(np.mean(intervals < settings.min_isi_ms)) if intervals.size else 0.0


def _merge_similar(
    candidates: list[np.ndarray],
    analysis: np.ndarray,
    fs: float,
    before: int,
    after: int,
    shift: int,
    settings: MupSettings,
) -> list[np.ndarray]:
    """Merges clusters whose templates match in shape and size: the mixture often splits one unit in two."""
    margin_lo, margin_hi = before + shift, analysis.size - after - shift
    # a polyphasic unit split in two may have been aligned on peaks several ms apart
    max_lag = int(round(settings.merge_max_lag_ms * 1e-3 * fs))
    merged = True
    while merged and len(candidates) > 1:
        merged = False
        templates = [np.median(_snippets(analysis, m, before, after), axis=0) for m in candidates]
        for i in range(len(candidates)):
            for j in range(i + 1, len(candidates)):
                ratio = np.ptp(templates[i]) / max(np.ptp(templates[j]), 1e-9)
                if not 1.0 / settings.merge_amplitude_ratio <= ratio <= settings.merge_amplitude_ratio:
                    continue
                lag, corr = _best_lag(templates[i], templates[j], max_lag)
                if corr < settings.merge_correlation:
                    continue
                moved = candidates[j] - lag  # put j's discharges on i's alignment point
                moved = moved[(moved >= margin_lo) & (moved < margin_hi)]
                union = _drop_repeats(np.union1d(candidates[i], moved), fs, settings)
                if refractory_violations(union, fs, settings) > settings.max_refractory_violations:
                    continue  # interleaved trains: two units that look alike, not one split in two
                candidates = [c for k, c in enumerate(candidates) if k not in (i, j)] + [union]
                merged = True
                break
            if merged:
                break
    return candidates


def decompose(x: np.ndarray, fs: float, settings: MupSettings | None = None) -> list[MotorUnit]:
    """Motor units of every channel of ``x`` (n,) or (n, C) in µV."""
    settings = settings or MupSettings()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    x = without_mains(x, fs, settings)
    analysis = analysis_signal(x, fs, settings)
    detection = detection_signal(x, fs, settings)
    units: list[MotorUnit] = []
    for channel in range(x.shape[1]):
        units.extend(decompose_channel(analysis[:, channel], detection[:, channel], fs, channel, settings))
    return units
