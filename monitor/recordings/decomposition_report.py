"""`analyze --decompose`: motor units of a high-density recording, their discharge times and a report.

The whole recording (after --start/--end) calibrates the decomposition (dsp.decomposition); the discharges are
then those the live path would find streaming the same samples (dsp.decomposition.detect), so a report and a live
session with the same calibration agree. Writes:

- ``discharges.csv``: unit, sample, time_s (recording clock), instantaneous_hz (1 / interval to the previous one);
- ``decomposition.json``: per unit SIL, discharges, mean rate, ISI CoV, recruitment and de-recruitment force
  (%MVC at the first and last discharge) when the recording has a force channel; the settings used;
- ``decomposition_raster.png`` (raster, smoothed rates, force), ``decomposition_muaps.png`` (each unit's MUAP
  peak-to-peak amplitude on the electrode positions, spike-triggered average of the band-passed signal);
- ``motor_units.npz``: the unit set (filters, MUAP maps, numbers) for a later session's ``--motor-units``
  (dsp.decomposition_tracking);
- with ``--motor-units SAVED.npz``: ``motor_units_found_again.json``, the saved units applied directly to this
  recording (discharges, rate, whether each is found again by its MUAP) and this recording's units matched to them
  (by the saved filters' discharges and by MUAP maps);
- a section appended to ``report.md``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from monitor.errors import UserError

MIN_CHANNELS = 16  # fewer electrodes do not separate motor units (the extension alone cannot)
FORCE_KEY = "force_percent_mvc"
RATE_WINDOW_S = 1.0  # Hann window of the smoothed discharge rate (De Luca's convention)
MUAP_WINDOW_S = 0.025  # +- around each discharge for the spike-triggered average
#: longest calibration: its extended, whitened copy takes ~1 GB per minute at 64 channels x 2048 Hz
MAX_CALIBRATION_S = 60.0


def write_decomposition_report(
    recording: Any, out: Path, starts: int = 64, figures: bool = True, decomposition: Any | None = None,
    saved: Any | None = None,
) -> list[Path]:
    """The files above for ``recording``; ``decomposition``: a calibration made elsewhere (else the recording's);
    ``saved``: a ``dsp.decomposition_tracking.UnitSet`` of an earlier session to find again."""
    from dsp.decomposition import DecompositionSettings, bandpass, decompose, detect

    data = np.asarray(recording.data, dtype=np.float64)
    if data.shape[1] < MIN_CHANNELS:
        raise UserError(f"--decompose needs a high-density recording (>= {MIN_CHANNELS} channels), "
                        f"this one has {data.shape[1]}")  # fmt: skip
    if not np.isfinite(data).all():
        raise UserError("--decompose: the recording holds NaN or infinite samples; cut them out with --start/--end")
    if saved is not None and (saved.decomposition.n_channels, saved.decomposition.fs) != (data.shape[1], recording.fs):
        raise UserError(f"--motor-units: the saved units were calibrated on {saved.decomposition.n_channels} channels "
                        f"at {saved.decomposition.fs:g} Hz; this recording has {data.shape[1]} at {recording.fs:g} Hz")
    lo, hi = 0, data.shape[0]
    try:
        if decomposition is None:
            lo, hi = most_active_span(data, recording.fs, MAX_CALIBRATION_S)
            if hi - lo < data.shape[0]:
                print(f"decomposition: calibrated on {lo / recording.fs:.1f}-{hi / recording.fs:.1f} s, the most "
                      f"active {MAX_CALIBRATION_S:g} s")  # fmt: skip
            decomposition = decompose(data[lo:hi], recording.fs, DecompositionSettings(starts=starts))
    except ValueError as error:
        raise UserError(f"--decompose: {error}") from None
    result = decomposition
    trains = detect(result, data)
    force = recording.auxiliary.get(FORCE_KEY) if getattr(recording, "auxiliary", None) else None
    summary = _summary(result, trains, recording.fs, force)
    written = [_write_csv(trains, recording, out / "discharges.csv")]
    path = out / "decomposition.json"
    path.write_text(json.dumps(summary, indent=1) + "\n")
    written.append(path)
    written += _write_unit_set(result, data, lo, hi, trains, recording, out, saved)
    if figures and trains:
        filtered = bandpass(result.sos, data)
        written.append(_raster_figure(trains, recording.fs, force, out / "decomposition_raster.png"))
        written.append(_muap_figure(trains, filtered, recording, out / "decomposition_muaps.png"))
    _append_markdown(summary, out / "report.md", [p.name for p in written if p.suffix == ".png"])
    print(f"decomposition: {len(trains)} motor units (SIL >= {result.settings.sil_threshold:g}), "
          f"{sum(len(t) for t in trains)} discharges in discharges.csv")  # fmt: skip
    return written


def _write_unit_set(result: Any, data: np.ndarray, lo: int, hi: int, trains: list[np.ndarray], recording: Any,
                    out: Path, saved: Any | None) -> list[Path]:  # fmt: skip
    """``motor_units.npz`` (MUAP maps over the whole recording) and, against a saved set, what was found again."""
    from dsp.decomposition import bandpass
    from dsp.decomposition_tracking import UnitSet, find_again, grid_cells, muap_templates, reapply, save_units
    from dsp.decomposition_tracking import unit_set as make_unit_set

    cells = grid_cells(recording.layout, data.shape[1])
    templates = muap_templates(bandpass(result.sos, data), trains, recording.fs)  # the whole recording's discharges
    fresh = UnitSet(result, templates, cells, np.arange(len(result.units)))
    written: list[Path] = []
    if saved is not None:
        matches = find_again(saved, make_unit_set(result, data[lo:hi], cells), data[lo:hi]) if result.units else []
        ids = np.arange(len(result.units)) + (int(saved.unit_ids.max()) + 1 if saved.unit_ids.size else 0)
        for match in matches:
            ids[match.found] = saved.unit_ids[match.saved]
        fresh.unit_ids = ids
        direct = reapply(saved, data)
        report = {
            "applied_directly": [{"saved_unit_id": row.unit_id, "found_again": row.found_again,
                                  "muap_similarity": row.similarity, "discharges": int(row.discharges.size),
                                  "mean_rate_hz": row.mean_rate_hz} for row in direct],
            "decomposed_afresh": [{"saved_unit_id": int(saved.unit_ids[m.saved]), "unit": m.found,
                                   "muap_similarity": m.similarity, "grid_shift": list(m.shift),
                                   "evidence": m.evidence} for m in matches],
            "match_threshold": "normalised 2-D cross-correlation of single-differential MUAPs >= 0.8 "
                               "(Martinez-Valdes et al. 2017; openhdemg), one grid shift for all units",
        }  # fmt: skip
        path = out / "motor_units_found_again.json"
        path.write_text(json.dumps(report, indent=1) + "\n")
        written.append(path)
        again = sum(row.found_again for row in direct)
        print(f"decomposition: saved units applied directly: {again} of {len(direct)} found again; decomposed "
              f"afresh: {len(matches)} of {len(result.units)} units are saved ones (motor_units_found_again.json)")
        _append_found_again(report, out / "report.md")
    written.append(save_units(out / "motor_units.npz", fresh, note=f"analyze --decompose {recording.source}"))
    return written


def _append_found_again(report: dict[str, Any], path: Path) -> None:
    lines = ["", "### Saved motor units found again (--motor-units)", "",
             "| saved unit | applied directly: found again | MUAP similarity | discharges | mean rate (Hz) | "
             "decomposed afresh: unit | MUAP similarity | evidence |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    fresh = {row["saved_unit_id"]: row for row in report["decomposed_afresh"]}
    for row in report["applied_directly"]:
        match = fresh.get(row["saved_unit_id"], {})
        lines.append(f"| {row['saved_unit_id']} | {'yes' if row['found_again'] else 'no'} | {row['muap_similarity']} "
                     f"| {row['discharges']} | {row['mean_rate_hz']} | {match.get('unit', '-')} | "
                     f"{match.get('muap_similarity', '-')} | {match.get('evidence', '-')} |")  # fmt: skip
    with path.open("a") as handle:
        handle.write("\n".join(lines) + "\n")


def most_active_span(data: np.ndarray, fs: float, seconds: float) -> tuple[int, int]:
    """(start, stop) samples of the ``seconds`` with the most signal power (all of it when shorter)."""
    length = int(seconds * fs)
    if data.shape[0] <= length:
        return 0, data.shape[0]
    power = np.concatenate([[0.0], np.cumsum((data - data.mean(axis=0)) ** 2, axis=0).sum(axis=1)])
    step = max(1, int(fs))
    starts = np.arange(0, data.shape[0] - length + 1, step)
    best = int(starts[np.argmax(power[starts + length] - power[starts])])
    return best, best + length


def _summary(result: Any, trains: list[np.ndarray], fs: float, force: np.ndarray | None) -> dict[str, Any]:
    units = []
    for index, (unit, train) in enumerate(zip(result.units, trains, strict=True)):
        intervals = np.diff(train) / fs
        steady = intervals[intervals < 0.4]  # a pause longer than 400 ms is not part of the rate (openhdemg too)
        row: dict[str, Any] = {
            "unit": index,
            "sil": round(unit.sil, 4),
            "discharges": int(len(train)),
            "mean_rate_hz": round(float(1.0 / steady.mean()), 2) if steady.size else None,
            "isi_cov": round(float(steady.std() / steady.mean()), 3) if steady.size > 1 else None,
            "first_s": round(float(train[0] / fs), 4) if len(train) else None,
            "last_s": round(float(train[-1] / fs), 4) if len(train) else None,
        }
        if force is not None and len(train):
            row["recruitment_percent_mvc"] = round(float(force[train[0]]), 2)
            row["derecruitment_percent_mvc"] = round(float(force[train[-1]]), 2)
        units.append(row)
    settings = result.settings
    return {
        "units": units,
        "extension": result.extension,
        "starts": settings.starts,
        "contrast": settings.contrast,
        "sil_threshold": settings.sil_threshold,
        "rejected_below_sil": result.rejected_sil,
        "duplicates_removed": result.duplicates_removed,
    }


def _write_csv(trains: list[np.ndarray], recording: Any, path: Path) -> Path:
    rows = []
    for unit, train in enumerate(trains):
        rates = np.full(len(train), np.nan)
        rates[1:] = recording.fs / np.diff(train)
        rows += [(int(sample), unit, rate) for sample, rate in zip(train.tolist(), rates.tolist(), strict=True)]
    rows.sort()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["unit", "sample", "time_s", "instantaneous_hz"])
        for sample, unit, rate in rows:
            rate_text = "" if np.isnan(rate) else f"{rate:.3f}"
            writer.writerow([unit, sample, f"{float(recording.timestamps[sample]):.6f}", rate_text])
    return path


def smoothed_rates(trains: list[np.ndarray], n_samples: int, fs: float) -> np.ndarray:
    """(U, N) discharge rate in Hz: each train convolved with a Hann window of unit area over RATE_WINDOW_S."""
    from scipy import signal

    window = signal.windows.hann(max(3, int(RATE_WINDOW_S * fs)))
    window *= fs / window.sum()
    rates = np.zeros((len(trains), n_samples))
    for unit, train in enumerate(trains):
        impulses = np.zeros(n_samples)
        impulses[train] = 1.0
        rates[unit] = signal.oaconvolve(impulses, window, mode="same")
    return rates


def _raster_figure(trains: list[np.ndarray], fs: float, force: np.ndarray | None, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_samples = int(max(int(t[-1]) for t in trains if len(t)) + 1) if any(len(t) for t in trains) else 1
    if force is not None:
        n_samples = len(force)
    time_axis = np.arange(n_samples) / fs
    figure, (raster, rates) = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    for unit, train in enumerate(trains):
        raster.vlines(train / fs, unit - 0.4, unit + 0.4, linewidth=0.6, color=f"C{unit % 10}")
        rates.plot(time_axis, smoothed_rates([train], n_samples, fs)[0], color=f"C{unit % 10}", linewidth=1)
    raster.set_ylabel("motor unit")
    raster.set_ylim(-0.6, len(trains) - 0.4)
    raster.set_yticks(range(len(trains)))
    rates.set_ylabel("discharge rate (Hz, 1 s Hann)")
    rates.set_xlabel("time (s)")
    for axis in (raster, rates):
        if force is not None:
            twin = axis.twinx()
            twin.plot(time_axis, force[:n_samples], color="0.5", linewidth=0.8)
            twin.set_ylabel("force (%MVC)")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def muap_maps(trains: list[np.ndarray], filtered: np.ndarray, fs: float) -> np.ndarray:
    """(U, C) peak-to-peak amplitude (µV) of each unit's spike-triggered average around its discharges."""
    half = int(MUAP_WINDOW_S * fs)
    maps = np.zeros((len(trains), filtered.shape[1]))
    for unit, train in enumerate(trains):
        inside = train[(train >= half) & (train < filtered.shape[0] - half)]
        if inside.size == 0:
            continue
        segments = filtered[inside[:, None] + np.arange(-half, half + 1)[None, :]]  # (k, 2 half + 1, C)
        average = segments.mean(axis=0)
        maps[unit] = average.max(axis=0) - average.min(axis=0)
    return maps


def _muap_figure(trains: list[np.ndarray], filtered: np.ndarray, recording: Any, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    maps = muap_maps(trains, filtered, recording.fs)
    positions = _positions(recording, filtered.shape[1])
    columns = min(5, len(trains))
    rows = int(np.ceil(len(trains) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 3.2 * rows), squeeze=False)
    for unit, axis in enumerate(axes.ravel()):
        axis.set_axis_off()
        if unit >= len(trains):
            continue
        points = axis.scatter(positions[:, 0], positions[:, 1], c=maps[unit], s=60, marker="s", cmap="viridis")
        axis.set_title(f"unit {unit}: {maps[unit].max():.0f} µV", fontsize=9)
        axis.set_aspect("equal")
        figure.colorbar(points, ax=axis, fraction=0.05)
    figure.suptitle("MUAP peak-to-peak amplitude on the electrodes")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _positions(recording: Any, n_channels: int) -> np.ndarray:
    if recording.layout:
        from simulators.electrodes import ElectrodeLayout

        layout = ElectrodeLayout.from_dict(recording.layout)
        if layout.n_channels == n_channels:
            return np.asarray(layout.positions_mm, dtype=float) * np.array([1.0, -1.0])  # first row at the top
    side = int(np.ceil(np.sqrt(n_channels)))  # no layout: channels in reading order on a square
    index = np.arange(n_channels)
    return np.column_stack([index % side, -(index // side)]).astype(float)


def _append_markdown(summary: dict[str, Any], report: Path, figures: list[str]) -> None:
    lines = ["", "## Motor units (--decompose)", "",
             f"{len(summary['units'])} units (SIL >= {summary['sil_threshold']:g}, extension {summary['extension']}, "
             f"{summary['starts']} starts); discharge times in `discharges.csv`.", "",
             "| unit | SIL | discharges | mean rate (Hz) | ISI CoV | recruited (%MVC) | de-recruited (%MVC) |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for unit in summary["units"]:
        lines.append(f"| {unit['unit']} | {unit['sil']} | {unit['discharges']} | {unit['mean_rate_hz']} | "
                     f"{unit['isi_cov']} | {unit.get('recruitment_percent_mvc', '')} | "
                     f"{unit.get('derecruitment_percent_mvc', '')} |")  # fmt: skip
    lines += [""] + [f"![{name}]({name})" for name in figures]
    with report.open("a") as handle:
        handle.write("\n".join(lines) + "\n")
