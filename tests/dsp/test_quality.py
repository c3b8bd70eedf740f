"""Signal-quality flags on constructed signals: each defect on its own channel, next to a good one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from dsp.quality import QUALITY_FLAGS, QualityMonitor, QualitySettings, hann_periodogram

FS = 2048.0


def emg(n: int, rms_uv: float, rng: np.random.Generator) -> np.ndarray:
    sos = signal.butter(2, (30, 300), btype="bandpass", fs=FS, output="sos")
    x = signal.sosfilt(sos, rng.standard_normal(n + 1024))[1024:]
    return x / x.std() * rms_uv


def mains(n: int, rms_uv: float, hz: float = 50.0) -> np.ndarray:
    t = np.arange(n) / FS
    return rms_uv * np.sqrt(2) * np.sin(2 * np.pi * hz * t)


def feed(monitor: QualityMonitor, samples: np.ndarray, chunk: int = 64, start_time: float = 100.0):
    report = None
    for start in range(0, len(samples), chunk):
        part = samples[start : start + chunk]
        report = monitor.update(part.astype(np.float32), start_time + (start + len(part) - 1) / FS)
    return report


@pytest.fixture(scope="module")
def defects() -> np.ndarray:
    rng = np.random.default_rng(0)
    n = int(2 * FS)
    good = emg(n, 50, rng) + 2000.0 + mains(n, 5)  # electrode offset and a little mains: fine
    flat = np.full(n, 300.0)
    clipped = np.clip(emg(n, 300, rng), -400, 400)
    humming = emg(n, 20, rng) + mains(n, 200)
    nan_burst = emg(n, 50, rng)
    nan_burst[-300:-250] = np.nan
    resting = emg(n, 3, rng) + mains(n, 5)  # mains dominates, but at a harmless 5 µV
    return np.column_stack([good, flat, clipped, humming, nan_burst, resting])


def test_each_defect_is_flagged_on_its_channel_only(defects: np.ndarray) -> None:
    report = feed(QualityMonitor(FS, 6), defects)
    expected = {"nonfinite": [4], "flat": [1], "saturated": [2], "mains": [3]}
    for name in QUALITY_FLAGS:
        assert np.flatnonzero(report.flags[name]).tolist() == expected[name], name
    np.testing.assert_array_equal(report.usable, [True, False, False, False, False, True])
    assert report.reasons == ("", "flat", "saturated", "mains", "nonfinite", "")
    assert not report.stale


def test_measured_levels_match_an_independent_computation(defects: np.ndarray) -> None:
    report = feed(QualityMonitor(FS, 6), defects)
    last_half_second = defects[-1024:].astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(report.rms_uv[[0, 1, 2, 3, 5]], last_half_second[:, [0, 1, 2, 3, 5]].std(axis=0),
                               rtol=1e-6, atol=1e-9)  # fmt: skip
    assert report.mains_rms_uv[3] == pytest.approx(200.0, rel=0.1)
    assert report.mains_rms_uv[5] == pytest.approx(5.0, rel=0.3)


def test_channel_recovers_once_the_nan_leaves_the_window(defects: np.ndarray) -> None:
    monitor = QualityMonitor(FS, 6)
    feed(monitor, defects)
    rng = np.random.default_rng(1)
    clean = np.column_stack([emg(3072, 50, rng) for _ in range(6)])  # > window + mains interval
    report = feed(monitor, clean, start_time=103.0)
    assert report.usable.all() and not any(report.reasons)


def test_stale_stream_masks_everything(defects: np.ndarray) -> None:
    monitor = QualityMonitor(FS, 6)
    last = feed(monitor, defects).timestamp
    assert not monitor.report(now=last + 0.5).stale
    stale = monitor.report(now=last + 2.0)
    assert stale.stale and not stale.usable.any()
    assert stale.to_dict()["stale"] is True


def test_sixty_hertz_found_when_mains_is_not_given() -> None:
    rng = np.random.default_rng(2)
    n = int(2.5 * FS)  # mains is flagged on two 1 s evaluations in a row
    x = np.column_stack([emg(n, 20, rng) + mains(n, 150, hz=60.0), emg(n, 50, rng)])
    report = feed(QualityMonitor(FS, 2, QualitySettings(mains_hz=None)), x)
    np.testing.assert_array_equal(report.flags["mains"], [True, False])


def test_coarse_adc_needs_full_scale_to_call_clipping() -> None:
    # Myo-like int8 samples: at rest small integers repeat all the time, which is not clipping ...
    rng = np.random.default_rng(3)
    fs = 200.0
    rest = np.round(rng.standard_normal((400, 2)) * 2.0)
    monitor = QualityMonitor(fs, 2, QualitySettings(full_scale_uv=128.0))
    assert not monitor.update(rest, 10.0).flags["saturated"].any()
    assert not QualityMonitor(fs, 2).update(rest, 10.0).flags["saturated"].any()
    # ... while a strong contraction pinned at the rails is
    strong = np.clip(np.round(rng.standard_normal((400, 2)) * 150.0), -128, 127)
    strong[:, 1] = np.round(rng.standard_normal(400) * 20.0)
    np.testing.assert_array_equal(monitor.update(strong, 12.0).flags["saturated"], [True, False])


def test_mask_on_chooses_which_flags_mask(defects: np.ndarray) -> None:
    report = feed(QualityMonitor(FS, 6, QualitySettings(mask_on=("flat", "nonfinite"))), defects)
    np.testing.assert_array_equal(report.usable, [True, False, True, True, False, True])
    assert report.flags["mains"][3]  # still reported, just not masking
    with pytest.raises(ValueError, match="unknown quality flags"):
        QualitySettings(mask_on=("wobbly",))
    with pytest.raises(ValueError, match="chunk"):
        QualityMonitor(FS, 6).update(np.zeros((4, 5)), 0.0)


def _saturated_before_the_shortcut(window: np.ndarray, settings: QualitySettings) -> np.ndarray:
    """QualityMonitor._saturated as it was before it sorted only the channels stuck at a rail (the reference)."""
    needed = max(3, int(np.ceil(settings.clip_fraction * len(window))))
    result = np.zeros(window.shape[1], dtype=bool)
    at_max, at_min = window == window.max(axis=0), window == window.min(axis=0)
    ordered = np.sort(window, axis=0)
    distinct = (np.diff(ordered, axis=0) != 0).sum(axis=0) + 1
    off_rails = (~(at_max | at_min)).sum(axis=0)
    fine = (distinct - 2 >= np.minimum(64, 0.5 * off_rails)) & (off_rails > 0)
    for at_extreme in (at_max, at_min):
        three_in_a_row = (at_extreme[:-2] & at_extreme[1:-1] & at_extreme[2:]).any(axis=0)
        result |= (at_extreme.sum(axis=0) >= needed) & three_in_a_row
    return result & fine


def test_saturation_and_mains_give_what_the_unshortened_computations_gave(defects: np.ndarray) -> None:
    rng = np.random.default_rng(21)
    fs = 2048.0
    t = np.arange(1024) / fs
    columns = [rng.standard_normal(1024) * 80,  # plain EMG
               np.clip(rng.standard_normal(1024) * 300, -400, 400),  # clipped, fine converter
               np.clip(rng.standard_normal(1024) * 900, -400, 400),  # mostly clipped
               np.round(np.clip(rng.standard_normal(1024) * 2, -3, 3)),  # a coarse converter at its rails
               np.full(1024, 5.0),  # flat
               200 * np.sin(2 * np.pi * 50 * t) + rng.standard_normal(1024) * 20]  # mains  # fmt: skip
    window = np.column_stack(columns + [defects[:1024, i] for i in range(defects.shape[1])])
    settings = QualitySettings()
    monitor = QualityMonitor(fs, window.shape[1], settings)
    for samples in (window.astype(np.float32), window.astype(np.float64), window[:1023].astype(np.float32)):
        expected_saturated = _saturated_before_the_shortcut(samples, settings)
        assert expected_saturated[1:3].all()  # the test's clipped channels are clipped
        np.testing.assert_array_equal(monitor._saturated(samples), expected_saturated)
        frequencies, psd = signal.periodogram(samples, fs=fs, window="hann", detrend="constant", axis=0)
        mine_frequencies, mine = hann_periodogram(samples, fs)
        np.testing.assert_array_equal(mine_frequencies, frequencies)
        assert mine.dtype == psd.dtype
        assert (np.abs(mine - psd) <= 1e-5 * np.abs(psd).max(axis=0) + 1e-12).all()  # per channel, of its peak
    mains_rms, mains_flag, _dominant = monitor._mains(window.astype(np.float32))
    assert mains_flag[5] and not mains_flag[0]


def _flag_counts(x: np.ndarray, fs: float, settings: QualitySettings | None = None, chunk: int = 64) -> np.ndarray:
    """(channels, flags): in how many evaluations each channel carried each flag."""
    monitor = QualityMonitor(fs, x.shape[1], settings)
    counts = np.zeros((x.shape[1], len(QUALITY_FLAGS)), dtype=int)
    for start in range(0, len(x), chunk):
        before = monitor.samples_until_evaluation()
        report = monitor.update(x[start : start + chunk].astype(np.float32), start / fs)
        if len(x[start : start + chunk]) >= before:
            counts += np.column_stack([report.flags[name] for name in QUALITY_FLAGS])
    return counts


def test_faulty_ring_reads_rail_flat_and_mains_exactly_at_rest_and_in_contraction() -> None:
    """The window's faulty-electrode picture (/tmp/nf/look/faulty.py): a ring whose EMG alternates 18 µV rest and
    300 µV contraction every 4 s; E03 at 0 (off), E06 stuck at 8000 µV (the rail), E07 with 200 µV of 50 Hz."""
    rng = np.random.default_rng(7)
    n = int(16 * FS)
    t = np.arange(n) / FS
    x = np.column_stack([emg(n, 60.0, rng) for _ in range(8)]) * np.where(t % 8.0 > 4.0, 5.0, 0.3)[:, None]
    x[:, 2] = 0.0
    x[:, 5] = 8000.0
    x[:, 6] += 200.0 * np.sin(2 * np.pi * 50.0 * t)
    counts = _flag_counts(x, FS)
    evaluations = counts[2, QUALITY_FLAGS.index("flat")]
    assert evaluations == 32
    expected = np.zeros_like(counts)
    expected[2, QUALITY_FLAGS.index("flat")] = 32
    expected[5, QUALITY_FLAGS.index("saturated")] = 32
    expected[6, QUALITY_FLAGS.index("mains")] = 32  # at once at rest (mains dominates), then on, in contraction too
    np.testing.assert_array_equal(counts, expected)


@pytest.mark.parametrize(("level", "full_scale", "reason"), [
    (5000.0, None, "saturated"), (-5000.0, None, "saturated"),  # the simulator's rail (simulators/artifacts.py)
    (1000.0, None, "saturated"), (999.0, None, "flat"), (300.0, None, "flat"), (0.0, None, "flat"),
    (127.0, 128.0, "saturated"), (-128.0, 128.0, "saturated"), (60.0, 128.0, "flat"), (0.0, 128.0, "flat"),
])  # fmt: skip
def test_constant_channel_is_saturated_at_the_rail_and_flat_elsewhere(level: float, full_scale: float | None,
                                                                      reason: str) -> None:  # fmt: skip
    rng = np.random.default_rng(8)
    x = np.column_stack([np.full(2048, level), emg(2048, 30.0, rng)])
    report = feed(QualityMonitor(FS, 2, QualitySettings(full_scale_uv=full_scale)), x)
    assert report.reasons == (reason, "")


@pytest.mark.parametrize(("mains_uv", "emg_uv", "flagged"), [
    (141.0, 18.0, True), (141.0, 300.0, True), (30.0, 10.0, True),  # E07 at rest and in a contraction
    (15.0, 5.0, False),  # below mains_rms_uv: the simulator's ordinary pick-up, notched anyway
    (141.0, 2000.0, False),  # buried 23 dB under a very strong contraction: not "far above its own EMG band"
])  # fmt: skip
def test_mains_flag_at_known_levels(mains_uv: float, emg_uv: float, flagged: bool) -> None:
    rng = np.random.default_rng(9)
    n = int(3 * FS)
    x = np.column_stack([emg(n, emg_uv, rng) + mains(n, mains_uv)] + [emg(n, emg_uv, rng) + mains(n, 5.0)
                                                                       for _ in range(3)])  # fmt: skip
    report = feed(QualityMonitor(FS, 4), x)
    assert report.flags["mains"].tolist() == [flagged, False, False, False]
    if flagged:
        assert report.mains_rms_uv[0] == pytest.approx(mains_uv, rel=0.1)


def test_same_mains_on_every_channel_is_not_a_channel_fault() -> None:
    rng = np.random.default_rng(10)
    n = int(3 * FS)
    x = np.column_stack([emg(n, 20.0, rng) + mains(n, 100.0) for _ in range(4)])
    assert not feed(QualityMonitor(FS, 4), x).flags["mains"].any()


DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.mark.skipif(not (DATA / "hdemg-vastus-lateralis").is_dir(), reason="shared data not present")
def test_no_flag_on_the_real_hdemg_grid() -> None:
    """32.5 s of a real 64-channel force ramp (OT Bioelettronica, 2048 Hz): no flag on any channel at any
    evaluation, including the 40-60 Hz Piper rhythm of its strong part (a 45-46 Hz peak on some channels)."""
    from scipy.io import loadmat

    x = loadmat(DATA / "hdemg-vastus-lateralis" / "otb_testfile.mat")["Data"][0, 0][:, :64]
    assert not _flag_counts(x, 2048.0, chunk=512).any()


@pytest.mark.skipif(not (DATA / "myo-gestures").is_dir(), reason="shared data not present")
def test_real_myo_gestures_flag_only_real_clipping() -> None:
    """Session 1, all 8 gesture files (60 s each, int8 at 200 Hz, full scale 128): no flat, mains or nonfinite
    flag; the saturated flags fall only on channels whose samples really sit at the int8 rails in that window."""
    fs = 200.0
    for path in sorted((DATA / "myo-gestures" / "12345-1").glob("*.txt")):
        x = np.loadtxt(path, delimiter=",")[:, :8]
        monitor = QualityMonitor(fs, 8, QualitySettings(full_scale_uv=128.0))
        for start in range(0, len(x), 20):
            before = monitor.samples_until_evaluation()
            report = monitor.update(x[start : start + 20].astype(np.float32), start / fs)
            if before > 20:
                continue
            for name in ("nonfinite", "flat", "mains"):
                assert not report.flags[name].any(), (path.name, start, name)
            window = x[max(0, start + 20 - 100) : start + 20]
            at_rail = ((window >= 126) | (window <= -126)).sum(axis=0)
            assert (at_rail[report.flags["saturated"]] >= 3).all(), (path.name, start)
