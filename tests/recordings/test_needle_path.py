"""The needle path of `analyze`: any rate from 4 to 32 kHz and any gain the file states, resampled with an
anti-alias filter to the one rate the MUP analysis and the needle model use; several recordings of one muscle
pooled; bad input refused in one line. Real files: WFDB and EDF written here with a known gain, and slices of the
shared clinical needle set."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dsp.resample import NEEDLE_FS
from monitor.cli import main
from monitor.errors import UserError
from monitor.recordings import open_recording
from monitor.recordings.needle import looks_like_needle, needle_signal
from tests.conftest import NEEDLE_CLINICAL

BICEPS = NEEDLE_CLINICAL / "02_Biceps Brachii" / "Healthy"
# one healthy person (class healthy, patient 2): both biceps recordings
PERSON_2_BICEPS = [BICEPS / "EMG _203 _02_ RB_Hea.asc.xz", BICEPS / "EMG _204 _02_ LB_Hea.asc.xz"]
needs_needle_set = pytest.mark.skipif(not all(p.is_file() for p in PERSON_2_BICEPS),
                                      reason=f"{NEEDLE_CLINICAL} is not present")


def _tones(fs: float, seconds: float, tones_uv: dict[float, float]) -> np.ndarray:
    t = np.arange(int(seconds * fs)) / fs
    return sum(amplitude * np.sin(2 * np.pi * frequency * t) for frequency, amplitude in tones_uv.items())


def _amplitude_at(signal: np.ndarray, fs: float, frequency: float) -> float:
    """Amplitude of the sinusoid at ``frequency`` (Hann-windowed FFT of the middle, edges of the filter left out)."""
    middle = signal[len(signal) // 8 : -len(signal) // 8]
    window = np.hanning(middle.size)
    spectrum = np.abs(np.fft.rfft(middle * window)) * 2 / window.sum()
    frequencies = np.fft.rfftfreq(middle.size, 1 / fs)
    near = np.abs(frequencies - frequency) <= 3 * fs / middle.size
    return float(spectrum[near].max())


def _spectrum_db_above(signal: np.ndarray, fs: float, low_hz: float, reference_uv: float) -> float:
    """Largest spectral line at or above ``low_hz``, in dB relative to ``reference_uv``."""
    middle = signal[len(signal) // 8 : -len(signal) // 8]
    window = np.hanning(middle.size)
    spectrum = np.abs(np.fft.rfft(middle * window)) * 2 / window.sum()
    frequencies = np.fft.rfftfreq(middle.size, 1 / fs)
    return float(20 * np.log10(spectrum[frequencies >= low_hz].max() / reference_uv))


def test_wfdb_adc_gain_at_4khz_reads_in_microvolts_and_upsamples_without_images(tmp_path):
    import wfdb

    fs, gain = 4000.0, 400.0  # 400 converter steps per mV: one step is 2.5 uV
    signal_uv = _tones(fs, 2.0, {1000.0: 800.0})
    digital = np.round(signal_uv / 1000.0 * gain).astype(np.int16)[:, None]
    wfdb.wrsamp("site", fs=fs, units=["mV"], sig_name=["needle"], d_signal=digital, fmt=["16"], adc_gain=[gain],
                baseline=[0], write_dir=str(tmp_path))  # fmt: skip
    recording = open_recording(tmp_path / "site.hea")
    # the file's gain applied: digital value / gain mV, in microvolts, exactly
    np.testing.assert_allclose(recording.data[:, 0], digital[:, 0] / gain * 1000.0, rtol=1e-6)
    assert looks_like_needle(recording)
    needle = needle_signal(recording)
    assert needle.fs == NEEDLE_FS and needle.source_fs == 4000.0
    assert needle.samples.size == pytest.approx(2.0 * NEEDLE_FS, abs=2)
    assert _amplitude_at(needle.samples, NEEDLE_FS, 1000.0) == pytest.approx(800.0, rel=0.01)
    # upsampling 4x-ish makes images (3, 5, 7 kHz ...): above the recording's own Nyquist (2 kHz) nothing is left
    assert _spectrum_db_above(needle.samples, NEEDLE_FS, 2100.0, 800.0) <= -60.0


def test_edf_physical_units_at_32khz_and_the_anti_alias_filter(tmp_path):
    import edfio

    fs = 32768.0
    signal_uv = _tones(fs, 2.0, {1000.0: 500.0, 12000.0: 500.0})  # 12 kHz would alias to 4384 Hz at 16384 Hz
    edfio.Edf([edfio.EdfSignal(signal_uv / 1000.0, fs, label="needle", physical_dimension="mV",
                               physical_range=(-1.5, 1.5))]).write(tmp_path / "site.edf")  # fmt: skip
    recording = open_recording(tmp_path / "site.edf")
    assert recording.units == ["mV"]
    np.testing.assert_allclose(recording.data[:, 0], signal_uv, atol=3000.0 / 65535)  # 16-bit over +-1.5 mV
    needle = needle_signal(recording)
    assert _amplitude_at(needle.samples, NEEDLE_FS, 1000.0) == pytest.approx(500.0, rel=0.01)
    alias = _amplitude_at(needle.samples, NEEDLE_FS, NEEDLE_FS - 12000.0)
    assert 20 * np.log10(alias / 500.0) <= -60.0


@pytest.mark.parametrize("fs", [2000.0, 48000.0])
def test_a_rate_outside_4_to_32_khz_is_refused_in_one_line(tmp_path, capsys, fs):
    path = tmp_path / "site.npz"
    np.savez(path, data=_tones(fs, 1.0, {100.0: 100.0})[:, None].astype(np.float32), fs=np.float64(fs))
    with pytest.raises(UserError, match=rf"needle EMG needs 4-32 kHz; this recording is {fs:g} Hz"):
        needle_signal(open_recording(path))
    assert main(["analyze", str(path), "--mode", "needle", "--no-model", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("neurofusion analyze: error: site.npz: needle EMG needs 4-32 kHz") and "\n" not in err


def test_non_finite_samples_and_several_channels_are_refused_in_one_line(tmp_path, capsys):
    data = _tones(10000.0, 1.0, {500.0: 100.0})[:, None].astype(np.float32)
    data[2500:2510] = np.nan
    path = tmp_path / "gap.npz"
    np.savez(path, data=data, fs=np.float64(10000.0))
    assert main(["analyze", str(path), "--mode", "needle", "--no-model", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("neurofusion analyze: error: gap.npz: 10 non-finite samples (NaN/Inf) from 0.250 s; "
                   "--start/--end analyse a clean part")  # fmt: skip
    two = tmp_path / "two.npz"
    np.savez(two, data=np.zeros((10000, 2), np.float32), fs=np.float64(10000.0))
    with pytest.raises(UserError, match="needle analysis takes one channel and the recording has 2 .*--channels"):
        needle_signal(open_recording(two))


@needs_needle_set
def test_analyze_reads_a_real_asc_xz_as_needle_emg_without_being_told(tmp_path, capsys):
    out = tmp_path / "one"
    assert main(["analyze", str(PERSON_2_BICEPS[0]), "--age", "40", "--no-model", "--no-figures", "--quiet",
                 "--out", str(out)]) == 0  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    reading = summary["needle_reading"]
    assert reading["analysed_fs"] == NEEDLE_FS and reading["per_recording"][0]["recorded_fs"] == 32768.0
    # the set's file name says biceps (RB): its reference applies without --muscle, and the report says why
    assert (reading["muscle"], reading["muscle_from"], reading["age"]) == ("biceps", "file name", 40)
    assert reading["reference"]["muscle"] == "biceps"
    assert reading["n_mups"] == len(json.loads((out / "needle.json").read_text())["units"]) >= 1
    assert reading["label"] in ("normal", "myopathic", "neurogenic", "indeterminate", "not assessed")
    report = (out / "report.md").read_text()
    assert "recorded at 32768 Hz, analysed at 16384 Hz" in report and f"from {reading['n_mups']} MUPs" in report
    assert "biceps (from the file name)" in report
    assert "needle EMG reading" in capsys.readouterr().out


@needs_needle_set
def test_recordings_of_one_muscle_are_pooled_into_one_reading(tmp_path, capsys):
    out = tmp_path / "pooled"
    assert main(["analyze", *map(str, PERSON_2_BICEPS), "--muscle", "biceps", "--no-figures", "--quiet",
                 "--out", str(out)]) == 0  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    reading = summary["needle_reading"]
    per_recording = reading["per_recording"]
    assert [r["file"] for r in per_recording] == [p.name for p in PERSON_2_BICEPS]
    # every MUP of both recordings, read together against the biceps reference
    assert reading["n_mups"] == sum(r["mups"] for r in per_recording) == len(
        json.loads((out / "needle.json").read_text())["units"])
    assert reading["recordings"] == 2 and all(r["mups"] >= 1 for r in per_recording)
    assert (out / "EMG _203 _02_ RB_Hea" / "summary.json").is_file()  # each recording's own DSP report
    assert "2 recordings pooled" in (out / "report.md").read_text()
    # the bundled needle model's verdict for the person: the mean of the recordings' probabilities
    verdict = summary["condition"]
    if verdict is not None:  # None only where no needle model is installed
        own = verdict["per_recording"]
        assert [r["file"] for r in own] == [p.name for p in PERSON_2_BICEPS]
        for name, p in verdict["probabilities"].items():
            assert p == pytest.approx(np.mean([r["probabilities"][name] for r in own]), abs=1e-4)
        assert verdict["label"] == max(verdict["probabilities"], key=verdict["probabilities"].get)
        assert verdict["windows"] == sum(r["windows"] for r in own) > 0
        assert summary["agreement"] is None or summary["agreement"]["network_class"] == verdict["label"]


@needs_needle_set
def test_recordings_named_after_two_muscles_are_not_pooled(tmp_path, capsys):
    deltoid = NEEDLE_CLINICAL / "01_Deltoid" / "Healthy" / "EMG _003 _02_ RD_Hea.asc.xz"
    assert main(["analyze", str(PERSON_2_BICEPS[0]), str(deltoid), "--no-model", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("the file names give several muscles (biceps, deltoid): pool one muscle's recordings")


def test_several_recordings_pool_only_in_needle_mode(tmp_path, capsys):
    paths = []
    for name in ("a.npz", "b.npz"):
        paths.append(tmp_path / name)
        np.savez(paths[-1], data=np.zeros((2000, 8), np.float32), fs=np.float64(2048.0))
    assert main(["analyze", *map(str, paths), "--no-model", "--out", str(tmp_path / "out")]) == 2
    assert "pooled only in --mode needle" in capsys.readouterr().err


def test_report_flags_a_disagreement_between_the_reading_and_the_model():
    from monitor.recordings.report import needle_markdown

    summary = {
        "needle_reading": {"label": "normal", "n_mups": 21, "recordings": 3, "muscle": "deltoid", "age": None,
                           "analysed_fs": NEEDLE_FS, "myopathic_score": 0, "neurogenic_score": 1, "evidence": [],
                           "mean": {"duration_ms": 10.1}, "mean_flags": {}, "notes": [],
                           "per_recording": [{"file": "a.asc", "recorded_fs": 32768.0, "mups": 21,
                                              "reading": "normal"}]},
        "condition": {"label": "neuropathy", "probabilities": {"healthy": 0.2, "myopathy": 0.1, "neuropathy": 0.7},
                      "model_id": "needle-x", "windows": 40},
        "agreement": {"network_class": "neuropathy", "network_probability": 0.7, "rule_class": "healthy",
                      "agree": False, "network_probability_of_rule_class": 0.2},
    }  # fmt: skip
    text = needle_markdown(summary)
    assert "**DISAGREE**: the MUP reading says healthy, the model says neuropathy (70%; 20% for healthy)" in text
    assert "**neuropathy** (healthy 20%, myopathy 10%, neuropathy 70%; 40 windows, model needle-x)" in text
    summary["agreement"] = {**summary["agreement"], "agree": True, "rule_class": "neuropathy"}
    assert "DISAGREE" not in needle_markdown(summary) and "both say neuropathy" in needle_markdown(summary)


def test_an_unsupported_file_ends_analyze_with_one_line(tmp_path, capsys):
    path = tmp_path / "session.emgx"
    path.write_bytes(b"\x00\x01 proprietary")
    assert main(["analyze", str(path), "--mode", "needle", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("neurofusion analyze: error: session.emgx: unknown recording format") and "\n" not in err
