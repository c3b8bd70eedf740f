"""Why simulated needle MUPs have fewer turns than the real recordings' MUPs: turns against template noise.

    nice .venv/bin/python -m benchmarks.bench_sim_needle_turns --real ../shared/data/needle-emg-clinical --seeds 3

A MUP's turns (Willison's rule, 25 µV either side: ``dsp.mup_measures.count_turns``) are counted on its median
template, so noise left in the template adds turns. For every MUP that ``dsp.mup_reading.analyse_needle`` accepts,
on real recordings (brought to 16384 Hz as in ``bench_sim_needle``) and on simulated ones (fibre-level needle,
10 %MVC force, 5 s, 16384 Hz), this records turns, amplitude, the template's noise (µV) and the number of
discharges averaged, then reports median turns per diagnosis in bins of template noise: if real MUPs with quiet
templates have about as many turns as simulated ones, the gap is noise in the real templates, not the MUPs' shape.
Per group it also gives the 10-50-90 % percentiles of the recordings' MUP means (``per_recording``: what
``bench_sim_needle`` reports). Prints one JSON object; ``--out FILE`` writes it and every MUP's row.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.common import emit

NOISE_BINS_UV = (0.0, 2.0, 4.0, 8.0, 16.0, np.inf)
SIM_FS = 16384.0


def mup_rows(signal: np.ndarray, fs: float, recording: str) -> list[dict[str, float | str]]:
    """Measures, template noise and discharges of every accepted MUP of one recording (``recording`` names it, so
    that the rows also give ``bench_sim_needle``'s per-recording means)."""
    from dsp.mup_reading import analyse_needle

    report = analyse_needle(signal, fs)
    rows: list[dict[str, float | str]] = []
    for unit, measure in zip(report.units, report.measures, strict=True):
        rows.append(
            {
                "recording": recording,
                "turns": float(measure.turns),
                "phases": float(measure.phases),
                "amplitude_uv": float(measure.amplitude_uv),
                "duration_ms": float(measure.duration_ms),
                "area_uv_ms": float(measure.area_uv_ms),
                "rise_time_ms": float(measure.rise_time_ms),
                "firing_rate_hz": float(unit.firing_rate_hz),
                "template_noise_uv": float(unit.template_noise_uv),
                "discharges": float(unit.n_discharges),
            }
        )
    return rows


def real_rows(folder: Path, limit: int | None) -> dict[str, list[dict[str, float | str]]]:
    from benchmarks.bench_sim_needle import real_recordings
    from dsp.resample import NEEDLE_FS

    groups: dict[str, list[dict[str, float | str]]] = {}
    for info, signal in real_recordings(folder, limit):
        groups.setdefault(info.label, []).extend(mup_rows(signal, NEEDLE_FS, info.path.name))
    return groups


def simulated_rows(n_seeds: int, mvc: float) -> dict[str, list[dict[str, float | str]]]:
    from simulators.emg import EmgSimulator, SimulationConfig

    groups: dict[str, list[dict[str, float | str]]] = {}
    for condition, severity in (("healthy", "moderate"), ("myopathy", "moderate"), ("neuropathy", "moderate")):
        for seed in range(n_seeds):
            config = SimulationConfig(
                layout="needle", fs=SIM_FS, condition=condition, severity=severity, profile="hold",
                mvc_percent=mvc, tissue="fibres", seed=seed, fatigue_rate=0.0,
            )
            data = EmgSimulator(config).generate(5.0)[:, 0].astype(np.float64)
            groups.setdefault(f"sim {condition}", []).extend(mup_rows(data, SIM_FS, f"{condition} {seed}"))
    return groups


def by_noise(rows: list[dict[str, float | str]]) -> list[dict[str, object]]:
    noise = np.array([r["template_noise_uv"] for r in rows])
    turns = np.array([r["turns"] for r in rows])
    out = []
    for low, high in zip(NOISE_BINS_UV[:-1], NOISE_BINS_UV[1:], strict=True):
        inside = (noise >= low) & (noise < high)
        if inside.any():
            out.append(
                {"noise_uv": [low, None if np.isinf(high) else high], "mups": int(inside.sum()),
                 "median_turns": float(np.median(turns[inside])),
                 "turns_10_90": [float(v) for v in np.percentile(turns[inside], [10, 90])]}
            )
    return out


def summary(rows: list[dict[str, float | str]]) -> dict[str, object]:
    noise = np.array([r["template_noise_uv"] for r in rows])
    turns = np.array([r["turns"] for r in rows])
    rho = None
    if len(rows) > 2:
        rho = float(np.corrcoef(np.argsort(np.argsort(noise)), np.argsort(np.argsort(turns)))[0, 1])
    return {
        "mups": len(rows),
        "median_turns": float(np.median(turns)) if rows else None,
        "median_template_noise_uv": float(np.median(noise)) if rows else None,
        "median_discharges": float(np.median([r["discharges"] for r in rows])) if rows else None,
        "spearman_turns_noise": rho,
        "by_template_noise": by_noise(rows),
    }


RECORDING_MEASURES = ("amplitude_uv", "duration_ms", "phases", "turns", "area_uv_ms", "firing_rate_hz")


def per_recording(rows: list[dict[str, float | str]]) -> dict[str, object]:
    """10th, 50th and 90th percentiles of the recordings' MUP means (``bench_sim_needle``'s figures)."""
    recordings: dict[str, list[dict[str, float | str]]] = {}
    for row in rows:
        recordings.setdefault(str(row["recording"]), []).append(row)
    out: dict[str, object] = {"recordings": len(recordings)}
    for name in RECORDING_MEASURES:
        means = [float(np.mean([float(r[name]) for r in mups])) for mups in recordings.values()]
        if means:
            out[name] = [round(float(v), 2) for v in np.percentile(means, [10, 50, 90])]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path)
    parser.add_argument("--real-limit", type=int)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--mvc", type=float, default=10.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    groups: dict[str, list[dict[str, float | str]]] = {}
    if args.seeds > 0:
        groups.update(simulated_rows(args.seeds, args.mvc))
    if args.real is not None:
        groups.update(real_rows(args.real, args.real_limit))
    result = {name: {**summary(rows), "per_recording": per_recording(rows)} for name, rows in groups.items()}
    if args.out is not None:
        args.out.write_text(json.dumps({"summary": result, "rows": groups}, indent=1))
    emit("sim_needle_turns", result)


if __name__ == "__main__":
    main()
