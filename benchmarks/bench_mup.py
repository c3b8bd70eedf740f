"""Quantitative needle EMG: speed of ``analyse_needle`` and its accuracy against the simulator's true MUAPs.

    .venv/bin/python -m benchmarks.bench_mup --seeds 6 --repeats 3

- speed: median wall time of ``analyse_needle`` on 8 s of simulated needle EMG at 10 kHz (one site per
  condition, seed 0; resampled to NEEDLE_FS = 16384 Hz inside, as every needle rate is) and on the real
  64-channel HD-EMG recording (32.5 s at 2048 Hz), with the real-time factor;
- accuracy: for ``--seeds`` subjects per condition at low effort, every extracted unit locked (>= 90 % of its
  discharges at one lag) to one true unit and holding >= 50 % of its discharges is "isolated"; its amplitude,
  duration and firing rate are compared with the true MUAP (simulator shape x gain at the needle, noise-free,
  measured by the same criteria) and the true mean rate; the rule-based reading is tallied per condition;
- moderate (``--moderate-effort``): the same accuracy at 3x those efforts (15 / 9 / 30 %MVC), nearer the clinical
  set's moderate contractions, with the share of extracted units that follow no true unit (< 50 % of their
  discharges at one lag: junk) and the duration error of every extracted unit against the true unit it follows
  best; the low-effort check cannot see junk that only a denser pattern makes (docs/needle-emg.md);
- sites: the same subjects examined at 4 needle sites (tip at (0, 0), (3, 0), (-3, 0), (0, 3) mm in the muscle's
  cross-section, same seed = same units), analysed together as an electromyographer pools ~20 MUPs from several
  sites: readings, MUPs per subject and subject means.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

import numpy as np

from benchmarks.common import REPO, emit
from simulators.muap import true_muap
from tests.needle_subjects import EFFORT, FS, SECONDS, match_unit, needle_subject

if TYPE_CHECKING:
    from dsp.mup import MupSettings
    from simulators.emg import EmgSimulator

HDEMG = REPO.parent / "shared" / "data" / "hdemg-vastus-lateralis" / "otb_testfile.mat"


def _timed(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def speed(repeats: int) -> dict[str, object]:
    import scipy.io

    from dsp.mup_reading import analyse_needle

    out: dict[str, object] = {}
    for condition in EFFORT:
        _, data = needle_subject(condition, 0)
        seconds = _timed(lambda data=data: analyse_needle(data, FS), repeats)
        out[f"needle_{condition}_8s_10khz_s"] = round(seconds, 3)
        out[f"needle_{condition}_realtime_factor"] = round(SECONDS / seconds, 1)
    if HDEMG.exists():
        grid = np.asarray(scipy.io.loadmat(HDEMG)["Data"][0, 0], dtype=np.float64)[:, :64]
        seconds = _timed(lambda: analyse_needle(grid, 2048.0), repeats)
        out["hdemg_64ch_32s_s"] = round(seconds, 3)
        out["hdemg_realtime_factor"] = round(grid.shape[0] / 2048.0 / seconds, 1)
    return out


def _subject(condition: str, seed: int, effort_scale: float) -> tuple[EmgSimulator, np.ndarray]:
    """``needle_subject`` at ``effort_scale`` times its condition's low effort."""
    if effort_scale == 1.0:
        return needle_subject(condition, seed)
    from simulators.emg import EmgSimulator, SimulationConfig

    config = SimulationConfig(layout="needle", fs=FS, condition=condition, profile="hold",
                              mvc_percent=EFFORT[condition] * effort_scale, seed=seed, fatigue_rate=0.0,
                              record_spikes=True)  # fmt: skip
    simulator = EmgSimulator(config)
    return simulator, simulator.generate(SECONDS)


def accuracy(n_seeds: int, effort_scale: float = 1.0, settings: MupSettings | None = None) -> dict[str, object]:
    from dsp.mup_measures import measure_mup
    from dsp.mup_reading import analyse_needle

    amplitude, duration, rate, extracted = [], [], [], 0
    every_unit_duration, junk = [], 0  # every extracted unit against the true unit it follows best
    readings: dict[str, dict[str, int]] = {c: {} for c in EFFORT}
    for condition in EFFORT:
        for seed in range(n_seeds):
            simulator, data = _subject(condition, seed, effort_scale)
            report = analyse_needle(data, FS, settings=settings)
            label = report.reading.label
            readings[condition][label] = readings[condition].get(label, 0) + 1
            extracted += len(report.units)
            for unit, measures in zip(report.units, report.measures, strict=True):
                # discharges are samples at the analysis rate (NEEDLE_FS), the simulator counts at its own FS
                at_fs = np.round(unit.discharges * FS / report.fs).astype(np.int64)
                true_unit, share, count = match_unit(at_fs, simulator)
                junk += share < 0.5
                truth = measure_mup(true_muap(simulator.shapes, simulator.gains, true_unit, FS), FS)
                if share >= 0.5 and truth.duration_ms > 0:
                    every_unit_duration.append(abs(measures.duration_ms / truth.duration_ms - 1.0))
                if share < 0.9 or unit.n_discharges < 0.5 * count:
                    continue
                amplitude.append(abs(measures.amplitude_uv / truth.amplitude_uv - 1.0))
                duration.append(abs(measures.duration_ms / truth.duration_ms - 1.0))
                rate.append(abs(unit.firing_rate_hz / (count / SECONDS) - 1.0))
    amplitude_a, duration_a, rate_a = np.array(amplitude), np.array(duration), np.array(rate)
    every = np.array(every_unit_duration)
    return {
        "subjects_per_condition": n_seeds,
        "effort_percent_mvc": {c: EFFORT[c] * effort_scale for c in EFFORT},
        "units_extracted": extracted,
        "isolated_units": int(amplitude_a.size),
        # units following no true unit (< 50 % of discharges at one lag): mixtures or background spikes
        "junk_units": int(junk),
        "junk_share": round(junk / max(extracted, 1), 3),
        "followed_unit_duration_error_median_p75": [round(float(np.quantile(every, q)), 4) for q in (0.5, 0.75)],
        "amplitude_error_median": round(float(np.median(amplitude_a)), 4),
        "amplitude_error_max": round(float(amplitude_a.max()), 4),
        "duration_error_median": round(float(np.median(duration_a)), 4),
        "duration_within_15_percent": round(float(np.mean(duration_a <= 0.15)), 3),
        "duration_error_max": round(float(duration_a.max()), 4),
        "firing_rate_error_median": round(float(np.median(rate_a)), 4),
        "firing_rate_error_max": round(float(rate_a.max()), 4),
        "readings": readings,
    }


SITES_MM = ((0.0, 0.0), (3.0, 0.0), (-3.0, 0.0), (0.0, 3.0))


def sites(n_seeds: int, settings: MupSettings | None = None) -> dict[str, object]:
    from dsp.mup_reading import analyse_needle
    from simulators.electrodes import ElectrodeLayout
    from simulators.emg import EmgSimulator, SimulationConfig

    out: dict[str, object] = {"sites_mm": [list(site) for site in SITES_MM]}
    for condition, effort in EFFORT.items():
        readings: dict[str, int] = {}
        units, durations, amplitudes = [], [], []
        for seed in range(n_seeds):
            channels = []
            for site in SITES_MM:
                config = SimulationConfig(layout=ElectrodeLayout.needle(site), fs=FS, condition=condition,
                                          profile="hold", mvc_percent=effort, seed=seed, fatigue_rate=0.0)
                channels.append(EmgSimulator(config).generate(SECONDS)[:, 0])
            report = analyse_needle(np.column_stack(channels), FS, settings=settings)
            readings[report.reading.label] = readings.get(report.reading.label, 0) + 1
            units.append(len(report.units))
            durations.append(report.summary.mean.get("duration_ms", float("nan")))
            amplitudes.append(report.summary.mean.get("amplitude_uv", float("nan")))
        out[condition] = {
            "readings": readings,
            "mups_per_subject": [int(min(units)), int(max(units))],
            "mean_duration_ms": [round(float(np.nanmin(durations)), 1), round(float(np.nanmax(durations)), 1)],
            "mean_amplitude_uv": [round(float(np.nanmin(amplitudes))), round(float(np.nanmax(amplitudes)))],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6, help="simulated subjects per condition for accuracy")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median reported)")
    parser.add_argument("--moderate-effort", action="store_true",
                        help="accuracy only, at 3x the low efforts (the guard for options that add MUPs)")
    parser.add_argument("--split-mixtures", type=int, default=0, metavar="N",
                        help="MupSettings.mixture_split_components for the accuracy figures (default 0: off)")
    parser.add_argument("--split-min-regularity", type=float, help="MupSettings.split_min_regularity (default 0.6)")
    args = parser.parse_args()
    from dsp.mup import MupSettings

    options = {"mixture_split_components": args.split_mixtures}
    if args.split_min_regularity is not None:
        options["split_min_regularity"] = args.split_min_regularity
    settings = MupSettings(**options)
    if args.moderate_effort:
        emit("mup_moderate", {"accuracy": accuracy(args.seeds, 3.0, settings), "settings": options})
        return
    emit("mup", {"speed": speed(args.repeats), "accuracy": accuracy(args.seeds, 1.0, settings),
                 "sites": sites(args.seeds, settings), "settings": options})  # fmt: skip


if __name__ == "__main__":
    main()
