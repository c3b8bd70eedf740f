"""The cohort table keeps counts as integers when a failed recording's row leaves them empty."""

from __future__ import annotations

import pandas as pd

from monitor.cohort.table import CohortTable


def test_counts_stay_integers_beside_a_failed_row_and_measures_stay_floats(tmp_path):
    table = CohortTable(tmp_path)
    table.append({"key": "a", "file": "a.asc", "channels": 1, "windows": 96, "rms_uv": 120.0, "error": None})
    table.append({"key": "b", "file": "b.asc", "channels": None, "windows": None, "rms_uv": None, "error": "corrupt"})
    table.append({"key": "c", "file": "c.asc", "channels": 1, "windows": 97, "rms_uv": 3.0, "error": None})
    parquet, csv = table.write()
    lines = csv.read_text().splitlines()
    assert lines[0] == "key,file,channels,windows,rms_uv,error"
    assert lines[1] == "a,a.asc,1,96,120.0,"
    assert lines[2] == "b,b.asc,,,,corrupt"
    assert lines[3] == "c,c.asc,1,97,3.0,"
    frame = pd.read_parquet(parquet)
    assert str(frame["windows"].dtype) == "Int64" and frame["windows"].isna().tolist() == [False, True, False]
    assert frame["rms_uv"].dtype == "float64"  # a measure that happens to be whole stays a float
