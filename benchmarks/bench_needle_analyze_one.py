"""`neurofusion analyze` of ONE 5 s clinical needle recording, as a user runs it: a cold process, and warm in-process.

    .venv/bin/python -m benchmarks.bench_needle_analyze_one [--file F.asc.xz] [--cold 3] [--warm 5] [--no-figures]

Cold: ``analyze FILE --mode needle --quiet`` in a fresh interpreter, ``--cold`` times (wall; CPU of the child from
``getrusage``; which heavy modules it imported; one more, untimed run under ``-X importtime`` says how long each
took to import). Warm: the same command through ``monitor.cli.main`` in this process
``--warm`` times after one untimed run (imports done, model files cached by the OS), with the split that the command
itself reports: the DSP report pass (``wall_seconds``) and the MUP analysis + needle model (``needle_wall_seconds``).
Figures are written unless ``--no-figures`` (a clinic's default run writes them). The issue's target: a 5 s
recording analysed in under a second. On the shared 2-core machine wall time includes the other engineers' jobs:
read the CPU figures, and the load average printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, emit

DEFAULT_FILE = REPO.parent / "shared" / "data" / "needle-emg-clinical" / "02_Biceps Brachii" / "Healthy" / \
    "EMG _225 _13_ RB_Hea.asc.xz"
HEAVY = ("torch", "torch_geometric", "sklearn", "pandas", "matplotlib", "scipy.signal", "onnxruntime")
CHILD = (
    "import json, sys, time\n"
    "from monitor.cli import main\n"
    "code = main(sys.argv[1:])\n"
    f"heavy = {HEAVY!r}\n"
    "print('BENCH ' + json.dumps({'code': code, 'cpu_s': time.process_time(),\n"
    "      'imported': [m for m in heavy if m in sys.modules]}), file=sys.stderr)\n"
)


def spread(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    return {"median": round(float(np.median(array)), 3), "min": round(float(array.min()), 3),
            "max": round(float(array.max()), 3)}  # fmt: skip


def command(path: Path, out: Path, figures: bool) -> list[str]:
    return ["analyze", str(path), "--mode", "needle", "--quiet", "--out", str(out)] + ([] if figures else
                                                                                       ["--no-figures"])


def cold_runs(path: Path, folder: Path, runs: int, figures: bool) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    walls, cpus, imported = [], [], []
    for index in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", CHILD, *command(path, folder / f"cold{index}", figures)],
                                capture_output=True, text=True, cwd=REPO, env=env)  # fmt: skip
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if result.returncode != 0:
            raise SystemExit(f"analyze failed: {result.stderr.strip().splitlines()[-1:]}")
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        report = json.loads(next(line for line in result.stderr.splitlines() if line.startswith("BENCH "))[6:])
        imported = report["imported"]
    # one more, untimed, under -X importtime: where a fresh process's seconds go before any analysis starts
    traced = subprocess.run([sys.executable, "-X", "importtime", "-c", CHILD,
                             *command(path, folder / "traced", figures)], capture_output=True, text=True, cwd=REPO,
                            env=env)  # fmt: skip
    return {"runs": runs, "wall_s": spread(walls), "cpu_s": spread(cpus), "heavy_modules_imported": imported,
            "import_s_one_traced_run": import_seconds(traced.stderr)}  # fmt: skip


def import_seconds(importtime_log: str) -> dict[str, float]:
    """Seconds each heavy package took to import (``-X importtime``'s cumulative column), summed over its outermost
    imports: sklearn.decomposition and sklearn.mixture, or matplotlib and matplotlib.pyplot, are imported one after
    the other. A package's figure includes what it imported first: scipy.signal's holds scipy.stats, sklearn's
    holds pandas (also listed alone)."""
    entries = []  # (depth, module, seconds), children before their parent as importtime prints them
    for line in importtime_log.splitlines():
        fields = line.split("|")
        if line.startswith("import time:") and len(fields) == 3 and fields[1].strip().isdigit():
            name = fields[2].rstrip()
            entries.append(((len(name) - len(name.lstrip())) // 2, name.strip(), int(fields[1]) * 1e-6))
    seconds: dict[str, float] = {}
    for package in (*HEAVY, "numpy"):
        for index, (_, name, cumulative) in enumerate(entries):
            # an import within an outer import of the same package is already in that one's cumulative figure
            if _of(name, package) and not _nested(entries, index, package):
                seconds[package] = round(seconds.get(package, 0.0) + cumulative, 3)
    return seconds


def _nested(entries: list[tuple[int, str, float]], index: int, package: str) -> bool:
    """Whether entry ``index`` was imported from within an import of ``package`` (an ancestor of the same package)."""
    depth = entries[index][0]
    for ancestor_depth, name, _ in entries[index + 1 :]:
        if ancestor_depth < depth:
            if _of(name, package):
                return True
            depth = ancestor_depth
            if depth == 0:
                return False
    return False


def _of(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def warm_runs(path: Path, folder: Path, runs: int, figures: bool) -> dict:
    import contextlib
    import io

    from monitor.cli import main

    def once(index: int) -> tuple[float, float, dict]:
        out = folder / f"warm{index}"
        started, cpu = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(command(path, out, figures))
        if code != 0:
            raise SystemExit(f"analyze returned {code}")
        return time.perf_counter() - started, time.process_time() - cpu, json.loads((out / "summary.json").read_text())

    once(-1)  # imports, lazy caches and filter designs: what `cold` measures
    walls, cpus, dsp, needle = [], [], [], []
    for index in range(runs):
        wall, cpu, summary = once(index)
        walls.append(wall)
        cpus.append(cpu)
        dsp.append(summary["wall_seconds"])
        needle.append(summary["needle_wall_seconds"])
    return {"runs": runs, "wall_s": spread(walls), "cpu_s": spread(cpus),
            "dsp_report_wall_s": spread(dsp), "mup_analysis_and_model_wall_s": spread(needle)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE, help="a 5 s needle recording (.asc.xz)")
    parser.add_argument("--cold", type=int, default=3, help="fresh-process runs")
    parser.add_argument("--warm", type=int, default=5, help="in-process runs after one untimed run")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG figures, as analyze --no-figures")
    args = parser.parse_args()
    if not args.file.is_file():
        raise SystemExit(f"no recording at {args.file}")
    figures = not args.no_figures
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        cold = cold_runs(args.file, folder, args.cold, figures)
        warm = warm_runs(args.file, folder, args.warm, figures)
    emit("needle_analyze_one", {
        "file": args.file.name,
        "figures": figures,
        "cold_process": cold,
        "warm_in_process": warm,
        "target_s": 1.0,
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
    })


if __name__ == "__main__":
    main()
