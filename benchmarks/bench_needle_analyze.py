"""How long `neurofusion analyze` takes on a 5 s clinical needle recording, stage by stage.

    .venv/bin/python -m benchmarks.bench_needle_analyze --recordings 10

In one process (imports and the model loaded once, as a clinic analysing a session's recordings would), for each of
``--recordings`` files of ../shared/data/needle-emg-clinical (every class and muscle, 32768 Hz, 5 s): reading the
xz-compressed .asc, checking and resampling to NEEDLE_FS, the quantitative MUP analysis, the needle model's verdict,
and the DSP pass of the report (filters, windows, features, fatigue). Then the whole command once per file in a
fresh interpreter (`analyze FILE --no-figures --quiet`), whose wall time adds Python's start and the imports.
Wall and CPU time both: on the shared 2-core machine the CPU time is what the work costs.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, emit

NEEDLE_SET = REPO.parent / "shared" / "data" / "needle-emg-clinical"


def spread(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64) * 1000.0
    return {"median_ms": round(float(np.median(array)), 1), "max_ms": round(float(array.max()), 1)}


def clocks() -> tuple[float, float]:
    """(wall, CPU of this process's threads) seconds: on a shared machine the CPU time is what the work costs, the
    wall time also what the other processes took from it."""
    return time.perf_counter(), time.process_time()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recordings", type=int, default=10, help="files to time (spread over the set)")
    parser.add_argument("--commands", type=int, default=2, help="whole `analyze` commands to time (fresh Python)")
    parser.add_argument("--model", help="needle model (default: the bundled one)")
    args = parser.parse_args()
    from dsp.engine import EngineSettings
    from monitor.recordings import open_recording
    from monitor.recordings.analysis import analyze_recording
    from monitor.recordings.needle import condition, load_condition_model, needle_signal, read_muscle

    files = sorted(NEEDLE_SET.rglob("*.asc.xz"))
    chosen = [files[i] for i in np.linspace(0, len(files) - 1, args.recordings).astype(int)]
    started = time.perf_counter()
    model = load_condition_model(args.model)
    model_load_s = time.perf_counter() - started
    names = ("read", "resample", "mup", "model", "dsp_report", "total")
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    mups = []
    for index, path in enumerate(chosen):
        marks = [clocks()]
        recording = open_recording(path)
        marks.append(clocks())
        signal = needle_signal(recording)
        marks.append(clocks())
        mups.append(read_muscle([signal]).n_mups)
        marks.append(clocks())
        if model is not None:
            condition(model, [signal])
        marks.append(clocks())
        analyze_recording(recording, None, EngineSettings(mode="needle"))
        marks.append(clocks())
        if index == 0:  # the first pays for lazy imports and caches: reported apart
            first_s = marks[-1][0] - marks[0][0]
            continue
        spans = [(a, b) for a, b in zip(marks[:-1], marks[1:], strict=True)] + [(marks[0], marks[-1])]
        for name, (start, end) in zip(names, spans, strict=True):
            wall[name].append(end[0] - start[0])
            cpu[name].append(end[1] - start[1])
    commands, command_cpu = [], []
    with tempfile.TemporaryDirectory() as folder:
        for index, path in enumerate(chosen[: args.commands]):
            command = [sys.executable, "-m", "monitor.cli", "analyze", str(path), "--no-figures", "--quiet",
                       "--out", str(Path(folder) / str(index))] + (["--model", args.model] if args.model else [])
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, cwd=REPO)
            commands.append(time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            command_cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    emit("needle_analyze", {
        "recordings": len(chosen),
        "recording_seconds": 5.0,
        "model_id": getattr(model, "model_id", None),
        "model_load_s": round(model_load_s, 2),
        "first_recording_s": round(first_s, 2),
        "per_recording_after_the_first_wall": {name: spread(values) for name, values in wall.items()},
        "per_recording_after_the_first_cpu": {name: spread(values) for name, values in cpu.items()},
        "mups_found": mups,
        "whole_command_wall_s": [round(s, 2) for s in commands],
        "whole_command_cpu_s": [round(s, 2) for s in command_cpu],
    })


if __name__ == "__main__":
    main()
