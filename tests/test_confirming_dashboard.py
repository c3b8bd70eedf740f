"""The headless dashboard while a returned stream's samples are held: it says so, and counts what the hold dropped."""

from __future__ import annotations

import io

from rich.console import Console

from tests.confirming_return import HELD, UNCONFIRMED_DROPPED, confirming_pipeline


def dashboard_for(pipeline):  # noqa: ANN001, ANN201 (a SimpleNamespace pipeline -> HeadlessDashboard)
    from monitor.headless import HeadlessDashboard

    return HeadlessDashboard(pipeline, console=Console(file=io.StringIO(), record=True, width=160))


def test_headless_dashboard_says_the_stream_is_back_and_counts_the_samples_the_hold_dropped():
    dashboard = dashboard_for(confirming_pipeline())
    summary = dashboard.summary()
    assert summary["signal"] == "confirming"
    assert summary["signal_phrase"] == "stream back, confirming its rate (2.0 s held)"
    assert summary["held_samples"] == HELD
    assert summary["dropped_samples"] == UNCONFIRMED_DROPPED and summary["unconfirmed_dropped"] == UNCONFIRMED_DROPPED
    dashboard.console.print(dashboard.render())
    shown = dashboard.console.export_text()
    signal_row = next(line for line in shown.splitlines() if "signal" in line)
    assert "stream back, confirming its rate (2.0 s held)" in signal_row and "signal lost" not in signal_row
    assert f"dropped {UNCONFIRMED_DROPPED} ({UNCONFIRMED_DROPPED} while confirming the rate)" in signal_row
    assert "dropped 0" not in shown


def test_headless_dashboard_counts_unconfirmed_drops_after_the_stream_is_confirmed():
    # released: streaming again, but the samples the hold pushed out stay lost and counted with the reader's
    pipeline = confirming_pipeline(signal_lost=False, held_samples=0)
    pipeline.engine.reader.dropped = 7
    summary = dashboard_for(pipeline).summary()
    assert summary["signal"] == "streaming" and summary["dropped_samples"] == 7 + UNCONFIRMED_DROPPED


def test_headless_dashboard_shows_the_refusal_in_one_line():
    refusal = "stream 'amp' returned as 'amp-v2' (EMG, float32, 3 ch at 2048 Hz), was ...; restart the monitor"
    dashboard = dashboard_for(confirming_pipeline(held_samples=0, incompatible=refusal))
    assert dashboard.summary()["signal"] == "refused" and dashboard.summary()["signal_phrase"] == refusal
