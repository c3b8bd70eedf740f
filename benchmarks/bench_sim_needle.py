"""Simulated needle MUPs against real patients, measured by the same analysis (``dsp.mup_reading.analyse_needle``).

    nice .venv/bin/python -m benchmarks.bench_sim_needle --seeds 6                       # simulated only
    nice .venv/bin/python -m benchmarks.bench_sim_needle --seeds 6 --real ../shared/data/needle-emg-clinical

- simulated: for each condition and severity, ``--seeds`` subjects of the fibre-level needle model
  (``tissue="fibres"``) hold ``--mvc`` %MVC for 5 s at 16384 Hz (the needle path's rate), one site each; the
  recording's MUP means (amplitude, duration, phases, turns, area) and the units' firing rates are one sample;
- real: every recording of the clinical set (32768 Hz, brought to 16384 Hz by ``dsp.resample.to_needle_rate``),
  analysed the same way, grouped by diagnosis (one sample per recording; patients give one to four recordings);
- per group: the number of recordings with MUPs, and the 10th, 50th and 90th percentiles of each recording mean;
  ``inside_real_10_90`` says, per simulated group and measure, whether its median lies within the real patients'
  10-90 % range of the same diagnosis.
Prints one JSON object; ``--out FILE`` also writes it. The analysis is whatever is in the checkout: the JSON names
the commit of the MUP analysis it used; to measure a commit and not another engineer's uncommitted
edits, run it in an export: ``git archive HEAD | tar -x -C /tmp/t && cd /tmp/t && NF_TREE_COMMIT=$(git -C /work/main
rev-parse --short HEAD) /work/main/.venv/bin/python -m benchmarks.bench_sim_needle ... --real /work/shared/data/...``.
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import REPO, emit

MEASURES = ("amplitude_uv", "duration_ms", "phases", "turns", "area_uv_ms")
SIM_FS = 16384.0
SIM_SECONDS = 5.0
CLASS_OF_LABEL = {"healthy": "healthy", "myopathy": "myopathy", "neuropathy": "neuropathy"}


def recording_figures(signal: np.ndarray, fs: float) -> dict[str, float] | None:
    """The recording's MUP means and mean firing rate, or None when no MUP was found."""
    from dsp.mup_reading import analyse_needle

    report = analyse_needle(signal, fs)
    if not report.measures:
        return None
    out = {name: float(np.mean([getattr(m, name) for m in report.measures])) for name in MEASURES}
    out["firing_rate_hz"] = float(np.mean([u.firing_rate_hz for u in report.units]))
    out["n_mups"] = float(len(report.measures))
    out["reading"] = report.reading.label  # type: ignore[assignment]
    return out


def simulated(n_seeds: int, mvc: float, only: str | None = None) -> dict[str, list[dict[str, float]]]:
    from simulators.emg import EmgSimulator, SimulationConfig
    from simulators.tissue import SEVERITIES

    groups: dict[str, list[dict[str, float]]] = {}
    cases = [("healthy", "moderate")] + [(c, s) for c in ("myopathy", "neuropathy") for s in SEVERITIES]
    for condition, severity in cases:
        name = condition if condition == "healthy" else f"{condition}/{severity}"
        if only is not None and not any(name.startswith(prefix) for prefix in only.split(",")):
            continue
        rows = []
        for seed in range(n_seeds):
            config = SimulationConfig(
                layout="needle", fs=SIM_FS, condition=condition, severity=severity, profile="hold", mvc_percent=mvc,
                tissue="fibres", seed=seed, fatigue_rate=0.0,
            )
            figures = recording_figures(EmgSimulator(config).generate(SIM_SECONDS)[:, 0].astype(np.float64), SIM_FS)
            if figures is not None:
                rows.append(figures)
        groups[name] = rows
    return groups


def real_recordings(folder: Path, limit: int | None) -> Iterator[tuple[Any, np.ndarray]]:
    """(NeedleRecordingInfo, signal at NEEDLE_FS) of the clinical set's recordings, ``limit`` spread evenly."""
    from dsp.resample import to_needle_rate
    from models.needle_corpus import scan
    from monitor.recordings.asc import parse

    infos = scan(folder)
    if limit:
        infos = infos[:: max(1, len(infos) // limit)][:limit]
    for info in infos:
        with lzma.open(info.path) as handle:
            raw = parse(handle.read(), info.path.name).astype(np.float64).ravel()
        yield info, to_needle_rate(raw, info.fs or 32768.0)


def real(folder: Path, limit: int | None) -> dict[str, list[dict[str, float]]]:
    from dsp.resample import NEEDLE_FS

    groups: dict[str, list[dict[str, float]]] = {}
    for info, signal in real_recordings(folder, limit):
        figures = recording_figures(signal, NEEDLE_FS)
        if figures is not None:
            groups.setdefault(CLASS_OF_LABEL.get(info.label, info.label), []).append(figures)
    return groups


ANALYSIS_FILES = ("dsp/mup.py", "dsp/mup_measures.py", "dsp/mup_reading.py", "dsp/resample.py")


def analysis_version() -> str:
    """The last commit of the MUP analysis files, '+uncommitted' when the checkout changes them; in an exported
    tree (``git archive``, no .git) the commit given in NF_TREE_COMMIT."""
    def git(*command: str) -> str:
        done = subprocess.run(["git", *command], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("log", "-1", "--format=%h", "--", *ANALYSIS_FILES)
    if not commit:
        return f"exported tree of {os.environ.get('NF_TREE_COMMIT', 'unknown commit')}"
    dirty = git("status", "--porcelain", "--", *ANALYSIS_FILES)
    return commit + (" +uncommitted changes" if dirty else "")


def describe(rows: list[dict[str, float]]) -> dict[str, object]:
    out: dict[str, object] = {"recordings": len(rows)}
    for name in (*MEASURES, "firing_rate_hz", "n_mups"):
        values = np.array([r[name] for r in rows], dtype=np.float64)
        if values.size:
            out[name] = [round(float(v), 2) for v in np.percentile(values, [10, 50, 90])]
    readings = [r["reading"] for r in rows]
    out["readings"] = {label: readings.count(label) for label in sorted(set(readings))}  # type: ignore[arg-type]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--mvc", type=float, default=10.0)
    parser.add_argument("--real", type=Path, help="the clinical needle folder (../shared/data/needle-emg-clinical)")
    parser.add_argument("--real-limit", type=int, help="analyse only this many recordings, evenly spread")
    parser.add_argument("--groups", help="comma-separated prefixes of the simulated groups to run (default: all)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result: dict[str, object] = {"analysis": analysis_version(), "sim_mvc_percent": args.mvc, "sim_seeds": args.seeds}
    sim = {name: describe(rows) for name, rows in simulated(args.seeds, args.mvc, args.groups).items()}
    result["simulated"] = sim
    if args.real is not None:
        measured = {name: describe(rows) for name, rows in real(args.real, args.real_limit).items()}
        result["real"] = measured
        inside: dict[str, dict[str, bool]] = {}
        for name, figures in sim.items():
            reference = measured.get(name.split("/")[0], {})
            inside[name] = {
                m: bool(reference[m][0] <= figures[m][1] <= reference[m][2])  # type: ignore[index]
                for m in (*MEASURES, "firing_rate_hz")
                if m in figures and m in reference
            }
        result["inside_real_10_90"] = inside
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1))
    emit("sim_needle", result)


if __name__ == "__main__":
    main()
