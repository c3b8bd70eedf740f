"""What every benchmark shares: LSL kept on this machine, the machine described, JSON out."""

from __future__ import annotations

import json
import os
import platform
import sys
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
