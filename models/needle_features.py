"""What the needle condition model sees of a recording: the signal at ``NEEDLE_FS`` cut into windows, and a
vector of time-domain and spectral statistics per window.

Every statistic is chosen to survive what differs between hospitals: mains hum (band levels are medians over
the PSD bins of a band, so 50/60 Hz lines and their harmonics do not move them; the signal is high-passed at
``HIGH_PASS_HZ`` so a 10 or 20 Hz amplifier high-pass gives the same input) and the sampling rate (everything is
computed at ``NEEDLE_FS`` after anti-aliased resampling, and only bands below ``TOP_BAND_HZ`` are used, which a
recording at 8 kHz still carries). Gain is not removed: a neuropathic MUP is large, and amplitude is part of
the diagnosis; training jitters it instead (``models.needle_training``).

Corpus recordings are cached at ``NEEDLE_FS`` in ``cache_dir`` (keyed by the file's path, size and mtime).
"""

from __future__ import annotations

import hashlib
import lzma
from pathlib import Path

import numpy as np
from scipy.signal import butter, iirnotch, sosfilt, tf2sos
from scipy.stats import kurtosis, skew

from dsp.resample import NEEDLE_FS, to_needle_rate
from dsp.spectral import welch
from models.needle_corpus import NeedleRecordingInfo
from models.weight_cache import is_verified, user_cache_dir, write_verified

HIGH_PASS_HZ = 20.0
WINDOW_S = 0.5
HOP_S = 0.25
# log-spaced bands; the top one stops at 3.2 kHz so a 8 kHz recording (Nyquist 4 kHz, anti-alias filter below it)
# still fills every band the model reads
BAND_EDGES_HZ = (100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0)
# mains hum is a class confound in the shared set (its healthy recordings carry ~10x the 50 Hz line power of the
# patients'): both 50 and 60 Hz and their harmonics up to MAINS_TOP_HZ are notched, and no band below 100 Hz is read
MAINS_TOP_HZ = 500.0
TOP_BAND_HZ = BAND_EDGES_HZ[-1]
WILLISON_UV = (25.0, 50.0, 100.0, 200.0, 400.0)
DEFAULT_CACHE = user_cache_dir() / "needle"  # private to the user, files hash-checked (models/weight_cache.py)

FEATURE_NAMES = (
    ["log_rms", "log_mav", "log_wl", "log_p99", "log_p50", "crest", "kurtosis", "abs_skew", "zcr", "ssc"]
    + [f"wamp_{int(t)}" for t in WILLISON_UV]
    + [f"log_band_{int(lo)}_{int(hi)}" for lo, hi in zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:], strict=True)]
    + [f"rel_band_{int(lo)}_{int(hi)}" for lo, hi in zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:], strict=True)]
    + ["median_freq", "mean_freq", "spike_rate", "log_spike_amp", "turns_per_amp", "source_nyquist_khz"]
)
GAIN_FEATURES = frozenset(
    ["log_rms", "log_mav", "log_wl", "log_p99", "log_p50"]
    + [f"log_band_{int(lo)}_{int(hi)}" for lo, hi in zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:], strict=True)]
    + ["log_spike_amp"]
)
_CONDITIONING = np.concatenate(
    [butter(4, HIGH_PASS_HZ, btype="highpass", fs=NEEDLE_FS, output="sos")]
    + [tf2sos(*iirnotch(f, 30.0, fs=NEEDLE_FS)) for mains in (50.0, 60.0)
       for f in np.arange(mains, MAINS_TOP_HZ + 1, mains)]
)


def read_signal(path: str | Path, fs: float) -> np.ndarray:
    """One needle recording (``.asc`` plain or xz/gzip-compressed) at ``NEEDLE_FS``, 1-D float32 µV."""
    from monitor.recordings.asc import parse

    path = Path(path)
    if path.suffix == ".xz":
        with lzma.open(path) as handle:
            content = handle.read()
    elif path.suffix == ".gz":
        import gzip

        with gzip.open(path) as handle:
            content = handle.read()
    else:
        content = path.read_bytes()
    data = parse(content, path.name)
    return to_needle_rate(data[:, 0], fs)


def condition(signal: np.ndarray) -> np.ndarray:
    """The model's input at ``NEEDLE_FS``: causal 20 Hz high-pass and 50/60 Hz comb notches (the same live and
    offline), float32."""
    return sosfilt(_CONDITIONING, np.asarray(signal, dtype=np.float64)).astype(np.float32)


def cut_windows(signal: np.ndarray, window_s: float = WINDOW_S, hop_s: float = HOP_S) -> np.ndarray:
    """(W, S) windows of a conditioned signal at ``NEEDLE_FS``; ValueError when shorter than one window."""
    size, hop = int(round(window_s * NEEDLE_FS)), int(round(hop_s * NEEDLE_FS))
    if len(signal) < size:
        raise ValueError(f"needle model needs at least {window_s:g} s of signal, got {len(signal) / NEEDLE_FS:.2f} s")
    starts = np.arange(0, len(signal) - size + 1, hop)
    return np.stack([signal[s:s + size] for s in starts])


def window_features(windows: np.ndarray, source_fs: float = NEEDLE_FS) -> np.ndarray:
    """(W, len(FEATURE_NAMES)) float32 statistics of (W, S) conditioned windows at ``NEEDLE_FS``.

    ``source_fs`` is the rate the recording was made at: the model is told how much of the spectrum it carried."""
    x = np.asarray(windows, dtype=np.float64)
    seconds = x.shape[1] / NEEDLE_FS
    absx = np.abs(x)
    rms = np.sqrt(np.mean(x**2, axis=1)) + 1e-3
    mav = absx.mean(axis=1) + 1e-3
    diff = np.diff(x, axis=1)
    wl = np.abs(diff).sum(axis=1) / seconds + 1e-3
    p99, p50 = np.percentile(absx, 99, axis=1) + 1e-3, np.percentile(absx, 50, axis=1) + 1e-3
    noise = np.median(absx, axis=1, keepdims=True) / 0.6745 + 1e-3
    signs = np.signbit(x)
    zcr = (signs[:, 1:] != signs[:, :-1]).sum(axis=1) / seconds
    slope_signs = np.signbit(diff)
    ssc = (slope_signs[:, 1:] != slope_signs[:, :-1]).sum(axis=1) / seconds
    wamp = [np.log1p((np.abs(diff) > t / 4).sum(axis=1) / seconds) for t in WILLISON_UV]
    freqs, psd = welch(x, fs=NEEDLE_FS, nperseg=1024, axis=1)
    bands = []
    for lo, hi in zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:], strict=True):
        inside = (freqs >= lo) & (freqs < hi)
        bands.append(np.log(np.median(psd[:, inside], axis=1) + 1e-6))  # median: blind to mains lines
    bands_arr = np.stack(bands, axis=1)
    relative = bands_arr - bands_arr.mean(axis=1, keepdims=True)
    usable = (freqs >= BAND_EDGES_HZ[0]) & (freqs < TOP_BAND_HZ)
    spectrum = psd[:, usable]
    cumulative = np.cumsum(spectrum, axis=1)
    median_freq = freqs[usable][np.argmax(cumulative >= cumulative[:, -1:] / 2, axis=1)]
    mean_freq = (spectrum * freqs[usable]).sum(axis=1) / (spectrum.sum(axis=1) + 1e-12)
    # spikes: local maxima of |x| above 5 robust SDs, at least 2 ms apart (MUP discharges)
    above = absx > 5 * noise
    peaks = above[:, 1:-1] & (absx[:, 1:-1] >= absx[:, :-2]) & (absx[:, 1:-1] > absx[:, 2:])
    spike_counts, spike_amps = np.zeros(len(x)), np.zeros(len(x))
    gap = int(0.002 * NEEDLE_FS)
    for row, flags in enumerate(peaks):
        index = np.flatnonzero(flags) + 1
        if len(index):
            keep = np.concatenate([[True], np.diff(index) > gap])
            index = index[keep]
            spike_counts[row] = len(index)
            spike_amps[row] = np.median(absx[row, index])
    turns = wamp[2]  # log turns/s above 100 µV steps: the turns-amplitude ratio, classic for myopathy
    features = np.column_stack([
        np.log(rms), np.log(mav), np.log(wl), np.log(p99), np.log(p50), p99 / rms,
        kurtosis(x, axis=1), np.abs(skew(x, axis=1)), zcr / 1000.0, ssc / 1000.0, *wamp,
        bands_arr, relative, median_freq / 1000.0, mean_freq / 1000.0,
        spike_counts / seconds / 100.0, np.log1p(spike_amps), turns - np.log(mav),
        np.full(len(x), min(source_fs, NEEDLE_FS) / 2000.0),
    ])
    return np.nan_to_num(features, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def recording_windows(signal: np.ndarray, source_fs: float = NEEDLE_FS) -> tuple[np.ndarray, np.ndarray]:
    """(windows (W, S), features (W, F)) of a raw signal already at ``NEEDLE_FS`` (recorded at ``source_fs``)."""
    windows = cut_windows(condition(signal))
    return windows, window_features(windows, source_fs)


def perturbed(signal: np.ndarray, rng: np.random.Generator, gain_db: float = 6.0,
              rates: tuple[float, ...] = (4000.0, 8000.0, 12000.0)) -> tuple[np.ndarray, float]:
    """A copy of a ``NEEDLE_FS`` recording as another hospital might give it: gain within +-``gain_db``, recorded at
    one of ``rates`` (anti-aliased down and back up), 50 or 60 Hz mains hum, a 10 Hz amplifier high-pass.
    -> (signal at ``NEEDLE_FS``, the rate it was 'recorded' at)."""
    from dsp.resample import resample

    fs = float(rng.choice(rates))
    x = resample(resample(signal, NEEDLE_FS, fs), fs, NEEDLE_FS)[: len(signal)]
    x = x * 10 ** (rng.uniform(-gain_db, gain_db) / 20)
    t = np.arange(len(x)) / NEEDLE_FS
    mains = float(rng.choice([50.0, 60.0]))
    x = x + rng.uniform(0, 30) * np.sin(2 * np.pi * mains * t + rng.uniform(0, 2 * np.pi))
    x = sosfilt(butter(2, 10.0, btype="highpass", fs=NEEDLE_FS, output="sos"), x)
    return x.astype(np.float32), fs


def _cache_key(info: NeedleRecordingInfo) -> str:
    stat = Path(info.path).stat()
    text = f"{Path(info.path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{info.fs}|{NEEDLE_FS}"
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def load_signals(infos: list[NeedleRecordingInfo], cache_dir: Path | None = DEFAULT_CACHE,
                 default_fs: float | None = None) -> list[np.ndarray]:
    """Every recording at ``NEEDLE_FS`` (read once, then from ``cache_dir``)."""
    signals = []
    for info in infos:
        fs = info.fs or default_fs
        if fs is None:
            from monitor.errors import UserError

            raise UserError(f"{Path(info.path).name}: no sampling rate (add an fs column to the manifest or --fs)")
        cached = cache_dir / f"{_cache_key(info)}.npy" if cache_dir is not None else None
        if cached is not None and is_verified(cached):  # a file whose hash does not match is read again
            signals.append(np.load(cached, allow_pickle=False))
            continue
        signal = read_signal(info.path, fs)
        if cached is not None:
            write_verified(cached, lambda stream, values=signal: np.save(stream, values))
        signals.append(signal)
    return signals
