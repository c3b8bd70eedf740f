"""What every benchmark shares: LSL kept on this machine, the machine described, JSON out."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("LSLAPICFG", str(REPO / "monitor" / "lsl_api.cfg"))
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def machine() -> dict[str, Any]:
    import psutil

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": load_average(),
    }


def load_average() -> list[float]:
    """1, 5 and 15-minute load averages: the machine is shared, so every figure says how busy it was."""
    return [round(value, 2) for value in os.getloadavg()]


def emit(name: str, results: dict[str, Any]) -> None:
    print(json.dumps({"benchmark": name, "machine": machine(), **results}, indent=2))


class ProcessMeter:
    """CPU and resident memory of named processes over a measured span: the per-component figures every load
    benchmark reports.

    CPU is the process's user + system time (all its threads) divided by the wall time, as a percentage of one core,
    so a process that keeps one core busy reads 100 and a process on two cores can read up to 200. The deltas come
    from ``cpu_times()`` rather than ``cpu_percent()`` so that the whole span and each interval are measured the same
    way and one does not reset the other.
    """

    def __init__(self, processes: dict[str, Any]) -> None:
        import psutil

        self.processes: dict[str, psutil.Process] = {
            name: process if isinstance(process, psutil.Process) else psutil.Process(process)
            for name, process in processes.items()
        }
        self._start = self._last = self._snapshot()

    def _snapshot(self) -> tuple[float, dict[str, float]]:
        cpu = {}
        for name, process in self.processes.items():
            times = process.cpu_times()
            cpu[name] = times.user + times.system
        return time.monotonic(), cpu

    def _usage(self, since: tuple[float, dict[str, float]], now: tuple[float, dict[str, float]]) -> dict[str, float]:
        wall = max(now[0] - since[0], 1e-9)
        return {name: round((now[1][name] - since[1][name]) / wall * 100.0, 1) for name in self.processes}

    def rss_mib(self) -> dict[str, float]:
        return {name: round(process.memory_info().rss / 2**20, 1) for name, process in self.processes.items()}

    def interval(self) -> dict[str, dict[str, float]]:
        """CPU % since the previous call (or the start) and RSS now, per process."""
        now = self._snapshot()
        cpu, self._last = self._usage(self._last, now), now
        return {"cpu_percent": cpu, "rss_mib": self.rss_mib()}

    def total(self) -> dict[str, dict[str, float | None]]:
        """Per process: CPU % and CPU seconds since the meter started, RSS now and the process's peak RSS."""
        now = self._snapshot()
        cpu = self._usage(self._start, now)
        rss = self.rss_mib()
        return {name: {"cpu_percent": cpu[name], "cpu_s": round(now[1][name] - self._start[1][name], 2),
                       "rss_mib": rss[name], "peak_rss_mib": peak_rss_mib(process.pid)}
                for name, process in self.processes.items()}


def peak_rss_mib(pid: int) -> float | None:
    """The kernel's high-water mark of the process's RSS (Linux ``VmHWM``, over its whole life, start-up included),
    None where /proc does not say: reading it costs nothing, where sampling RSS would miss short peaks."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None
