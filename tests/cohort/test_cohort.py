"""Cohort analysis on real Dask clusters: a local one started by analyze, and separate scheduler and worker
processes on loopback with one worker killed mid-run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitor.cli import main
from monitor.cohort.cluster import check_scheduler_address
from monitor.cohort.sources import collect
from monitor.errors import UserError

RATE, SECONDS, CHANNELS = 2048, 4, 8
HOP, FIRST_END = 102, 510  # 50 ms hops at 2048 Hz; windows end on the hop's multiples once 410 samples are in


def windows_of(seconds: float) -> int:
    return (int(seconds * RATE) - FIRST_END) // HOP + 1


WINDOWS = windows_of(SECONDS)


def _write_recordings(folder: Path, count: int, seconds: float = SECONDS) -> list[Path]:
    paths = []
    for index in range(count):
        rng = np.random.default_rng(index)
        n = int(seconds * RATE)
        data = rng.normal(0.0, 20.0, (n, CHANNELS)) * (1 + 4 * (np.arange(n) > n // 2))[:, None]
        path = folder / f"site{index % 2}" / f"subject{index}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, data=data.astype(np.float32), fs=np.float64(RATE))
        paths.append(path)
    return paths


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]


def test_a_folder_is_analysed_once_a_bad_file_fails_alone_and_a_rerun_skips_what_is_done(tmp_path, capsys):
    data, out = tmp_path / "archive", tmp_path / "cohort"
    good = _write_recordings(data, 2)
    (data / "site0" / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip archive")
    options = ["--no-model", "--no-figures", "--quiet", "--workers", "1", "--no-dashboard", "--out", str(out)]

    assert main(["analyze", str(data), *options]) == 1  # one file failed
    table = pd.read_parquet(out / "cohort.parquet")
    assert len(table) == 3 and len(pd.read_csv(out / "cohort.csv")) == 3
    broken = table[table.file.str.endswith("broken.npz")].iloc[0]
    assert "broken.npz" in broken.error and "\n" not in broken.error
    analysed = table[table.error.isna()]
    assert sorted(analysed.file) == sorted(map(str, good)) and set(analysed.windows) == {WINDOWS}
    for relative in ("site0/subject0", "site1/subject1"):
        assert (out / relative / "report.md").is_file() and (out / relative / "windows.csv").is_file()
    assert not list((out / ".partial").glob("*"))  # every report moved into place
    assert "| [subject0.npz](site0/subject0/report.md)" in (out / "index.md").read_text()
    assert "1 failed" in (out / "cohort.md").read_text()

    # a rerun analyses only the failed file again; a changed recording is analysed anew, its old row replaced
    np.savez(good[1], data=np.zeros((RATE * 2, CHANNELS), np.float32) + 5, fs=np.float64(RATE))
    capsys.readouterr()
    assert main(["analyze", str(data), *options]) == 1
    assert "3 recordings: 2 analysed (1 from an earlier run), 1 failed" in capsys.readouterr().out
    rows = _rows(out)
    assert len(rows) == 3 + 2
    table = pd.read_parquet(out / "cohort.parquet")
    assert len(table) == 3 and table.set_index("file").loc[str(good[1]), "duration_s"] == 2.0


def test_a_manifest_gives_each_recording_its_options_and_carries_its_columns(tmp_path):
    paths = _write_recordings(tmp_path, 2)
    manifest = tmp_path / "cohort.csv"
    manifest.write_text("file,patient,label,muscle,fs\n"
                        f"{paths[0].relative_to(tmp_path)},p1,healthy,biceps,\n"
                        f"{paths[1].relative_to(tmp_path)},p2,myopathy,deltoid,\n")
    items = collect(str(manifest))
    assert [item.carried for item in items] == [{"patient": "p1", "label": "healthy"},
                                                {"patient": "p2", "label": "myopathy"}]
    assert [item.options for item in items] == [{"muscle": "biceps"}, {"muscle": "deltoid"}]
    assert [item.relative for item in items] == [Path("site0/subject0"), Path("site1/subject1")]
    assert len(collect(str(tmp_path / "site*" / "*.npz"))) == 2


def test_a_remote_scheduler_needs_tls():
    assert check_scheduler_address("tcp://127.0.0.1:8786", has_tls=False) == "tcp://127.0.0.1:8786"
    for address in ("tcp://10.20.30.40:8786", "tls://10.20.30.40:8786", "127.0.0.1"):
        with pytest.raises(UserError):
            check_scheduler_address(address, has_tls=False)
    assert check_scheduler_address("tls://10.20.30.40:8786", has_tls=True) == "tls://10.20.30.40:8786"


def test_a_local_cluster_listens_on_loopback_only_and_speaks_tls():
    import psutil

    from monitor.cohort.cluster import ClusterOptions, connect

    with connect(ClusterOptions(workers=1)) as client:
        assert client.scheduler.address.startswith("tls://127.0.0.1:")
        processes = [psutil.Process(), *psutil.Process().children(recursive=True)]
        listening = [c.laddr for p in processes for c in p.net_connections("inet") if c.status == psutil.CONN_LISTEN]
    assert len(listening) >= 3  # scheduler, its HTTP server, the worker (and the worker's nanny and HTTP server)
    assert {address.ip for address in listening} == {"127.0.0.1"}


def _start(command: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
                            cwd=Path(__file__).resolve().parents[2])


def _stop(processes: list[subprocess.Popen]) -> None:
    """Clients and workers before their scheduler: a worker whose scheduler went first may retry it for a long time."""
    for process in reversed(processes):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def test_an_external_cluster_loses_a_worker_mid_run_and_nothing_is_lost_or_written_twice(tmp_path):
    data, out = tmp_path / "archive", tmp_path / "cohort"
    count = 10
    _write_recordings(data, count, seconds=12)
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    scheduler_file = tmp_path / "scheduler.json"
    processes = [_start([*dask, "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                         "--scheduler-file", str(scheduler_file)], tmp_path / "scheduler.log")]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        for index in range(2):
            processes.append(_start([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads",
                                     "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"],
                                    tmp_path / f"worker{index}.log"))
        run = _start([sys.executable, "-m", "monitor.cli", "analyze", str(data), "--scheduler", address,
                      "--no-model", "--no-figures", "--quiet", "--out", str(out)], tmp_path / "analyze.log")
        processes.append(run)
        rows_file = out / "rows.jsonl"
        # a whole first line (the client appends a row and flushes it; a read may catch it half written)
        while time.monotonic() < deadline + 60 and not (rows_file.is_file() and "\n" in rows_file.read_text()):
            time.sleep(0.05)
        first = json.loads(rows_file.read_text().splitlines()[0])
        killed = int(first["worker"].rsplit(":", 1)[1])  # the worker that finished first is busy with the next
        os.kill(killed, signal.SIGKILL)
        assert run.wait(timeout=180) == 0, (tmp_path / "analyze.log").read_text()
    finally:
        _stop(processes)
    rows = _rows(out)
    assert len(rows) == count and len({row["key"] for row in rows}) == count  # each recording once
    assert all(row["error"] is None and row["windows"] == windows_of(12) for row in rows)
    survivors = {row["worker"] for row in rows} - {first["worker"]}
    assert len(survivors) == 1 and sum(row["worker"] in survivors for row in rows) >= count // 2
    assert sorted(p.parent.name for p in out.rglob("report.md")) == sorted(f"subject{i}" for i in range(count))
