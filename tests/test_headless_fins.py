"""The terminal dashboard showed FInsm5 as its absolute value ("FInsm5 7.47e-15"): a number in SI units that means
nothing at the bedside. It now shows what the window's fatigue readout shows, FInsm5's change from the
contraction's onset in whole percent ("FInsm5 change +12 %"), in the same number format."""

from __future__ import annotations

import io

import numpy as np
import pytest
from rich.console import Console

from dsp.fatigue import FatigueReport
from monitor.headless import HeadlessDashboard, fins_change_text
from tests.confirming_return import confirming_pipeline


def _report(fins_change_pct: list[float]) -> FatigueReport:
    per_channel = np.full(3, np.nan)
    return FatigueReport(
        timestamp=10.0, learning=False, active=np.ones(3, bool), rest_rms=np.full(3, 5.0), rms=np.full(3, 80.0),
        mnf_hz=np.full(3, 95.0), mdf_hz=np.full(3, 80.0), fins_m5=np.full(3, 7.47e-15),
        mnf_slope_hz_per_min=per_channel, mdf_slope_hz_per_min=per_channel, mdf_slope_pct_per_min=per_channel,
        mnf_change_pct=per_channel, mdf_change_pct=per_channel, fins_change_pct=np.asarray(fins_change_pct),
        rms_change_pct=per_channel, contraction_s=np.full(3, 4.0), states=("fresh",) * 3, state="fresh",
    )  # fmt: skip


def _fatigue_row(fins_change_pct: list[float]) -> str:
    pipeline = confirming_pipeline(signal_lost=False, held_samples=0)
    pipeline.state.features.append(10.0, {"MNF": np.full(3, 95.0), "MDF": np.full(3, 80.0),
                                          "FInsm5": np.full(3, 7.47e-15), "RMS": np.full(3, 80.0)})  # fmt: skip
    pipeline.state.fatigue = _report(fins_change_pct)
    dashboard = HeadlessDashboard(pipeline, console=Console(file=io.StringIO(), record=True, width=160))
    dashboard.console.print(dashboard.render())
    return next(line for line in dashboard.console.export_text().splitlines() if "FInsm5" in line)


def test_the_dashboard_shows_finsm5_as_its_change_not_in_si_units():
    row = _fatigue_row([10.0, 14.0, np.nan])
    assert "FInsm5 change +12 %" in row and "e-15" not in row
    assert "FInsm5 change — " in _fatigue_row([np.nan] * 3)  # at rest: no change to show


@pytest.mark.parametrize("value", [12.4, -3.6, -0.2, 0.3, 0.0, 250.0, None, float("nan")])
def test_same_number_format_as_the_window(value):
    from monitor.gui.fatigue import dash_number  # what the window writes with

    window = dash_number(None if value is None or np.isnan(value) else value, "+.0f", " %")
    assert fins_change_text(value) == window


def test_the_trend_row_says_not_assessed_and_why_never_fresh():
    from dataclasses import replace

    from dsp.fatigue import NOT_ASSESSED, REASON_OTHER_FORCE

    pipeline = confirming_pipeline(signal_lost=False, held_samples=0)
    pipeline.state.features.append(10.0, {"MNF": np.full(3, 95.0), "MDF": np.full(3, 80.0),
                                          "FInsm5": np.full(3, 7.47e-15), "RMS": np.full(3, 80.0)})  # fmt: skip
    pipeline.state.fatigue = replace(_report([np.nan] * 3), states=(NOT_ASSESSED,) * 3, state=NOT_ASSESSED,
                                     reasons=(REASON_OTHER_FORCE,) * 3, reason=REASON_OTHER_FORCE)  # fmt: skip
    dashboard = HeadlessDashboard(pipeline, console=Console(file=io.StringIO(), record=True, width=220))
    dashboard.console.print(dashboard.render())
    row = next(line for line in dashboard.console.export_text().splitlines() if "│ trend" in line)
    assert "not assessed (present stretch unsteady or not at the baseline's force)" in row and "fresh" not in row
