"""Offline per-contraction MDF/MNF line, change and state by the live tracker's steady-force rule
(dsp.fatigue.line_windows): a force ramp gets "not assessed", a steady hold its line from settle_s on.

Before, the line went through every window of the span: on a ramp whose MDF falls as the force rises (faster
motor units recruited differently, or the electrode's view changing) it read "fatigued" from the force alone."""

from __future__ import annotations

import numpy as np
import pytest

from dsp.fatigue import NOT_ASSESSED, FatigueSettings, line_windows
from monitor.recordings.contractions import contraction_figures

HOP_S, WINDOW_S, LENGTH_S = 0.05, 0.2, 30.0


def columns_of(rms_uv: np.ndarray, mdf_hz: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    noise = 1.0 + 0.02 * np.random.default_rng(seed).standard_normal((4, len(rms_uv)))
    return {"RMS": rms_uv * noise[0], "MDF": mdf_hz * noise[1], "MNF": (mdf_hz + 12.0) * noise[2],
            "FInsm5": 1e-13 * (90.0 / mdf_hz) ** 5 * noise[3]}


@pytest.fixture()
def times() -> np.ndarray:
    return WINDOW_S + HOP_S * np.arange(int((LENGTH_S - WINDOW_S) / HOP_S) + 1)


def test_a_force_ramp_is_not_assessed(times) -> None:
    fraction = times / LENGTH_S
    ramp = columns_of(20.0 + 280.0 * fraction, 90.0 - 15.0 * fraction, seed=1)  # 20 -> 300 µV, MDF -17 %
    [figures] = contraction_figures(times, WINDOW_S, ramp, [(0.0, LENGTH_S)])
    assert figures.state == NOT_ASSESSED
    assert np.isnan([figures.mdf_slope_hz_per_min, figures.mdf_change_pct, figures.mnf_slope_hz_per_min,
                     figures.mnf_change_pct, figures.rms_change_pct, figures.fins_change_pct]).all()  # fmt: skip
    assert figures.to_dict()["mdf_change_pct"] is None  # JSON: null, not a number
    assert line_windows(ramp["RMS"], times, FatigueSettings()) is None


def test_a_steady_hold_gets_its_line_from_settle_s_on(times) -> None:
    mdf = 90.0 - 10.0 * times / LENGTH_S  # 20 Hz/min: -11 % over the hold, "fatiguing"
    hold = columns_of(np.full(len(times), 100.0), mdf, seed=2)
    [figures] = contraction_figures(times, WINDOW_S, hold, [(0.0, LENGTH_S)])
    assert figures.mdf_slope_hz_per_min == pytest.approx(-20.0, abs=2.0)
    assert figures.mdf_change_pct == pytest.approx(-11.1, abs=1.5)
    assert figures.state == "fatiguing"
    settings = FatigueSettings()
    used = line_windows(hold["RMS"], times, settings)
    assert used is not None and used.sum() == (times >= times[0] + settings.settle_s - 1e-9).sum()


def test_a_hold_after_an_onset_keeps_only_the_windows_at_its_force(times) -> None:
    # 1 s of rising force, then a steady hold, then the last 3 s at 3x the force: only the hold is in the line
    rms = np.where(times < 1.0, 10.0 + 90.0 * times, np.where(times > LENGTH_S - 3.0, 300.0, 100.0))
    onset_then_hold = columns_of(rms, np.where(times < 1.0, 60.0, 90.0 - 10.0 * times / LENGTH_S), seed=3)
    used = line_windows(onset_then_hold["RMS"], times, FatigueSettings(), span_s=2.0)
    assert used is None  # the present stretch (last 2 s) is at another force: not assessed
    hold_only = {name: values[times <= LENGTH_S - 3.0] for name, values in onset_then_hold.items()}
    kept = times[times <= LENGTH_S - 3.0]
    [figures] = contraction_figures(kept, WINDOW_S, hold_only, [(0.0, LENGTH_S - 3.0)])
    assert figures.mdf_slope_hz_per_min == pytest.approx(-20.0, abs=3.0)  # the onset's 60 Hz never in the line
