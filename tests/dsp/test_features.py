"""Every feature against an independent formula computed here, and against LibEMG 2.0.3's own code where it
defines the same feature.

LibEMG comparisons left out, and why:
- MDF: LibEMG 2.0.3 assigns a 1-element array into a scalar slot, which raises under numpy >= 2; the comparison
  runs only when LibEMG's MDF works in this environment and is skipped (with that reason) otherwise.
- Hjorth complexity (COMP): LibEMG sums its 4th-order moment over the whole batch (``np.sum`` without an axis), so
  its value is not per window and not comparable.
- PKF, band powers, FInsm5: LibEMG has no such feature (its MPK is a peak amplitude).
- Spectral features are compared on 512-sample windows only: LibEMG zero-pads every window to the next power of
  two, and on 400-sample windows that interpolated spectrum moves MNF by up to ~6 % on this recording.
"""

from __future__ import annotations

import numpy as np
import pytest
import pywt
import scipy.io
from scipy import signal

from dsp.features import (
    FEATURE_GROUPS,
    MODEL_FEATURES,
    FeatureParams,
    compute_features,
    expand_names,
    feature_matrix,
)
from dsp.filters import default_chain
from tests.conftest import SHARED_DATA
from tests.dsp.libemg_reference import load_feature_extractor

FS = 2048.0
HDEMG = SHARED_DATA / "hdemg-vastus-lateralis" / "otb_testfile.mat"


def synthetic_windows(n_windows: int = 6, n_channels: int = 5, n_samples: int = 400, seed: int = 0) -> np.ndarray:
    """Band-limited noise with channel-specific spectra and amplitudes, like filtered surface EMG (µV)."""
    rng = np.random.default_rng(seed)
    total = n_windows * n_samples + 2048
    noise = rng.standard_normal((total, n_channels)) * np.linspace(10, 200, n_channels)
    shaped = np.empty_like(noise)
    for channel in range(n_channels):
        centre = 60 + 40 * (channel % 8)  # stays below Nyquist at 64 channels too
        sos = signal.butter(2, (centre * 0.5, centre * 2.0), btype="bandpass", fs=FS, output="sos")
        shaped[:, channel] = signal.sosfilt(sos, noise[:, channel])
    shaped = shaped[2048:]
    return shaped.reshape(n_windows, n_samples, n_channels).transpose(0, 2, 1).astype(np.float32)


@pytest.fixture(scope="module")
def windows() -> np.ndarray:
    return synthetic_windows()


@pytest.fixture(scope="module")
def hdemg_windows() -> np.ndarray:
    """Eight 512-sample windows of the real 64-channel HD-EMG recording, band-passed and notched like live data."""
    if not HDEMG.is_file():
        return synthetic_windows(8, 64, 512, seed=5) * 5  # amplitudes whose slopes cross the WAMP threshold
    data = scipy.io.loadmat(HDEMG)["Data"][0, 0][:, :64].astype(np.float32)
    filtered, _ = default_chain(FS, 64, mains_hz=50.0).process(data[10_000:30_000])
    segment = filtered[4096 : 4096 + 8 * 512]
    return segment.reshape(8, 512, 64).transpose(0, 2, 1).copy()


def per_series(windows: np.ndarray, function) -> np.ndarray:
    """Applies a function of one 1-D series to every (window, channel), the slow obvious way."""
    return np.array([[function(series.astype(np.float64)) for series in window] for window in windows])


def periodogram(series: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return signal.periodogram(series, fs=FS, window="boxcar", detrend=False, scaling="density")


def check(windows: np.ndarray, name: str, reference, rtol: float = 1e-6, params: FeatureParams | None = None) -> None:
    computed = compute_features(windows, FS, [name], params or FeatureParams())[name]
    assert computed.shape == windows.shape[:2]
    np.testing.assert_allclose(computed, per_series(windows, reference), rtol=rtol, atol=0, err_msg=name)


# ---------------------------------------------------------------- time domain, against formulas

def test_amplitude_features(windows: np.ndarray) -> None:
    check(windows, "MAV", lambda s: np.sum(np.abs(s)) / len(s))
    check(windows, "IAV", lambda s: np.sum(np.abs(s)))
    check(windows, "RMS", lambda s: np.linalg.norm(s) / np.sqrt(len(s)))
    check(windows, "VAR", lambda s: np.sum((s - s.mean()) ** 2) / len(s))
    check(windows, "WL", lambda s: sum(abs(b - a) for a, b in zip(s[:-1], s[1:], strict=True)))
    check(windows, "DASDV", lambda s: np.sqrt(np.sum(np.diff(s) ** 2) / (len(s) - 1)))
    check(windows, "LD", lambda s: np.exp(np.mean(np.log(np.abs(s) + 1.0))))


def zc_loop(series: np.ndarray, threshold: float) -> int:
    return sum(
        1 for a, b in zip(series[:-1], series[1:], strict=True) if a * b < 0 and abs(a - b) >= threshold
    )


def ssc_loop(series: np.ndarray, threshold: float) -> int:
    return sum(
        1 for i in range(1, len(series) - 1)
        if (series[i] - series[i - 1]) * (series[i] - series[i + 1]) >= threshold
    )  # fmt: skip


@pytest.mark.parametrize("threshold", [0.0, 15.0])
def test_count_features_with_thresholds(windows: np.ndarray, threshold: float) -> None:
    params = FeatureParams(zc_threshold=threshold, ssc_threshold=threshold * 10, wamp_threshold=threshold)
    check(windows, "ZC", lambda s: zc_loop(s, threshold), params=params)
    check(windows, "SSC", lambda s: ssc_loop(s, threshold * 10), params=params)
    check(windows, "WAMP", lambda s: int(np.count_nonzero(np.abs(np.diff(s)) > threshold)), params=params)


def test_thresholds_reduce_counts(windows: np.ndarray) -> None:
    loose = compute_features(windows, FS, ["ZC", "SSC", "WAMP"], FeatureParams(0.0, 0.0, 0.0))
    strict = compute_features(windows, FS, ["ZC", "SSC", "WAMP"], FeatureParams(20.0, 400.0, 20.0))
    for name in ("ZC", "SSC", "WAMP"):
        assert (strict[name] <= loose[name]).all() and (strict[name] < loose[name]).any()


def test_zero_crossings_of_a_sinusoid() -> None:
    phase = 2 * np.pi * 102.4 * np.arange(400) / FS + 0.3
    sine = np.sin(phase)[np.newaxis, np.newaxis, :]
    crossings = int(phase[-1] // np.pi - phase[0] // np.pi)  # multiples of pi passed
    assert crossings == 39 and compute_features(sine, FS, ["ZC"])["ZC"][0, 0] == crossings


def test_hjorth_parameters(windows: np.ndarray) -> None:
    def mobility(s: np.ndarray) -> float:
        return np.std(np.diff(s)) / np.std(s)

    check(windows, "HJORTH_ACT", np.var)
    check(windows, "HJORTH_MOB", mobility)
    check(windows, "HJORTH_COMP", lambda s: mobility(np.diff(s)) / mobility(s))


# ---------------------------------------------------------------- spectral, against scipy's periodogram

def test_mean_and_peak_frequency(windows: np.ndarray) -> None:
    def mnf(s: np.ndarray) -> float:
        f, p = periodogram(s)
        return np.sum(f * p) / np.sum(p)

    def pkf(s: np.ndarray) -> float:
        f, p = periodogram(s)
        return f[1:][np.argmax(p[1:])]

    check(windows, "MNF", mnf)
    check(windows, "PKF", pkf)


def test_median_frequency_splits_power_in_half(windows: np.ndarray) -> None:
    def mdf(s: np.ndarray) -> float:
        f, p = periodogram(s)
        return float(np.interp(np.sum(p) / 2, np.cumsum(p), f))

    check(windows, "MDF", mdf)
    # and it really splits: power below MDF is half of the total, to within one bin's share
    values = compute_features(windows, FS, ["MDF"])["MDF"]
    f, p = periodogram(windows[0, 0].astype(np.float64))
    below = p[f < values[0, 0]].sum() / p.sum()
    assert abs(below - 0.5) <= p.max() / p.sum()


def test_median_frequency_of_a_pure_tone() -> None:
    t = np.arange(512) / FS
    tone = np.sin(2 * np.pi * 200.0 * t)[np.newaxis, np.newaxis, :]  # exactly on a bin
    features = compute_features(tone, FS, ["MDF", "MNF", "PKF"])
    assert abs(features["MDF"][0, 0] - 200.0) <= FS / 512
    assert abs(features["MNF"][0, 0] - 200.0) < 1e-6
    assert features["PKF"][0, 0] == 200.0


def test_spectral_moments_and_band_powers(windows: np.ndarray) -> None:
    df = FS / windows.shape[-1]
    for order in (0, 1, 2):
        check(windows, f"SM{order}", lambda s, k=order: np.sum(periodogram(s)[1] * periodogram(s)[0] ** k) * df)
    # Parseval: the zeroth moment is the mean square
    sm0 = compute_features(windows, FS, ["SM0"])["SM0"]
    np.testing.assert_allclose(sm0, np.mean(windows.astype(np.float64) ** 2, axis=-1), rtol=1e-6)

    def band(s: np.ndarray, low: float, high: float) -> float:
        f, p = periodogram(s)
        return np.sum(p[(f >= low) & (f < high)]) * df

    check(windows, "BP_20_50", lambda s: band(s, 20, 50))
    check(windows, "BP_100_200", lambda s: band(s, 100, 200))
    parts = compute_features(windows, FS, ["BP_0_300", "BP_300_2000"])
    np.testing.assert_allclose(parts["BP_0_300"] + parts["BP_300_2000"], sm0, rtol=1e-9)


def test_fins_m5_is_dimitrov_moment_ratio(windows: np.ndarray) -> None:
    def fins(s: np.ndarray) -> float:
        f, p = periodogram(s)
        band = (f >= 20) & (f < 450)
        return np.sum(p[band] / f[band]) / np.sum(p[band] * f[band] ** 5)

    check(windows, "FInsm5", fins)


def test_fins_m5_rises_when_the_spectrum_compresses() -> None:
    fresh = synthetic_windows(4, 1, 400, seed=1)
    t = np.arange(400)
    # the same signals stretched in time by 25%: every frequency scales by 0.8, so FInsm5 grows by 0.8**-6
    stretched = np.array([[np.interp(t * 0.8, t, series) for series in w] for w in fresh], dtype=np.float32)
    ratio = compute_features(stretched[..., :320], FS, ["FInsm5"])["FInsm5"] / compute_features(
        fresh[..., :320], FS, ["FInsm5"]
    )["FInsm5"]
    assert np.all(ratio > 1.5)


def test_dwt_band_energies(windows: np.ndarray) -> None:
    computed = compute_features(windows, FS, ["wavelet"])
    for w in range(windows.shape[0]):
        for c in range(windows.shape[1]):
            coefficients = pywt.wavedec(windows[w, c].astype(np.float64), "db4", level=4)
            for name, values in zip(["DWT_A4", "DWT_D4", "DWT_D3", "DWT_D2", "DWT_D1"], coefficients, strict=True):
                expected = np.sum(values**2) / windows.shape[-1]
                np.testing.assert_allclose(computed[name][w, c], expected, rtol=1e-5)


def test_dwt_level_beyond_the_window_is_refused() -> None:
    with pytest.raises(ValueError, match="levels"):
        compute_features(np.zeros((1, 1, 40), dtype=np.float32), 200.0, ["DWT_D4"])


# ---------------------------------------------------------------- names, groups, matrix

def test_groups_and_names() -> None:
    assert FEATURE_GROUPS["hudgins_td"] == ("MAV", "WL", "ZC", "SSC")
    assert expand_names(["hudgins_td", "MAV", "RMS"]) == ["MAV", "WL", "ZC", "SSC", "RMS"]
    with pytest.raises(ValueError, match="unknown feature 'FOO'"):
        compute_features(np.zeros((1, 1, 10)), FS, ["FOO"])
    with pytest.raises(ValueError, match="n_windows, n_channels, n_samples"):
        compute_features(np.zeros((10, 3)), FS, ["MAV"])


def test_every_group_computes_finite_values(windows: np.ndarray) -> None:
    for group, members in FEATURE_GROUPS.items():
        values = compute_features(windows, FS, [group])
        assert list(values) == list(members), group
        assert all(np.isfinite(v).all() and v.shape == windows.shape[:2] for v in values.values()), group


def test_feature_matrix_stacks_model_features_in_order(windows: np.ndarray) -> None:
    matrix = feature_matrix(windows, FS)
    assert matrix.shape == (*windows.shape[:2], len(MODEL_FEATURES)) and matrix.dtype == np.float32
    log_mav = np.log(np.mean(np.abs(windows.astype(np.float64)), axis=-1))
    np.testing.assert_allclose(matrix[..., MODEL_FEATURES.index("log_MAV")], log_mav, rtol=1e-6)
    zc = compute_features(windows, FS, ["ZC"])["ZC"]
    np.testing.assert_array_equal(matrix[..., MODEL_FEATURES.index("ZC")], zc)


def test_model_features_work_at_myo_rate() -> None:
    windows = synthetic_windows(3, 8, 40, seed=2)  # 200 ms at 200 Hz
    assert np.isfinite(feature_matrix(windows, 200.0)).all()


# ---------------------------------------------------------------- against LibEMG's own code

@pytest.fixture(scope="module")
def libemg():
    extractor = load_feature_extractor()
    if extractor is None:
        pytest.skip("libemg 2.0.3's feature_extractor.py could not be obtained (not installed, pip download failed)")
    return extractor


def libemg_value(libemg, name: str, windows: np.ndarray, **params) -> np.ndarray:
    return np.asarray(getattr(libemg, f"get{name}feat")(windows.astype(np.float64), **params))


def test_time_domain_matches_libemg(libemg, hdemg_windows: np.ndarray) -> None:
    params = FeatureParams(ssc_threshold=0.0, wamp_threshold=5.0)
    ours = compute_features(hdemg_windows, FS, ["time_domain"], params)
    theirs = {
        "MAV": libemg_value(libemg, "MAV", hdemg_windows),
        "IAV": libemg_value(libemg, "IAV", hdemg_windows),
        "RMS": libemg_value(libemg, "RMS", hdemg_windows),
        "VAR": libemg_value(libemg, "VAR", hdemg_windows),
        "WL": libemg_value(libemg, "WL", hdemg_windows),
        "DASDV": libemg_value(libemg, "DASDV", hdemg_windows),
        "LD": libemg_value(libemg, "LD", hdemg_windows),
        "ZC": libemg_value(libemg, "ZC", hdemg_windows),
        "SSC": libemg_value(libemg, "SSC", hdemg_windows, SSC_threshold=0.0),
        "WAMP": libemg_value(libemg, "WAMP", hdemg_windows, WAMP_threshold=5.0),
    }
    for name, expected in theirs.items():
        np.testing.assert_allclose(ours[name], expected, rtol=1e-5, err_msg=name)
    assert ours["ZC"].min() > 0 and ours["WAMP"].min() > 0  # real activity, not an all-zero agreement


def test_hjorth_matches_libemg_on_zero_mean_windows(libemg, hdemg_windows: np.ndarray) -> None:
    # LibEMG's ACT is the mean square and its MOB divides by S instead of taking a variance; on zero-mean
    # windows ACT is identical and MOB differs only by the first difference's (tiny) mean and S vs S-1.
    centred = hdemg_windows - hdemg_windows.mean(axis=-1, keepdims=True)
    ours = compute_features(centred, FS, ["HJORTH_ACT", "HJORTH_MOB"])
    np.testing.assert_allclose(ours["HJORTH_ACT"], libemg_value(libemg, "ACT", centred), rtol=1e-5)
    np.testing.assert_allclose(ours["HJORTH_MOB"], libemg_value(libemg, "MOB", centred), rtol=5e-3)


def test_spectral_features_match_libemg(libemg, hdemg_windows: np.ndarray) -> None:
    # 512-sample windows: LibEMG's next-power-of-two FFT is our FFT. It keeps bins 0..N/2-1 unscaled and one-sided
    # without doubling, so its spectral moments are half of ours (Parseval). Two bins differ by definition: DC
    # (we do not double it; emptied here by centring the windows) and Nyquist (LibEMG drops it; we take its term
    # out, computed from the test's own FFT). After that the values must agree to rounding.
    centred = (hdemg_windows - hdemg_windows.mean(axis=-1, keepdims=True)).astype(np.float64)
    n = centred.shape[-1]
    nyquist_psd = np.abs(np.fft.rfft(centred, axis=-1)[..., -1]) ** 2 / (FS * n)
    ours = compute_features(centred, FS, ["MNF", "SM0", "SM1", "SM2"])
    without_nyquist = {k: ours[f"SM{k}"] - nyquist_psd * (FS / 2) ** k * (FS / n) for k in (0, 1, 2)}
    for order in (0, 1, 2):
        theirs = libemg_value(libemg, "SM", centred, SM_order=order, SM_fs=FS)
        np.testing.assert_allclose(without_nyquist[order] / 2, theirs, rtol=1e-9, err_msg=f"SM{order}")
    theirs_mnf = libemg_value(libemg, "MNF", centred, MNF_fs=FS)
    np.testing.assert_allclose(without_nyquist[1] / without_nyquist[0], theirs_mnf, rtol=1e-9)
    # the Nyquist bin itself is negligible for MNF (the band-pass removed everything near 1024 Hz)
    np.testing.assert_allclose(ours["MNF"], theirs_mnf, rtol=5e-4)


def test_wavelet_energies_match_libemg(libemg, hdemg_windows: np.ndarray) -> None:
    # LibEMG's WENG: log(sum of squared sym8 coefficients) per level, level = floor(log2(fs/2) - 1); fs=64 -> 4
    ours = compute_features(hdemg_windows, FS, ["DWT_A4", "DWT_D4", "DWT_D3", "DWT_D2", "DWT_D1"],
                            FeatureParams(wavelet="sym8", dwt_level=4))  # fmt: skip
    stacked = np.hstack([np.log(v * hdemg_windows.shape[-1] + 1e-10) for v in ours.values()])
    np.testing.assert_allclose(stacked, libemg_value(libemg, "WENG", hdemg_windows, WENG_fs=64), rtol=1e-6)


def test_median_frequency_matches_libemg_where_it_runs(libemg, hdemg_windows: np.ndarray) -> None:
    try:
        theirs = libemg_value(libemg, "MDF", hdemg_windows, MDF_fs=FS)
    except (ValueError, TypeError) as error:
        pytest.skip(f"LibEMG 2.0.3's MDF fails under numpy {np.__version__}: {error}")
    ours = compute_features(hdemg_windows, FS, ["MDF"])["MDF"]
    # LibEMG reports the first bin past half the power; we interpolate inside the bin before it
    bin_width = FS / hdemg_windows.shape[-1]
    assert np.all(ours <= theirs + 1e-9) and np.all(ours >= theirs - 2 * bin_width)
