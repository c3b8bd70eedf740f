"""One recording of a cohort, analysed inside a Dask worker by the same code as ``neurofusion analyze FILE``.

Only the path and the options travel to the worker and only a small row comes back: the recording's samples never
pass through the scheduler, so its memory stays flat however large the cohort. The report is written to a private
folder and moved into place in one rename, so a task that is killed and run again never leaves half a report.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from monitor.cohort.sources import CohortItem

PARTIAL = ".partial"


def analyse_item(item: CohortItem, options: dict[str, Any], cohort: str, key: str) -> dict[str, Any]:
    """The cohort row of ``item``: its verdicts and summaries, or the one-line error that stopped it."""
    from monitor.cli import one_line
    from monitor.commands.analyze import run
    from monitor.errors import UserError

    started = time.time()
    clock = time.perf_counter()
    folder = Path(cohort)
    partial = folder / PARTIAL / f"{key}-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    args = argparse.Namespace(**{**options, **item.options})
    args.file, args.out, args.quiet = [str(item.path)], str(partial), True
    error = None
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            run(args)
        except UserError as failure:
            error = one_line(failure)
        except Exception as failure:  # a bad file fails alone; its row says why
            error = f"{type(failure).__name__}: {one_line(failure)}"
    row: dict[str, Any] = {"key": key, "file": str(item.path), **item.carried, "error": error}
    if error is None:
        report = folder / item.relative
        _move_into_place(partial, report)
        row.update(summary_row(_load_summary(report)))
        row["report"] = str(item.relative / "report.md")
    shutil.rmtree(partial, ignore_errors=True)
    row.update({"worker": f"{socket.gethostname()}:{os.getpid()}", "started": started,
                "task_seconds": time.perf_counter() - clock})
    return row


def _move_into_place(partial: Path, report: Path) -> None:
    report.parent.mkdir(parents=True, exist_ok=True)
    if report.exists():  # an earlier run's report of the same recording (another version of the file, or a retry)
        stale = report.with_name(f".{report.name}.stale-{os.getpid()}")
        os.replace(report, stale)
        shutil.rmtree(stale, ignore_errors=True)
    os.replace(partial, report)


def _load_summary(report: Path) -> dict[str, Any]:
    import json

    return json.loads((report / "summary.json").read_text())


# The shortest contraction whose MDF slope a cohort reports, in %/min. Fatigue protocols estimate the spectrum's rate
# of change over sustained isometric contractions; the shortest we cite is Falla et al. 2002 (Eur J Appl Physiol
# 87:542-549: rates of change of mean frequency, amplitude and conduction velocity from 15 s contractions at 50 % MVC).
# Below it a per-minute slope is seconds of window-to-window scatter multiplied many-fold: the clinical needle set's
# 5 s recordings gave 0.8 s "contractions" with slopes down to -3433 %/min.
MIN_SLOPE_CONTRACTION_S = 15.0


def mdf_slope_assessed(fatigue: dict[str, Any]) -> tuple[float | None, float | None, str | None]:
    """(the longest contraction's MDF slope in %/min or None, its duration in s, why the slope is not assessed)."""
    contractions = fatigue.get("contractions") or []
    longest = next((c for c in contractions if c.get("index") == fatigue.get("longest_contraction")), None)
    if longest is None:
        return None, None, "not assessed: no contraction found"
    duration = longest.get("duration_s")
    if duration is None or duration < MIN_SLOPE_CONTRACTION_S:
        return None, duration, (f"not assessed: longest contraction {duration or 0:.1f} s, shorter than the "
                                f"{MIN_SLOPE_CONTRACTION_S:g} s a per-minute slope needs")  # fmt: skip
    return fatigue.get("mdf_slope_pct_per_min"), duration, None


def summary_row(summary: dict[str, Any]) -> dict[str, Any]:
    """The flat, typed columns of one recording's summary.json that a cohort is compared on."""
    fatigue = summary.get("fatigue") or {}
    quality = summary.get("quality") or {}
    contractions = fatigue.get("contractions") or []
    slope, longest_s, slope_note = mdf_slope_assessed(fatigue)
    row: dict[str, Any] = {
        "duration_s": summary.get("duration_s"),
        "fs": summary.get("fs"),
        "channels": summary.get("n_channels"),
        "windows": summary.get("windows"),
        "mode": (summary.get("preprocessing") or {}).get("filters", {}).get("mode"),
        "surface_label": summary.get("majority_label"),
        "surface_confidence": summary.get("mean_confidence"),
        "surface_model_id": summary.get("model_id"),
        "fatigue_state": fatigue.get("final_state"),
        "contractions": len(contractions),
        "longest_contraction_s": longest_s,
        "mdf_slope_pct_per_min": slope,  # the longest contraction's, where it is long enough
        "mdf_slope_note": slope_note,
        "quality_issues": len(quality.get("issues") or []),
        "quality": "; ".join(quality.get("issues") or []),
        "analysis_seconds": summary.get("wall_seconds"),
    }
    condition = summary.get("condition") or {}
    if condition:
        row["condition"] = condition.get("label")
        row["condition_model_id"] = condition.get("model_id")
        for name, value in (condition.get("probabilities") or {}).items():
            row[f"p_{name}"] = value
    reading = summary.get("needle_reading") or {}
    if reading:
        mean = reading.get("mean") or {}
        row.update({
            "needle_reading": reading.get("label"),
            "muscle": reading.get("muscle"),
            "mups": reading.get("n_mups"),
            "mup_duration_ms": mean.get("duration_ms"),
            "mup_amplitude_uv": mean.get("amplitude_uv"),
            "mup_phases": mean.get("phases"),
            "mup_area_uv_ms": mean.get("area_uv_ms"),
        })
        agreement = summary.get("agreement") or {}
        row["reading_agrees_with_model"] = agreement.get("agree")
    return row
