"""Resource figures (per-stage ms per window, CPU %, memory) in the status view and the headless dashboard."""

from __future__ import annotations

import io
import re

import numpy as np
import psutil
import pytest

from monitor.pipeline import DecisionRecord


@pytest.fixture
def fed_pipeline(ring_stream):
    """A real pipeline, not started, fed 6 s of noise through its engine (the DSP thread's own step)."""
    from monitor.pipeline import MonitorPipeline
    from tests.gui.conftest import stop_pipeline

    pipeline = MonitorPipeline(ring_stream.resolve(), publish=False)
    fs = pipeline.state.fs
    samples = np.random.default_rng(5).normal(0, 30, (int(6 * fs), 8)).astype(np.float32)
    for first in range(0, len(samples), 2048):
        pipeline.engine.process(samples[first : first + 2048], 1000.0 + np.arange(first, first + 2048) / fs, first)
    yield pipeline
    stop_pipeline(pipeline)


def test_status_view_shows_each_stage_per_window_with_cpu_and_memory(qtbot, fed_pipeline):
    from monitor.gui.status import StatusView

    state = fed_pipeline.state
    with state.lock:  # the model's time per decision, as the worker reports it: median 2.5 ms
        for sequence, worker_s in enumerate((0.002, 0.0025, 0.009)):
            state.decisions.append(DecisionRecord(sequence, 1000.0 + sequence, "healthy", np.array([1.0]),
                                                  ["healthy"], None, "m", 0.01, worker_s))  # fmt: skip
    view = StatusView(fed_pipeline)
    qtbot.addWidget(view)
    view.refresh()
    text = view.fields["resources"].text()
    profiler = fed_pipeline.engine.profiler
    windows = fed_pipeline.engine.stats.windows
    assert windows == 6 * 2048 // 102 - 5 + 1  # 410-sample windows end at every multiple of 102 from 510 on
    for name in ("filters", "quality+features+fatigue"):
        times = profiler.stages[name]
        assert times.windows == windows
        assert f"{name} {1000.0 * times.wall_s / windows:.2f} ms/win" in text
    assert "model (worker) 2.50 ms/win" in text
    # slowest first, after CPU and memory
    shown = [float(v) for v in re.findall(r"([\d.]+) ms/win", text)]
    assert shown == sorted(shown, reverse=True)
    rss = float(re.search(r"RSS (\d+) MB", text).group(1))
    assert abs(rss - psutil.Process().memory_info().rss / 2**20) < 50
    assert 0 <= float(re.search(r"CPU (\d+)%", text).group(1)) <= 100 * psutil.cpu_count()


def test_headless_dashboard_reports_the_same_stages(fed_pipeline):
    from rich.console import Console

    from monitor.headless import HeadlessDashboard

    output = io.StringIO()
    dashboard = HeadlessDashboard(fed_pipeline, console=Console(file=output, width=200))
    resources = dashboard.summary()["resources"]
    windows = fed_pipeline.engine.stats.windows
    assert {name: figures["windows"] for name, figures in resources["stages"].items()} == {
        "filters": windows, "quality+features+fatigue": windows}
    dashboard.console.print(dashboard.render())
    table = output.getvalue()
    filters = resources["stages"]["filters"]["ms_per_window_mean"]
    assert "resources" in table and f"filters {filters:.2f}" in table and "RSS" in table
