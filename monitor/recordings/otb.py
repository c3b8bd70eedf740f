"""OT Bioelettronica exports (.mat from OTBiolab+), as in ../shared/data/hdemg-vastus-lateralis.

The file holds ``Data`` (samples x columns), ``Description`` (one name per column, unit in brackets at the end),
``SamplingFrequency`` and ``Time``. EMG columns are those in a voltage unit; a GR08MM1305/GR04MM1305/HD08MM1305/
HD04MM1305 grid (13 x 5 positions, first corner empty, 64 electrodes) is reordered row-major so that the channels
match ``ElectrodeLayout.from_name("grid13x5")`` (channel numbers mapped as openhdemg's ``sort_rawemg`` does for a
grid at 180 degrees: connector towards the researcher). A %MVC column becomes ``auxiliary["force_percent_mvc"]``;
other non-voltage columns (decomposition outputs in a.u.) are left out.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from monitor.errors import UserError
from monitor.recordings.base import (
    Recording,
    microvolts_per_unit,
    reject_unknown_options,
    select_channels,
    uniform_timestamps,
)

OPTIONS = ("channels",)
FORCE_KEY = "force_percent_mvc"

_UNIT = re.compile(r"\[\s*(?P<unit>[^\]]*?)\s*\]\s*$")
_GRID_CHANNEL = re.compile(r"(?P<code>(?:GR|HD)(?P<spacing>\d\d)MM1305)\s*\((?P<number>\d+)\)")


def grid13x5_channel_number(row: int, col: int) -> int | None:
    """1-based channel number at (row, col) of a 13 x 5 OTB grid; None at the empty corner (0, 0).

    Channels snake through the columns: down column 0 (1-12, below the empty corner), up column 1 (13-25 from the
    bottom), down column 2 (26-38), up column 3 (39-51), down column 4 (52-64)."""
    if (row, col) == (0, 0):
        return None
    return 13 * col + row if col % 2 == 0 else 13 * col + 12 - row


def read(path: Path, **options: Any) -> Recording:
    reject_unknown_options(options, OPTIONS, "OT Bioelettronica .mat")
    contents = _load_mat(path)
    missing = [key for key in ("Data", "Description", "SamplingFrequency") if key not in contents]
    if missing:
        raise UserError(f"{path.name}: not an OT Bioelettronica export (no {', '.join(missing)} in the .mat file)")
    table = np.asarray(_unwrap(contents["Data"]), dtype=np.float64)
    descriptions = [str(_unwrap(item)) for item in np.asarray(contents["Description"], dtype=object).ravel()]
    fs = float(np.asarray(contents["SamplingFrequency"]).ravel()[0])
    if table.ndim != 2 or table.shape[1] != len(descriptions):
        raise UserError(f"{path.name}: Data is {table.shape} but Description names {len(descriptions)} columns")

    units = [(match["unit"] if (match := _UNIT.search(text)) else "") for text in descriptions]
    emg_columns = [i for i, unit in enumerate(units) if microvolts_per_unit(unit) is not None]
    if not emg_columns:
        raise UserError(f"{path.name}: no column is in a voltage unit, so there is no EMG to read")
    emg_columns, layout = _grid_order(emg_columns, descriptions)
    if options.get("channels") is not None:
        chosen = select_channels(options["channels"], [descriptions[i] for i in emg_columns], path.name)
        emg_columns = [emg_columns[i] for i in chosen]
        layout = None
    labels = list(layout["labels"]) if layout is not None else [_UNIT.sub("", descriptions[i]) for i in emg_columns]
    scales = np.array([microvolts_per_unit(units[i]) for i in emg_columns])

    timestamps = uniform_timestamps(table.shape[0], fs)
    if "Time" in contents:
        times = np.asarray(_unwrap(contents["Time"]), dtype=np.float64).ravel()
        if times.shape[0] == table.shape[0]:
            timestamps = times
    force_columns = [i for i, unit in enumerate(units) if "MVC" in unit.upper()]
    auxiliary = {FORCE_KEY: table[:, force_columns[0]].astype(np.float32)} if force_columns else {}
    return Recording(
        data=table[:, emg_columns] * scales[None, :],
        timestamps=timestamps,
        fs=fs,
        channel_labels=labels,
        units=[units[i] for i in emg_columns],
        layout=layout,
        source=path,
        auxiliary=auxiliary,
    )


def _load_mat(path: Path) -> dict[str, Any]:
    import scipy.io
    from scipy.io.matlab import MatReadError

    try:
        return scipy.io.loadmat(path)
    except NotImplementedError:
        raise UserError(f"{path.name}: MATLAB v7.3 (HDF5) files are not supported; export as v7") from None
    except (MatReadError, ValueError, TypeError, OSError, EOFError, zlib.error, IndexError) as error:
        raise UserError(f"{path.name}: not a readable MATLAB file ({error})") from None


def _unwrap(value: Any) -> Any:
    """loadmat wraps cells as nested 1x1 object arrays; peel them down to the content."""
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.reshape(-1)[0]
    if isinstance(value, np.ndarray) and value.dtype.kind == "U":
        return "".join(value.ravel().tolist())
    return value


def _grid_order(columns: list[int], descriptions: list[str]) -> tuple[list[int], dict[str, Any] | None]:
    """Columns reordered row-major over a 13 x 5 grid, with its layout, when they are exactly one such grid."""
    from simulators.electrodes import ElectrodeLayout

    by_number: dict[int, int] = {}
    spacing = None
    for column in columns:
        match = _GRID_CHANNEL.search(descriptions[column])
        if match is None:
            return columns, None
        by_number[int(match["number"])] = column
        spacing = float(match["spacing"])
    if sorted(by_number) != list(range(1, 65)) or spacing is None:
        return columns, None
    layout = ElectrodeLayout.grid(13, 5, spacing, omit=((0, 0),))
    ordered = [by_number[grid13x5_channel_number(row, col)] for row, col in layout.grid_index]
    return ordered, layout.to_dict()
