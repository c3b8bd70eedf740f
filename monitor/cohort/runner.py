"""``analyze DIR | GLOB | MANIFEST.csv``: every recording a Dask task, rows streamed into the cohort table."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from monitor.cohort.cluster import connect, options_from
from monitor.cohort.sources import CohortItem, collect
from monitor.cohort.table import CohortTable, content_hash, result_key

# analyze's options that say where and how to run, not what the analysis computes (kept out of the result key)
RUN_OPTIONS = ("file", "out", "quiet", "handler", "command", "verbose", "lsl_config", "scheduler", "workers",
               "tls_ca_file", "tls_cert", "tls_key", "no_dashboard")


def analysis_options(args: argparse.Namespace) -> dict[str, Any]:
    return {name: value for name, value in vars(args).items() if name not in RUN_OPTIONS}


def options_that_shape_results(options: dict[str, Any]) -> dict[str, Any]:
    """The options set away from analyze's defaults: a new option added later leaves existing keys alone."""
    from monitor.cli import build_parser

    defaults = vars(build_parser().parse_args(["analyze", "recording"]))
    return {name: value for name, value in options.items() if name not in defaults or defaults[name] != value}


def run_cohort(args: argparse.Namespace, out: Path) -> int:
    """Analyse every recording of ``args.file[0]``; returns 0 when all succeeded, 1 when some failed."""
    from monitor.cohort.report import write_cohort_summary

    items = collect(args.file[0])
    options = analysis_options(args)
    table = CohortTable(out)
    started = time.perf_counter()
    shaping = options_that_shape_results(options)
    keys = [result_key(content_hash(item.path), {**shaping, **item.options, "report": str(item.relative)})
            for item in items]
    pending = [(item, key) for item, key in zip(items, keys, strict=True) if not table.done(key)]
    skipped = len(items) - len(pending)
    n_workers = 0
    if pending:
        with connect(options_from(args)) as client:
            n_workers = len(client.scheduler_info().get("workers", {}))
            dashboard = getattr(client, "dashboard_link", None)
            if dashboard and not args.quiet:
                print(f"Dask dashboard: {dashboard}", file=sys.stderr)
            _run_pending(client, pending, options, out, table, args.quiet)
    wall = time.perf_counter() - started
    table.write(keys)
    rows = [table.rows[key] for key in keys if key in table.rows]
    timing = {"ran": len(pending), "skipped": skipped, "wall_s": wall, "workers": n_workers,
              "recordings_per_s": len(pending) / wall if pending and wall > 0 else 0.0}
    summary = write_cohort_summary(rows, out, timing, figures=not args.no_figures)
    _write_dataset_index(rows, out)
    failed = sum(1 for row in rows if row.get("error"))
    print(f"cohort of {len(items)} recordings: {len(items) - failed} analysed ({skipped} from an earlier run), "
          f"{failed} failed; table {out / 'cohort.parquet'}, summary {summary}")
    print(f"dataset of {len(items)} recordings: index in {out / 'index.md'}")
    return 1 if failed else 0


def _run_pending(client: Any, pending: list[tuple[CohortItem, str]], options: dict[str, Any], out: Path,
                 table: CohortTable, quiet: bool) -> None:
    from distributed import as_completed

    from monitor.cli import one_line
    from monitor.cohort.task import analyse_item

    by_future = {}
    for item, key in pending:
        future = client.submit(analyse_item, item, options, str(out), key, key=f"analyse-{key}", pure=False)
        by_future[future] = (item, key)
    with _progress(len(pending), quiet) as advance:
        for future in as_completed(by_future):
            item, key = by_future.pop(future)
            try:
                row = future.result()
            except Exception as error:  # the task itself died (e.g. it killed its worker too often)
                row = {"key": key, "file": str(item.path), **item.carried,
                       "error": f"{type(error).__name__}: {one_line(error)}"}
            table.append(row)
            advance(row)
            future.release()


class _progress:
    """A rich progress bar with the count and the time left where stderr is a terminal; quiet elsewhere."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.quiet, self.bar, self.task = total, quiet or not sys.stderr.isatty(), None, None

    def __enter__(self):  # noqa: ANN204 (returns the advance callable)
        if not self.quiet:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(TextColumn("analysing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                TextColumn("left"), TimeRemainingColumn(), TextColumn("{task.fields[failed]} failed"),
                                transient=False)
            self.bar.__enter__()
            self.task = self.bar.add_task("cohort", total=self.total, failed=0)
        self.failed = 0
        return self._advance

    def _advance(self, row: dict[str, Any]) -> None:
        self.failed += bool(row.get("error"))
        if self.bar is not None:
            self.bar.update(self.task, advance=1, failed=self.failed)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def _write_dataset_index(rows: list[dict[str, Any]], out: Path) -> None:
    """The per-recording index.md and dataset_summary.json that a single-process dataset analysis wrote."""
    import json

    from monitor.recordings.report import write_dataset_index

    summaries = []
    for row in rows:
        if row.get("error") or not row.get("report"):
            continue
        summary_path = out / Path(row["report"]).parent / "summary.json"
        if summary_path.is_file():
            summaries.append({**json.loads(summary_path.read_text()), "report": str(out / row["report"])})
    if summaries:
        write_dataset_index(summaries, out)
