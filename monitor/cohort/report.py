"""``cohort.md`` (and ``cohort.png``): what a cohort's recordings read, counted per verdict and per muscle."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

VERDICT_COLUMNS = ("condition", "needle_reading", "surface_label", "fatigue_state")


def write_cohort_summary(rows: list[dict[str, Any]], folder: Path, timing: dict[str, Any],
                         figures: bool = True) -> Path:
    ok = [row for row in rows if not row.get("error")]
    failed = [row for row in rows if row.get("error")]
    lines = ["# Cohort analysis", "",
             f"{len(rows)} recordings: {len(ok)} analysed, {len(failed)} failed; "
             f"{timing['ran']} run now, {timing['skipped']} already in the table (same content and options).",
             f"Wall time {timing['wall_s']:.1f} s on {timing['workers']} worker process(es) "
             f"({timing['recordings_per_s']:.2f} recordings/s for those run now).", "",
             "Table: [cohort.csv](cohort.csv) and cohort.parquet, one row per recording.", ""]
    for column in VERDICT_COLUMNS:
        counts = Counter(row.get(column) for row in ok if row.get(column) is not None)
        if counts:
            lines += [f"## {column.replace('_', ' ')}", "", "| verdict | recordings |", "| --- | --- |"]
            lines += [f"| {verdict} | {count} |" for verdict, count in counts.most_common()]
            lines.append("")
    lines += _crosstab(ok, "muscle", "condition") + _crosstab(ok, "label", "condition")
    lines += _crosstab(ok, "label", "needle_reading")
    lines += _slope_lines(ok)
    if failed:
        lines += ["## Failed", "", "| recording | error |", "| --- | --- |"]
        lines += [f"| {Path(row['file']).name} | {row['error']} |" for row in failed]
        lines.append("")
    if figures and ok:
        _figure(ok, folder / "cohort.png")
        lines += ["![verdicts](cohort.png)", ""]
    path = folder / "cohort.md"
    path.write_text("\n".join(lines))
    return path


def _slope_lines(rows: list[dict[str, Any]]) -> list[str]:
    """How many recordings have an MDF slope, and why the others have none (too short a contraction, none)."""
    from statistics import median

    from monitor.cohort.task import MIN_SLOPE_CONTRACTION_S

    if not any("mdf_slope_note" in row for row in rows):  # a table written before the slope was gated
        return []
    assessed = sum(1 for row in rows if row.get("mdf_slope_pct_per_min") is not None)
    short = [row["longest_contraction_s"] for row in rows
             if row.get("longest_contraction_s") is not None and row["longest_contraction_s"] < MIN_SLOPE_CONTRACTION_S]
    lines = ["## MDF slope (fatigue)", "",
             f"Assessed for {assessed} recording(s) whose longest contraction lasted at least "
             f"{MIN_SLOPE_CONTRACTION_S:g} s (the shortest fatigue protocol cited in docs/cohort.md)."]
    if short:
        lines.append(f"Not assessed for {len(short)} recording(s) whose longest contraction was shorter (median "
                     f"{median(short):.1f} s): a slope per minute from seconds is an extrapolation, not a measurement.")
    none_found = sum(1 for row in rows if row.get("longest_contraction_s") is None)
    if none_found:
        lines.append(f"No contraction found in {none_found} recording(s).")
    return lines + [""]


def _crosstab(rows: list[dict[str, Any]], by: str, verdict: str) -> list[str]:
    pairs = Counter((row.get(by), row.get(verdict)) for row in rows if row.get(by) and row.get(verdict))
    if not pairs:
        return []
    verdicts = sorted({v for _, v in pairs})
    groups = sorted({g for g, _ in pairs})
    lines = [f"## {verdict.replace('_', ' ')} by {by}", "", f"| {by} | " + " | ".join(verdicts) + " |",
             "| --- |" + " --- |" * len(verdicts)]
    lines += [f"| {g} | " + " | ".join(str(pairs.get((g, v), 0)) for v in verdicts) + " |" for g in groups]
    return lines + [""]


def _figure(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [c for c in VERDICT_COLUMNS if any(row.get(c) for row in rows)]
    figure, axes = plt.subplots(1, len(columns), figsize=(4 * len(columns), 3), squeeze=False)
    for axis, column in zip(axes[0], columns, strict=True):
        counts = Counter(row.get(column) for row in rows if row.get(column))
        axis.bar([str(k) for k in counts], list(counts.values()), color="#4477aa")
        axis.set_title(column.replace("_", " "))
        axis.tick_params(axis="x", rotation=30)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
