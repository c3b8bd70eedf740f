"""Cohort analysis on Dask: recordings per second with 1 and 2 local worker processes, per-task overhead, and the
peak memory of the scheduler (the analyze process) and of each worker.

    .venv/bin/python -m benchmarks.bench_cohort --clinical ../shared/data/needle-emg-clinical --synthetic 2000

Each run is ``neurofusion analyze FOLDER --workers N`` in its own process into a fresh output folder, its process
tree sampled every 0.25 s. The synthetic archive (8-channel forearm ring, 2048 Hz, the three conditions in turn) is
simulated once as Dask tasks into the user's cache. JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, emit, load_average


def synthetic_archive(count: int, seconds: float) -> Path:
    from models.weight_cache import user_cache_dir
    from monitor.cohort.cluster import ClusterOptions, TaskRunner
    from simulators.emg import SIMULATOR_VERSION

    folder = Path(user_cache_dir()) / f"cohort-archive-{SIMULATOR_VERSION}-{count}x{seconds:g}s"
    missing = [index for index in range(count) if not _archive_path(folder, index).is_file()]
    if missing:
        TaskRunner(ClusterOptions(workers=2, dashboard=False))(
            _simulate_one, [(index, seconds, str(folder)) for index in missing])
    return folder


def _archive_path(folder: Path, index: int) -> Path:
    return folder / f"{index // 100:02d}" / f"rec{index:05d}.npz"


def _simulate_one(index: int, seconds: float, folder: str) -> None:
    import os

    from simulators.conditions import CONDITIONS
    from simulators.emg import EmgSimulator, SimulationConfig
    from simulators.files import record, write

    condition = CONDITIONS[index % len(CONDITIONS)]
    path = _archive_path(Path(folder), index)
    path.parent.mkdir(parents=True, exist_ok=True)
    simulator = EmgSimulator(SimulationConfig(condition=condition, profile="intermittent", seed=50_000 + index))
    partial = path.with_suffix(".partial.npz")
    write(record(simulator, seconds), partial)
    os.replace(partial, path)


def run_cohort(folder: Path, workers: int, figures: bool) -> dict[str, Any]:
    import psutil

    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "cohort"
        command = [sys.executable, "-m", "monitor.cli", "analyze", str(folder), "--out", str(out), "--workers",
                   str(workers), "--quiet", "--no-dashboard", *([] if figures else ["--no-figures"])]
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peaks: dict[int, tuple[str, float]] = {}
        stop = threading.Event()

        def sample() -> None:
            root = psutil.Process(process.pid)
            while not stop.is_set():
                try:
                    tree = [root, *root.children(recursive=True)]
                except psutil.NoSuchProcess:
                    return
                for member in tree:
                    try:
                        role = "scheduler" if member.pid == root.pid else _role(member)
                        rss = member.memory_info().rss / 2**20
                    except psutil.Error:
                        continue
                    if rss > peaks.get(member.pid, ("", 0.0))[1]:
                        peaks[member.pid] = (role, rss)
                stop.wait(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stdout, stderr = process.communicate()
        stop.set()
        sampler.join()
        wall = time.perf_counter() - started
        rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    ends = [row["started"] + row["task_seconds"] for row in rows]
    span = max(ends) - min(row["started"] for row in rows)
    workers_peak = sorted(rss for role, rss in peaks.values() if role == "worker")
    failed = [row for row in rows if row.get("error")]
    return {
        "workers": workers, "recordings": len(rows), "failed": len(failed),
        "first_errors": sorted({row["error"] for row in failed})[:3], "exit_code": process.returncode,
        "wall_s": round(wall, 2), "recordings_per_s_wall": round(len(rows) / wall, 3),
        "recordings_per_s_tasks": round(len(rows) / span, 3) if span > 0 else None,
        "task_seconds_median": round(sorted(r["task_seconds"] for r in rows)[len(rows) // 2], 3),
        "peak_rss_mib": {"scheduler_and_client": round(next((rss for role, rss in peaks.values()
                                                              if role == "scheduler"), 0.0), 1),
                         "each_worker": [round(rss, 1) for rss in workers_peak if rss > 50]},
        "load_average_after": load_average(), "stderr_tail": stderr.strip().splitlines()[-2:],
        "stdout_tail": stdout.strip().splitlines()[-1:],
    }


def _role(process: Any) -> str:
    command = " ".join(process.cmdline())
    return "worker" if "spawn" in command or "forkserver" in command or "multiprocessing" in command else "other"


def dask_overhead(tasks: int = 1000) -> dict[str, Any]:
    """Wall time per task of a task that does nothing, on a 2-worker local cluster (TLS, processes)."""
    from monitor.cohort.cluster import ClusterOptions, connect

    with connect(ClusterOptions(workers=2, dashboard=False)) as client:
        client.gather(client.map(_nothing, range(20), pure=False))  # warm
        started = time.perf_counter()
        client.gather(client.map(_nothing, range(tasks), pure=False))
        wall = time.perf_counter() - started
    return {"tasks": tasks, "ms_per_task_on_2_workers": round(1000 * wall / tasks, 3)}


def _nothing(index: int) -> int:
    return index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clinical", help="folder of real recordings (e.g. ../shared/data/needle-emg-clinical)")
    parser.add_argument("--synthetic", type=int, default=0, help="size of the simulated archive (0: none)")
    parser.add_argument("--synthetic-seconds", type=float, default=2.0, help="seconds per simulated recording")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no-figures", action="store_true", help="reports without PNG figures")
    args = parser.parse_args()
    results: dict[str, Any] = {"dask_overhead": dask_overhead()}
    archives = []
    if args.clinical:
        archives.append(("clinical", Path(args.clinical)))
    if args.synthetic:
        started = time.perf_counter()
        archives.append(("synthetic", synthetic_archive(args.synthetic, args.synthetic_seconds)))
        results["synthetic_generation_s"] = round(time.perf_counter() - started, 1)
    for name, folder in archives:
        runs = [run_cohort(folder, workers, figures=not args.no_figures) for workers in args.workers]
        by_workers = {run["workers"]: run for run in runs}
        speedup = None
        if 1 in by_workers and 2 in by_workers:
            speedup = round(by_workers[2]["recordings_per_s_wall"] / by_workers[1]["recordings_per_s_wall"], 2)
        results[name] = {"folder": str(folder), "runs": runs, "speedup_2_vs_1_workers": speedup}
    emit("cohort", results)


if __name__ == "__main__":
    main()
