"""MUP measures on waveforms whose answers are known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from dsp.mup_measures import (
    INDIVIDUAL_REFERENCE,
    MEAN_REFERENCE,
    MeasureSettings,
    count_turns,
    measure_mup,
    summarise,
)

FS = 10_000.0


def _embedded(pulse: np.ndarray, before_ms: float = 10.0, after_ms: float = 10.0) -> np.ndarray:
    pad_before = np.zeros(int(before_ms * FS / 1000))
    pad_after = np.zeros(int(after_ms * FS / 1000))
    return np.concatenate([pad_before, pulse, pad_after])


def test_duration_area_and_amplitude_of_a_square_biphasic_wave():
    # +300 µV for 3 ms then -300 µV for 3 ms: onset/end exactly at the steps, 2 phases, 1 turn, area 1800 µV·ms
    half = int(3e-3 * FS)
    template = _embedded(np.concatenate([np.full(half, 300.0), np.full(half, -300.0)]))
    m = measure_mup(template, FS)
    assert m.amplitude_uv == pytest.approx(600.0)
    # the slope is taken over ±0.2 ms, so each step is seen 0.2 ms early and late (first to last active sample:
    # 300 µV / 0.4 ms = 18.75x the 40 µV/ms threshold); onset and end then lie between that sample and its quiet
    # neighbour (ratio 0), where the ratio crosses 1: 17.75 / 18.75 of a sample further out on each side
    beyond = 17.75 / 18.75 * 1000.0 / FS
    assert m.duration_ms == pytest.approx(6.0 + 0.4 - 1000.0 / FS + 2 * beyond)
    assert m.onset_ms == pytest.approx(10.0 - 0.2 - beyond)
    assert m.phases == 2
    assert m.turns == 2  # the top and the bottom: each reverses by 600 or 300 µV
    assert m.area_uv_ms == pytest.approx(1800.0, rel=0.02)
    assert m.thickness_ms == pytest.approx(3.0, rel=0.02)
    assert m.size_index == pytest.approx(2 * np.log10(0.6) + m.thickness_ms)
    assert not m.polyphasic
    assert m.satellites == 0
    assert m.rise_time_ms == pytest.approx(3.0)  # from the first sample of the top to the first of the bottom


def test_polyphasic_wave_counts_phases_turns_and_a_late_satellite():
    t = np.arange(int(12e-3 * FS)) / FS
    wave = 400.0 * np.sin(2 * np.pi * 500.0 * t)  # 12 half-cycles of 1 ms: 12 phases and 12 turns
    late = np.zeros(int(4e-3 * FS))
    satellite = 80.0 * np.hanning(int(1e-3 * FS))  # separated by 4 ms of silence: a satellite, not a phase
    template = _embedded(np.concatenate([wave, late, satellite]), after_ms=8.0)
    m = measure_mup(template, FS)
    assert m.phases == 12
    assert m.turns == 12  # every extreme, the last one too: the wave returns 400 µV to baseline after it
    assert m.polyphasic
    assert m.satellites == 1
    # 12 ms of wave, seen up to 0.2 ms early and late by the ±0.2 ms slope
    assert m.duration_ms == pytest.approx(12.0 + 0.4, abs=0.1)


def test_noise_raises_thresholds_so_duration_does_not_grow():
    rng = np.random.default_rng(0)
    half = int(3e-3 * FS)
    clean = _embedded(np.concatenate([np.full(half, 300.0), np.full(half, -300.0)]))
    noisy = clean + rng.normal(0.0, 8.0, clean.size)
    naive = measure_mup(noisy, FS)
    adapted = measure_mup(noisy, FS, noise_uv=8.0)
    assert adapted.duration_ms == pytest.approx(6.3, abs=0.3)
    assert naive.duration_ms > adapted.duration_ms + 2.0  # raw noise slopes would stretch it


def test_count_turns_follows_willison_rule():
    x = np.array([0.0, 150.0, 100.0, 120.0, -50.0, 60.0, 0.0])
    # 150 and -50 are turns; the 100 -> 120 wiggle is smaller than the 100 µV step and splits nothing
    np.testing.assert_array_equal(count_turns(x, 100.0), [1, 4])
    assert count_turns(np.sin(np.linspace(0, 20 * np.pi, 2000)) * 40.0, 100.0).size == 0
    # 20 extremes of ±60 µV: all but the first (no step before it) and the last (none after it)
    assert count_turns(np.sin(np.linspace(0, 20 * np.pi, 2000)) * 60.0, 100.0).size == 18


def test_summary_flags_means_and_outliers_against_the_reference_ranges():
    half = int(1.0e-3 * FS)
    small_short = measure_mup(_embedded(np.concatenate([np.full(half, 100.0), np.full(half, -100.0)])), FS)
    summary = summarise([small_short] * 4)
    assert summary.n_units == 4
    assert summary.mean["duration_ms"] < MEAN_REFERENCE["duration_ms"].low
    assert summary.mean_flags["duration_ms"] == "low"
    assert summary.mean_flags["amplitude_uv"] == "low"
    assert summary.outliers["duration_ms"] == {"low": 4, "high": 0}
    assert summary.sd["duration_ms"] == 0.0
    assert INDIVIDUAL_REFERENCE["phases"].flag(5) == "high"
    assert summarise([]).n_units == 0


def test_settings_are_respected():
    half = int(3e-3 * FS)
    template = _embedded(np.concatenate([np.full(half, 30.0), np.full(half, -30.0)]))
    assert measure_mup(template, FS).phases == 2
    assert measure_mup(template, FS, settings=MeasureSettings(amplitude_threshold_uv=50.0)).phases == 0


def test_duration_does_not_depend_on_where_the_samples_fall():
    # the same smooth triphasic MUP (sigma 0.3 ms, ~3.5 ms long: a short myopathic one) sampled with its onset
    # shifted by fractions of a sample: whole-sample onset/end would swing by up to 0.2 ms (6 %), interpolated
    # crossings by far less
    durations = []
    for shift in np.linspace(0.0, 0.9, 10):
        t = (np.arange(int(30e-3 * FS)) - shift) / FS - 15e-3
        xi = t / 0.3e-3
        durations.append(measure_mup(400.0 * (xi * xi - 1.0) * np.exp(-0.5 * xi * xi), FS).duration_ms)
    assert np.ptp(durations) < 0.02, np.round(durations, 3)
