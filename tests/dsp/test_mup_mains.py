"""Mains taken out of needle EMG before MUP analysis (dsp.mup_mains), and the reading's minimum number of MUPs."""

from __future__ import annotations

import numpy as np

from dsp.mup_mains import mains_frequency, remove_mains
from dsp.mup_measures import summarise
from dsp.mup_reading import MIN_MUPS_FOR_VERDICT, read_against_muscle
from dsp.mup_references import reference_for

FS = 16384.0


def _mup_train(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A biphasic 400 µV MUP at ~12 Hz with jitter, plus 10 µV white noise: not locked to mains."""
    n = int(seconds * FS)
    t = np.arange(-int(0.01 * FS), int(0.01 * FS)) / FS
    mup = -400 * np.exp(-((t / 1.5e-3) ** 2)) * (1 - (t / 1.5e-3) ** 2)
    x = rng.normal(0, 10, n)
    for start in np.cumsum(rng.normal(FS / 12, FS * 0.01, int(seconds * 14))).astype(int):
        if start + mup.size < n:
            x[start : start + mup.size] += mup
    return x


def test_mains_and_its_harmonics_are_removed_and_mups_kept():
    rng = np.random.default_rng(0)
    clean = _mup_train(5.0, rng)
    t = np.arange(clean.size) / FS
    # as in the clinical files: up to ~1 mV at the fundamental, a little off 50 Hz, odd harmonics
    mains = sum(a * np.sin(2 * np.pi * k * 50.03 * t + k) for k, a in ((1, 1000.0), (3, 120.0), (5, 40.0)))
    found = mains_frequency(clean + mains, FS)
    assert found is not None and abs(found - 50.03) < 0.005
    cleaned = remove_mains(clean + mains, FS)
    # what is left of the 1 mV mains (~7 µV rms: >40 dB down) is below the 10 µV noise floor, MUPs untouched
    assert np.sqrt(np.mean((cleaned - (clean - clean.mean())) ** 2)) < 10.0
    # without mains the search may still pick a bin (one DFT bin of broadband activity scatters), but what is then
    # fitted and removed is those bins' share of the activity: a few µV (3.3 here), under 10 % of its rms
    assert np.sqrt(np.mean((remove_mains(clean, FS) - clean) ** 2)) < 0.1 * clean.std()
    silent = np.zeros(int(FS))
    assert mains_frequency(silent, FS) is None and np.array_equal(remove_mains(silent, FS), silent)


def test_too_few_mups_give_no_verdict_but_say_insufficient():
    from dsp.mup_measures import MupMeasures

    def mup(duration: float) -> MupMeasures:
        return MupMeasures(500.0, duration, 0.0, duration, 2, 2, 2000.0, 4.0, 0.0, 0, False, 1.0)

    reference = reference_for("biceps")
    # five very long MUPs: a mean of 2x the reference, but five MUPs are not a muscle's mean
    few = summarise([mup(20.0)] * 5, reference.mean_ranges(), reference.individual_ranges())
    reading = read_against_muscle(few, [], reference)
    assert reading.label == "not assessed" and reading.evidence[0].startswith("insufficient: 5 MUP(s)")
    enough = summarise([mup(20.0)] * MIN_MUPS_FOR_VERDICT, reference.mean_ranges(), reference.individual_ranges())
    assert read_against_muscle(enough, [], reference).label == "neurogenic"
