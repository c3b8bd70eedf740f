"""StageProfiler: per-window arithmetic against independent computation, bounded memory, real RSS, and CPU % figures
checked exactly on clocks the test moves (never a timing bound on a shared machine)."""

from __future__ import annotations

import json
from types import SimpleNamespace

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


class FakeClocks:
    """Wall clock and process CPU time moved by the test, so CPU % figures are checked exactly, not timed."""

    def __init__(self) -> None:
        self.wall, self.cpu = 100.0, 5.0

    def perf_counter(self) -> float:
        return self.wall

    def thread_time(self) -> float:
        return self.cpu

    def cpu_times(self) -> SimpleNamespace:
        return SimpleNamespace(user=self.cpu * 0.75, system=self.cpu * 0.25)

    @staticmethod
    def memory_info() -> SimpleNamespace:
        return SimpleNamespace(rss=300 * 2**20)

    def advance(self, wall_s: float, cpu_s: float) -> None:
        self.wall += wall_s
        self.cpu += cpu_s


@pytest.fixture
def clocks(monkeypatch: pytest.MonkeyPatch) -> FakeClocks:
    import dsp.resources

    fake = FakeClocks()
    monkeypatch.setattr(dsp.resources, "time", fake)
    return fake


def profiler_on(clocks: FakeClocks) -> StageProfiler:
    profiler = StageProfiler()
    profiler._process = clocks  # the process's CPU times, as psutil gives them (user + system)
    profiler.reset_clock()
    return profiler


def test_cpu_percent_counts_process_cpu_over_wall_time(clocks):
    profiler = profiler_on(clocks)
    clocks.advance(wall_s=4.0, cpu_s=3.0)
    assert profiler.cpu_percent() == pytest.approx(75.0)
    clocks.advance(wall_s=1.0, cpu_s=2.0)  # two cores busy for a second
    assert profiler.cpu_percent() == pytest.approx(100.0)
    report = profiler.report()
    assert json.loads(json.dumps(report)) == report  # JSON-safe for evaluate's report
    assert profiler.status_line() == "CPU 100% | RSS 300 MB"


def test_negative_figures_are_refused():
    with pytest.raises(ValueError):
        StageProfiler().record("x", -1.0)


def test_recent_cpu_follows_the_load_of_the_last_interval_not_the_average(clocks):
    profiler = profiler_on(clocks)
    clocks.advance(wall_s=0.5, cpu_s=0.05)  # before a whole interval: the average so far
    assert profiler.cpu_percent_recent(min_interval_s=2.0) == pytest.approx(10.0)
    clocks.advance(wall_s=2.5, cpu_s=0.25)  # idle first: 10 % over the first 3 s
    assert profiler.cpu_percent_recent(min_interval_s=2.0) == pytest.approx(10.0)
    clocks.advance(wall_s=2.0, cpu_s=2.0)  # then one core busy for 2 s
    busy = profiler.cpu_percent_recent(min_interval_s=2.0)
    assert busy == pytest.approx(100.0) and profiler.cpu_percent() == pytest.approx(100.0 * 2.3 / 5.0)
    clocks.advance(wall_s=1.0, cpu_s=0.0)
    assert profiler.cpu_percent_recent(min_interval_s=2.0) == busy  # repeated until the next interval is due
    clocks.advance(wall_s=1.5, cpu_s=0.5)
    assert profiler.cpu_percent_recent(min_interval_s=2.0) == pytest.approx(100.0 * 0.5 / 2.5)  # idle again


def test_peak_memory_is_at_least_the_current_one():
    report = StageProfiler().report()
    assert report["peak_rss_mb"] >= report["rss_mb"] > 10
