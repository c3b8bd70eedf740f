"""How much a needle recording changes from window to window: real patients against the fibre-level needle model.

    nice .venv/bin/python -m benchmarks.bench_sim_needle_variability --seeds 4 --mvc 10 \
        --real ../shared/data/needle-emg-clinical

Each recording (real: every file of the clinical set at 16384 Hz; simulated: ``--seeds`` subjects per condition and
severity holding ``--mvc`` %MVC for 5 s with the default artifacts) is conditioned as the needle model conditions
it (``models.needle_features.condition``: 20 Hz high-pass, 50/60 Hz notches), cut into non-overlapping 0.5 s windows
(the first dropped: the notches' start-up transient), and described by:
- ``cv_rms``: coefficient of variation of the window RMS;
- ``cv_spikes``: CV of the window spike count (local maxima of |x| above 5 robust SDs of the whole recording, at least
  2 ms apart);
- ``cv_mdf``: CV of the window median frequency (Welch, 100-3200 Hz);
- ``ac1_rms``: lag-1 autocorrelation of the window RMS (slow changes give high values, independent windows ~-0.1);
- ``trend_rms``: the log window RMS's linear trend over the recording, per second (signed drift);
- ``rms_uv``: the mean window RMS (to check that effort is matched);
- ``sd_rel_band``: mean over the relative band powers (100-3200 Hz, octaves) of their SD over windows.
Per group, the 10th, 50th and 90th percentiles over recordings. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.common import emit

SIM_FS = 16384.0
SIM_SECONDS = 5.0
WINDOW_S = 0.5
STATISTICS = ("cv_rms", "cv_spikes", "cv_mdf", "ac1_rms", "trend_rms", "rms_uv", "sd_rel_band")
BANDS_HZ = (100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0)


def variability(signal: np.ndarray, fs: float) -> dict[str, float]:
    """The window-to-window statistics of one raw recording at ``fs`` (the needle rate, 16384 Hz)."""
    from scipy.signal import welch

    from models.needle_features import condition

    x = condition(np.asarray(signal, dtype=np.float64)).astype(np.float64)
    size = int(round(WINDOW_S * fs))
    n = x.size // size
    windows = x[: n * size].reshape(n, size)[1:]
    rms = np.sqrt(np.mean(windows**2, axis=1))
    absx = np.abs(windows)
    noise = np.median(np.abs(x[size:])) / 0.6745
    above = absx > 5.0 * noise
    peaks = above[:, 1:-1] & (absx[:, 1:-1] >= absx[:, :-2]) & (absx[:, 1:-1] > absx[:, 2:])
    gap = int(0.002 * fs)
    spikes = np.zeros(len(windows))
    for row, flags in enumerate(peaks):
        index = np.flatnonzero(flags)
        if index.size:
            spikes[row] = 1 + int(np.sum(np.diff(index) > gap))
    freqs, psd = welch(windows, fs=fs, nperseg=1024, axis=1)
    usable = (freqs >= BANDS_HZ[0]) & (freqs < BANDS_HZ[-1])
    cumulative = np.cumsum(psd[:, usable], axis=1)
    mdf = freqs[usable][np.argmax(cumulative >= cumulative[:, -1:] / 2.0, axis=1)]
    bands = np.stack([np.log(np.median(psd[:, (freqs >= lo) & (freqs < hi)], axis=1) + 1e-6)
                      for lo, hi in zip(BANDS_HZ[:-1], BANDS_HZ[1:], strict=True)], axis=1)
    relative = bands - bands.mean(axis=1, keepdims=True)
    centred = rms - rms.mean()
    ac1 = float(np.sum(centred[1:] * centred[:-1]) / max(np.sum(centred**2), 1e-12))
    t = (np.arange(len(rms)) + 0.5) * WINDOW_S
    trend = float(np.polyfit(t, np.log(rms + 1e-3), 1)[0])

    def cv(values: np.ndarray) -> float:
        return float(np.std(values) / max(float(np.mean(values)), 1e-9))

    return {"cv_rms": cv(rms), "cv_spikes": cv(spikes), "cv_mdf": cv(mdf), "ac1_rms": ac1, "trend_rms": trend,
            "rms_uv": float(rms.mean()), "sd_rel_band": float(relative.std(axis=0).mean())}


def simulated(n_seeds: int, mvc: float, groups: str | None) -> dict[str, list[dict[str, float]]]:
    from simulators.emg import EmgSimulator, SimulationConfig
    from simulators.tissue import SEVERITIES

    out: dict[str, list[dict[str, float]]] = {}
    cases = [("healthy", "moderate")] + [(c, s) for c in ("myopathy", "neuropathy") for s in SEVERITIES]
    for condition, severity in cases:
        name = condition if condition == "healthy" else f"{condition}/{severity}"
        if groups and not any(name.startswith(prefix) for prefix in groups.split(",")):
            continue
        rows = []
        for seed in range(n_seeds):
            config = SimulationConfig(layout="needle", fs=SIM_FS, condition=condition, severity=severity,
                                      profile="hold", mvc_percent=mvc, tissue="fibres", seed=seed)
            rows.append(variability(EmgSimulator(config).generate(SIM_SECONDS)[:, 0], SIM_FS))
        out[name] = rows
    return out


def real(folder: Path, limit: int | None) -> dict[str, list[dict[str, float]]]:
    from benchmarks.bench_sim_needle import real_recordings
    from dsp.resample import NEEDLE_FS

    out: dict[str, list[dict[str, float]]] = {}
    for info, signal in real_recordings(folder, limit):
        out.setdefault(info.label, []).append(variability(signal, NEEDLE_FS))
    return out


def describe(rows: list[dict[str, float]]) -> dict[str, object]:
    result: dict[str, object] = {"recordings": len(rows)}
    for name in STATISTICS:
        values = np.array([row[name] for row in rows])
        result[name] = [round(float(v), 3) for v in np.percentile(values, [10, 50, 90])] if values.size else None
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--mvc", type=float, default=10.0)
    parser.add_argument("--groups", help="comma-separated prefixes of the simulated groups (default: all)")
    parser.add_argument("--real", type=Path, help="the clinical needle folder (../shared/data/needle-emg-clinical)")
    parser.add_argument("--real-limit", type=int, help="only this many real recordings, evenly spread")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.real is not None and not args.real.is_dir():
        parser.exit(2, f"no such folder: {args.real}\n")
    result: dict[str, object] = {"window_s": WINDOW_S, "sim_mvc_percent": args.mvc, "sim_seeds": args.seeds}
    if args.seeds > 0:
        result["simulated"] = {name: describe(rows) for name, rows in simulated(args.seeds, args.mvc,
                                                                                 args.groups).items()}
    if args.real is not None:
        result["real"] = {name: describe(rows) for name, rows in sorted(real(args.real, args.real_limit).items())}
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1))
    emit("sim_needle_variability", result)


if __name__ == "__main__":
    main()
