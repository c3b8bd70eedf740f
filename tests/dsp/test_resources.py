"""StageProfiler: per-window arithmetic against independent computation, bounded memory, real RSS and CPU figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dsp.resources import RECENT_CALLS, StageProfiler


def test_recorded_times_give_exact_per_window_figures():
    profiler = StageProfiler()
    walls = [0.010, 0.020, 0.040]
    windows = [1, 4, 2]
    for wall, count in zip(walls, windows, strict=True):
        profiler.record("features", wall, cpu_s=wall / 2, windows=count)
    summary = profiler.report()["stages"]["features"]
    per_window = [1000 * w / n for w, n in zip(walls, windows, strict=True)]  # 10, 5, 20 ms
    assert summary["calls"] == 3 and summary["windows"] == 7
    assert summary["ms_per_window_mean"] == pytest.approx(1000 * sum(walls) / 7, abs=1e-3)
    assert summary["ms_per_window_p50"] == pytest.approx(np.percentile(per_window, 50))
    assert summary["ms_per_window_p99"] == pytest.approx(np.percentile(per_window, 99))
    assert summary["cpu_s"] == pytest.approx(0.035)


def test_stage_context_counts_each_block_and_survives_exceptions():
    profiler = StageProfiler()
    for _ in range(5):
        with profiler.stage("filters", windows=3):
            np.sort(np.random.default_rng(0).normal(size=20000))
    with pytest.raises(RuntimeError), profiler.stage("filters", windows=1):
        raise RuntimeError("stage failed")
    summary = profiler.report()["stages"]["filters"]
    assert summary["calls"] == 6 and summary["windows"] == 16
    assert summary["wall_s"] > 0 and summary["cpu_s"] > 0


def test_recent_times_are_bounded():
    profiler = StageProfiler()
    for _ in range(RECENT_CALLS + 500):
        profiler.record("model", 0.001)
    assert len(profiler.stages["model"].recent_ms_per_window) == RECENT_CALLS
    assert profiler.report()["stages"]["model"]["calls"] == RECENT_CALLS + 500


def test_memory_follows_a_real_allocation():
    profiler = StageProfiler()
    before = profiler.memory_mb()
    block = np.ones(200 * 2**20 // 8)  # 200 MiB, touched so it is resident
    after = profiler.memory_mb()
    assert after - before > 150
    del block


def test_cpu_percent_counts_process_cpu_over_wall_time():
    profiler = StageProfiler()
    total = 0.0
    for _ in range(8):
        total += float(np.linalg.svd(np.random.default_rng(1).normal(size=(200, 200)), compute_uv=False).sum())
    assert profiler.cpu_percent() > 0
    report = profiler.report()
    assert json.loads(json.dumps(report)) == report  # JSON-safe for evaluate's report
    assert "CPU" in profiler.status_line()


def test_negative_figures_are_refused():
    with pytest.raises(ValueError):
        StageProfiler().record("x", -1.0)


def test_recent_cpu_follows_the_load_of_the_last_interval_not_the_average():
    import time

    profiler = StageProfiler()
    time.sleep(0.3)  # idle first: the average since the start stays low
    profiler.cpu_percent_recent(min_interval_s=0.2)
    deadline = time.perf_counter() + 0.4
    while time.perf_counter() < deadline:  # one core busy
        np.sort(np.random.default_rng(2).normal(size=5000))
    busy = profiler.cpu_percent_recent(min_interval_s=0.2)
    assert busy > profiler.cpu_percent() + 10
    assert profiler.cpu_percent_recent(min_interval_s=10.0) == busy  # repeated until the next interval is due
    time.sleep(0.3)
    assert profiler.cpu_percent_recent(min_interval_s=0.2) < busy - 20
    report = profiler.report()
    assert report["peak_rss_mb"] >= report["rss_mb"] > 10
