"""The window's FInsm5 trend is drawn against the fatigue tracker's steady baseline, not the contraction's onset.

Before, each contraction's first 4 one-second bins were its baseline: an onset (the force rising, rest mixed into
the bins) put the trend at ~230 % on the neuropathy demo while the tracker, which never takes its first settle_s
as a baseline, reported a few %. A real FatigueView is fed a simulated contraction with an onset whose FInsm5 is
3x the steady value; the drawn values must be the tracker's own % change and nothing is drawn from the onset."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from dsp.fatigue import NOT_ASSESSED, FatigueTracker
from monitor.pipeline import MonitorState

HOP_S = 0.125
REST_UV, HOLD_UV = 5.0, 100.0
FINS_HOLD, FINS_RISE = 1e-13, 0.5  # FInsm5 rises 50 % over the hold (fatigue)
T0, ONSET_S, HOLD_S, HOLD_END_S, STRONGER_S = 1000.0, 6.0, 7.5, 46.0, 54.0


def features_at(t: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Rest, an onset (RMS rising for 1.5 s, FInsm5 3x: rest mixed with the first motor units), a steady hold whose
    FInsm5 rises linearly, then twice the force (another contraction for the tracker)."""
    since = t - T0
    if since < ONSET_S:
        rms, fins = REST_UV, 2.0 * FINS_HOLD
    elif since < HOLD_S:
        rms, fins = REST_UV + (HOLD_UV - REST_UV) * (since - ONSET_S) / (HOLD_S - ONSET_S), 3.0 * FINS_HOLD
    elif since < HOLD_END_S:
        rms, fins = HOLD_UV, FINS_HOLD * (1.0 + FINS_RISE * (since - HOLD_S) / (HOLD_END_S - HOLD_S))
    else:
        rms, fins = 2.5 * HOLD_UV, FINS_HOLD
    noise = 1.0 + 0.02 * rng.standard_normal(4)
    return {"MNF": np.array([100.0 * noise[0]]), "MDF": np.array([90.0 * noise[1]]),
            "FInsm5": np.array([fins * noise[2]]), "RMS": np.array([rms * noise[3]])}


def _no_forecaster() -> None:
    raise FileNotFoundError("this test draws no endurance forecast")


def test_fins_trend_is_the_trackers_change_from_its_steady_baseline(qtbot) -> None:
    from monitor.gui.endurance import EnduranceForecast
    from monitor.gui.fatigue import FatigueView

    rng = np.random.default_rng(11)
    tracker = FatigueTracker(fs=2048.0, n_channels=1)
    state = MonitorState()
    pipeline = SimpleNamespace(state=state, engine=SimpleNamespace(fatigue=tracker))
    view = FatigueView(pipeline, lambda: T0, forecast=EnduranceForecast(_no_forecaster, background=False))
    qtbot.addWidget(view)
    compared = not_assessed = 0
    for t in T0 + HOP_S * np.arange(1, int(STRONGER_S / HOP_S) + 1):
        features = features_at(t, rng)
        report = tracker.update_features(t, features)
        with state.lock:
            state.features.append(t, features)
            state.fatigue = report
        if round((t - T0) / HOP_S) % 40:  # the view refreshes every 5 s of signal
            continue
        view.refresh()
        # item 2: the badge never reads "fresh" where no MDF change was judged; it says "not assessed" and why
        if not report.learning and np.isnan(report.mdf_change_pct[0]):
            assert view.badge.text() == NOT_ASSESSED and view.badge.toolTip() == report.reason != ""
            not_assessed += 1
        change = float(report.fins_change_pct[0])
        if t - T0 < HOLD_END_S and np.isfinite(change):
            # the tracker's present stretch is its last baseline_s of complete epochs (epochs and bins both count
            # from the first window): the bins of those seconds
            epoch_s, first = tracker.settings.epoch_s, HOP_S
            complete_end = first + np.floor((t - T0 - first) / epoch_s) * epoch_s
            seconds = view.fins_curve.xData * 60.0
            recent = (seconds - 0.5 >= complete_end - tracker.settings.baseline_s - 1e-6) & (seconds < complete_end)
            drawn = view.fins_curve.yData[recent]
            assert np.isfinite(drawn).all()
            assert abs(np.median(drawn) - change) < 2.0, (t - T0, np.median(drawn), change)
            compared += 1
    assert compared >= 5 and not_assessed >= 2
    seconds, fins = view.fins_curve.xData * 60.0, view.fins_curve.yData
    start = view.fins_baselines[0][0] - T0
    assert ONSET_S - 2.0 <= start <= ONSET_S + 0.5  # the tracker's contraction began at the onset
    # nothing from the onset: no bin that begins within settle_s of the contraction's start, nor at rest
    assert np.isnan(fins[seconds - 0.5 < start + tracker.settings.settle_s]).all()
    hold = (seconds > HOLD_S + 1.0) & (seconds < HOLD_END_S - 1.0)
    assert np.isfinite(fins[hold]).all()
    assert np.nanmax(np.abs(fins)) < 100.0 * FINS_RISE + 15.0  # no onset spike (truth: +50 % at the end)
    # twice and a half the force: not the baseline's contraction, not drawn
    assert np.isnan(fins[seconds > HOLD_END_S + 1.0]).all()
