"""The cohort table: one row per recording, appended as results arrive and resumable by content hash.

Rows go first to ``rows.jsonl`` (appended and flushed one by one, so a run that dies keeps every finished row);
``cohort.parquet`` and ``cohort.csv`` are rebuilt from it. A row's ``key`` is the hash of the recording's bytes
, of the options that shape its analysis and of where its report goes: an unchanged recording analysed the same
way is skipped, the same name with new contents is not.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

ROWS = "rows.jsonl"
CHUNK = 1 << 20


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def result_key(file_hash: str, options: dict[str, Any]) -> str:
    """The file's hash bound to the analysis options (sorted JSON), 24 hex digits."""
    text = json.dumps({"file": file_hash, "options": options}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class CohortTable:
    """Rows by key: the newest row of a key wins, so a rerun's retry of a failed file replaces its error."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.rows: dict[str, dict[str, Any]] = {}
        path = folder / ROWS
        if path.is_file():
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a crash mid-write
                    continue
                if isinstance(row, dict) and "key" in row:
                    self.rows[row["key"]] = row

    def done(self, key: str) -> bool:
        """A result without an error exists for this key (failed files are tried again)."""
        row = self.rows.get(key)
        return row is not None and not row.get("error")

    def append(self, row: dict[str, Any]) -> None:
        self.rows[row["key"]] = row
        with (self.folder / ROWS).open("a") as handle:
            handle.write(json.dumps(row, default=_json_default) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def write(self, keys: list[str] | None = None) -> tuple[Path, Path]:
        """``cohort.parquet`` and ``cohort.csv`` of the rows of ``keys`` (default all), in that order."""
        import pandas as pd

        rows = [self.rows[key] for key in (keys if keys is not None else self.rows) if key in self.rows]
        frame = _counts_as_integers(pd.DataFrame(rows), rows)
        parquet, csv = self.folder / "cohort.parquet", self.folder / "cohort.csv"
        temporary = parquet.with_suffix(".parquet.partial")
        frame.to_parquet(temporary, index=False)
        os.replace(temporary, parquet)
        frame.to_csv(csv.with_suffix(".csv.partial"), index=False)
        os.replace(csv.with_suffix(".csv.partial"), csv)
        return parquet, csv


def _counts_as_integers(frame: Any, rows: list[dict[str, Any]]) -> Any:
    """Columns whose values are all integers (channels, windows, MUPs) as nullable integers: pandas makes a column
    with a missing value (a failed recording's row) float, and the CSV then read "channels 1.0"."""
    for column in frame.columns:
        values = [row[column] for row in rows if row.get(column) is not None]
        if values and all(isinstance(value, int) and not isinstance(value, bool) for value in values):
            frame[column] = frame[column].astype("Int64")
    return frame


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)
