"""A cohort row reports the MDF slope per minute only for a contraction long enough to have one (monitor/cohort/task.py
MIN_SLOPE_CONTRACTION_S): the clinical needle set's 5 s recordings read slopes such as -3433 %/min, seconds of scatter
extrapolated to a minute."""

from __future__ import annotations

import json

import numpy as np

from monitor.cli import main
from monitor.cohort.report import write_cohort_summary
from monitor.cohort.task import MIN_SLOPE_CONTRACTION_S, summary_row

TIMING = {"ran": 3, "skipped": 0, "wall_s": 1.0, "workers": 1, "recordings_per_s": 3.0}


def fatigue_of(*durations_s: float, slope: float = -3433.0) -> dict:
    contractions = [{"index": index, "duration_s": duration, "mdf_slope_pct_per_min": slope}
                    for index, duration in enumerate(durations_s)]  # fmt: skip
    longest = max(range(len(durations_s)), key=lambda index: durations_s[index]) if durations_s else None
    return {"contractions": contractions, "longest_contraction": longest,
            "mdf_slope_pct_per_min": slope if durations_s else None}  # fmt: skip


def test_a_slope_from_a_contraction_shorter_than_the_minimum_is_not_assessed_with_the_reason():
    row = summary_row({"fatigue": fatigue_of(2.0, 4.6)})
    assert row["mdf_slope_pct_per_min"] is None
    assert row["longest_contraction_s"] == 4.6
    assert row["mdf_slope_note"] == ("not assessed: longest contraction 4.6 s, shorter than the 15 s a per-minute "
                                     "slope needs")


def test_a_slope_from_a_long_enough_contraction_is_reported_and_a_missing_contraction_is_said():
    row = summary_row({"fatigue": fatigue_of(MIN_SLOPE_CONTRACTION_S, 40.0, slope=-12.5)})
    assert (row["mdf_slope_pct_per_min"], row["longest_contraction_s"], row["mdf_slope_note"]) == (-12.5, 40.0, None)
    row = summary_row({"fatigue": fatigue_of()})
    assert row["mdf_slope_pct_per_min"] is None and row["mdf_slope_note"] == "not assessed: no contraction found"


def test_a_real_short_recording_has_a_slope_in_its_summary_but_not_in_its_cohort_row(tmp_path):
    # 2 s of rest, then an 8 s contraction (named: too little rest to learn a rest level from): `analyze` fits its
    # line (from settle_s on, the live rule: a 2 s contraction has none since then) and extrapolates it to a minute;
    # the cohort does not compare it
    rate, n = 2048, 10 * 2048
    data = np.random.default_rng(0).normal(0.0, 20.0, (n, 8)) * (1 + 4 * (np.arange(n) >= 2 * rate))[:, None]
    np.savez(tmp_path / "short.npz", data=data.astype(np.float32), fs=np.float64(rate))
    out = tmp_path / "report"
    options = ["--contraction", "2-10", "--no-model", "--no-figures", "--quiet", "--out", str(out)]
    assert main(["analyze", str(tmp_path / "short.npz"), *options]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fatigue"]["mdf_slope_pct_per_min"] is not None
    row = summary_row(summary)
    assert row["mdf_slope_pct_per_min"] is None and row["longest_contraction_s"] < 8.5
    assert row["mdf_slope_note"].startswith("not assessed: longest contraction")


def test_the_cohort_summary_counts_assessed_short_and_missing_contractions(tmp_path):
    rows = [summary_row({"fatigue": fatigue}) | {"file": f"r{index}.asc", "error": None}
            for index, fatigue in enumerate([fatigue_of(30.0, slope=-8.0), fatigue_of(4.0), fatigue_of(5.0),
                                              fatigue_of()])]  # fmt: skip
    text = write_cohort_summary(rows, tmp_path, TIMING, figures=False).read_text()
    assert "Assessed for 1 recording(s) whose longest contraction lasted at least 15 s" in text
    assert "Not assessed for 2 recording(s) whose longest contraction was shorter (median 4.5 s)" in text
    assert "No contraction found in 1 recording(s)." in text
