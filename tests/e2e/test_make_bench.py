"""`make bench` (benchmarks.run_all): every benchmark of the quick set exists, a run writes one JSON summary with
each benchmark's own JSON in it, and what cannot run here is recorded as skipped, not failed. No figure is asserted
as a speed: only that the summary carries the benchmark's results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import run_all

REPO = Path(__file__).resolve().parents[2]


def test_every_benchmark_of_the_quick_set_exists_and_all_finds_every_script():
    scripts = {path.stem for path in (REPO / "benchmarks").glob("bench_*.py")}
    assert {benchmark.name for benchmark in run_all.QUICK} <= scripts
    assert {benchmark.name for benchmark in run_all.every_benchmark()} == scripts


def test_json_objects_are_found_between_the_lines_a_benchmark_prints():
    text = 'warming up\n{\n  "benchmark": "a",\n  "x": [1, {"y": 2}]\n}\nnot json {oops\n{"benchmark": "b"}\n'
    assert run_all.json_objects(text) == [{"benchmark": "a", "x": [1, {"y": 2}]}, {"benchmark": "b"}]


def test_a_benchmark_needing_absent_data_is_skipped_with_the_reason(monkeypatch, tmp_path):
    monkeypatch.setattr(run_all, "SHARED_DATA", tmp_path)
    analyze = next(benchmark for benchmark in run_all.QUICK if benchmark.name == "bench_analyze")
    entry = run_all.run_benchmark(analyze, analyze.quick_args, timeout_s=60)
    assert entry["status"] == "skipped" and entry["reason"] == f"needs {tmp_path / 'hdemg-vastus-lateralis'}"


@pytest.mark.timeout(240)
def test_run_all_writes_one_summary_with_the_benchmarks_json(tmp_path):
    out = tmp_path / "summary.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.run_all", "--only", "bench_dsp_chain", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=220)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert summary["suite"] == "quick" and summary["failed"] == []
    assert summary["machine"]["cores"] >= 1 and len(summary["load_average_after"]) == 3
    (entry,) = summary["benchmarks"]
    assert entry["status"] == "ok" and entry["exit_code"] == 0
    assert entry["command"] == "python -m benchmarks.bench_dsp_chain --channels 8 64 --duration 5"
    (result,) = entry["results"]
    assert result["benchmark"] == "dsp_chain"
    # 5 s of signal in 200 ms windows every 50 ms: the engine cut every one of them, at both channel counts
    assert result["results"]["8ch_engine"]["windows"] == result["results"]["64ch_engine"]["windows"] == 96
    unknown = subprocess.run([sys.executable, "-m", "benchmarks.run_all", "--only", "bench_nothing"], cwd=REPO,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert unknown.returncode == 2 and "no benchmark named bench_nothing" in unknown.stderr
