"""CSV/TSV/TXT recordings: one row per sample, options say what each column is.

Options: ``fs`` (Hz; or ``time_column`` in seconds), ``channels`` (columns: indices or header names; default all
but the label/time columns), ``label_column``, ``time_column``, ``header`` (True/False; default: detected),
``delimiter`` (default: tab for .tsv, comma for .csv, sniffed for .txt), ``scale`` (microvolts per file unit) or
``units`` (e.g. "mV"), ``layout`` (electrode layout name such as "ring8"), ``label_names`` (name of each label value),
``preset`` (a named set of the above).
Without ``scale``, ``units`` or a unit in the header (``name [mV]``), values are taken as microvolts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from monitor.errors import UserError
from monitor.recordings.base import (
    MICROVOLTS,
    Recording,
    error_summary,
    layout_by_name,
    microvolts_per_unit,
    reject_unknown_options,
    select_channels,
    uniform_timestamps,
)

# Thalmic Myo armband files as in ../shared/data/myo-gestures: 8 int8 channels at ~200 Hz, label in column 8
MYO_GESTURES = ["rest", "wrist flexion", "wrist extension", "radial deviation", "ulnar deviation", "pronation",
                "supination", "fist"]
PRESETS: dict[str, dict[str, Any]] = {
    "myo": {"fs": 200.0, "label_column": 8, "header": False, "layout": "ring8", "units": "myo int8 counts",
            "label_names": MYO_GESTURES},
}

OPTIONS = ("fs", "channels", "label_column", "time_column", "header", "delimiter", "scale", "units", "layout", "preset",
           "label_names")

_UNIT_IN_NAME = re.compile(r"^(?P<name>.*?)\s*[\[(](?P<unit>[^\])]+)[\])]\s*$")


def read(path: Path, **options: Any) -> Recording:
    reject_unknown_options(options, OPTIONS, "CSV/TSV")
    preset_name = options.pop("preset", None)
    if preset_name is not None:
        if preset_name not in PRESETS:
            raise UserError(f"unknown --preset {preset_name!r}; presets: {', '.join(PRESETS)}")
        options = {**PRESETS[preset_name], **options}
    lines = _first_lines(path)
    delimiter = options.get("delimiter") or _guess_delimiter(path, lines[0])
    first_cells = [cell.strip() for cell in lines[0].split(delimiter)]
    label_spec = options.get("label_column")
    header_given = options.get("header")
    if header_given is None:
        # a label column may hold words ("rest", "fist"): it says nothing about a header
        label_position = _column_index(label_spec, [str(i) for i in range(len(first_cells))], path.name, "")
        has_header = _looks_like_header([c for i, c in enumerate(first_cells) if i != label_position])
    else:
        has_header = bool(header_given)
    names = first_cells if has_header else [str(index) for index in range(len(first_cells))]
    label_index = _column_index(label_spec, names, path.name, "--label-column")
    label_codes = _LabelCodes() if label_index is not None else None
    table = _load_table(path, delimiter, 1 if has_header else 0, {label_index: label_codes} if label_codes else None)
    n_columns = table.shape[1]
    if len(names) != n_columns:
        raise UserError(f"{path.name}: the first row has {len(names)} columns but the others have {n_columns}")

    time_index = _column_index(options.get("time_column"), names, path.name, "--time-column")
    reserved = {index for index in (label_index, time_index) if index is not None}
    channel_indices = select_channels(
        options.get("channels") or [i for i in range(n_columns) if i not in reserved], names, path.name
    )
    if reserved & set(channel_indices):
        raise UserError(f"{path.name}: --channels includes the label or time column")

    fs, timestamps = _rate_and_times(table, options.get("fs"), time_index, path.name)
    clean_names, scales, units = _channel_units(names, channel_indices, options, path.name)
    data = table[:, channel_indices] * np.asarray(scales)[None, :]
    labels = None
    if label_index is not None:
        raw_labels = table[:, label_index]
        if not np.all(np.isfinite(raw_labels)) or not np.all(raw_labels == np.round(raw_labels)):
            raise UserError(f"{path.name}: label column {label_index} holds values that are not whole numbers")
        labels = raw_labels.astype(np.int64)
        if label_codes.words:
            options = {**options, "label_names": label_codes.names(path.name)}
    layout_name = options.get("layout")
    layout = layout_by_name(layout_name, len(channel_indices), path.name) if layout_name else None
    if not has_header:
        clean_names = list(layout["labels"]) if layout is not None else [f"col{i}" for i in channel_indices]
    return Recording(
        data=data,
        timestamps=timestamps,
        fs=fs,
        channel_labels=clean_names,
        units=units,
        layout=layout,
        labels=labels,
        source=path,
        label_names=list(options["label_names"]) if options.get("label_names") and labels is not None else None,
    )


def _first_lines(path: Path) -> list[str]:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            lines = [line.rstrip("\r\n") for line, _ in zip(handle, range(2), strict=False)]
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None
    lines = [line for line in lines if line.strip()]
    if not lines:
        raise UserError(f"{path.name}: the file is empty")
    return lines


def _guess_delimiter(path: Path, first_line: str) -> str:
    suffix = path.suffix.lower()
    if suffix == ".tsv":
        return "\t"
    if suffix == ".csv":
        return ","
    for candidate in ("\t", ",", ";"):
        if candidate in first_line:
            return candidate
    raise UserError(f"{path.name}: cannot tell the column delimiter; --delimiter supplies it")


def _looks_like_header(cells: list[str]) -> bool:
    try:
        [float(cell) for cell in cells]
    except ValueError:
        return True
    return False


class _LabelCodes:
    """loadtxt converter for the label column: numbers stay, words get codes 0, 1, ... in order of appearance."""

    def __init__(self) -> None:
        self.words: dict[str, int] = {}
        self.numbers_seen = False

    def __call__(self, text: str) -> float:
        text = text.strip()
        try:
            value = float(text)
        except ValueError:
            return float(self.words.setdefault(text, len(self.words)))
        self.numbers_seen = True
        return value

    def names(self, file_name: str) -> list[str]:
        if self.numbers_seen:
            raise UserError(f"{file_name}: the label column mixes numbers and words; use one or the other")
        return list(self.words)


def _load_table(path: Path, delimiter: str, skip_rows: int, converters: dict | None) -> np.ndarray:
    try:
        table = np.loadtxt(path, delimiter=delimiter, skiprows=skip_rows, dtype=np.float64, ndmin=2,
                           converters=converters)  # fmt: skip
    except ValueError as error:
        raise UserError(_why_not_a_table(path, delimiter, skip_rows, error)) from None
    if table.size == 0:
        raise UserError(f"{path.name}: no data rows")
    return table


_DECIMAL_COMMA = re.compile(r"^[-+]?\d+,\d+$")


def _data_lines(path: Path, skip_rows: int) -> list[tuple[int, str]]:
    """(1-based line number, line) of the rows loadtxt reads: after the header, no blank or '#' lines."""
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        numbered = [(number, line.rstrip("\r\n")) for number, line in enumerate(handle, start=1)]
    return [(n, line) for n, line in numbered[skip_rows:] if line.strip() and not line.lstrip().startswith("#")]


def _why_not_a_table(path: Path, delimiter: str, skip_rows: int, error: ValueError) -> str:
    """One line for loadtxt's refusal that says what is wrong with the file in its own terms: numpy's own words
    ("use `usecols`", "could not convert '5;2'") name an API the user never called and no cause."""
    shown = {"\t": "tab", ",": "','", ";": "';'"}.get(delimiter, repr(delimiter))
    try:
        lines = _data_lines(path, skip_rows)
    except OSError:
        lines = []
    if "number of columns changed" in str(error) and lines:
        expected = len(lines[0][1].split(delimiter))
        for number, line in lines:
            cells = len(line.split(delimiter))
            if cells != expected:
                return (f"{path.name}: line {number} has {cells} cells where the rows before it have {expected} "
                        f"({shown}-separated): every row needs one cell per column")  # fmt: skip
    cells = [cell.strip() for _, line in lines[:20] for cell in line.split(delimiter)]
    semicolons = delimiter == "," and any(";" in line for _, line in lines[:20])
    if semicolons:
        return (f"{path.name}: the rows look like ';'-separated columns with decimal commas (e.g. "
                f"{lines[0][1][:30]!r}); the CSV reader has no option for a decimal comma (--delimiter ';' alone "
                "does not read them): save the file with decimal points")  # fmt: skip
    comma_decimals = [cell for cell in cells if _DECIMAL_COMMA.match(cell)]
    if comma_decimals:
        return (f"{path.name}: {shown}-separated values with decimal commas (e.g. {comma_decimals[0]!r}); the CSV "
                "reader has no option for a decimal comma: save the file with decimal points")  # fmt: skip
    # numpy names the offending line; keep its words, drop the traceback
    return f"{path.name}: not a table of numbers ({error_summary(error)})"


def _column_index(column: int | str | None, names: list[str], file_name: str, flag: str) -> int | None:
    """Index of ``column`` (a header name or an index); None if not given, or if ``flag`` is empty and no match."""
    if column is None:
        return None
    text = str(column)
    if text in names:
        return names.index(text)
    if text.lstrip("-").isdigit() and -len(names) <= int(text) < len(names):
        return int(text) % len(names)
    if not flag:
        return None
    raise UserError(f"{file_name}: {flag} {column!r} is not a column (the file has {len(names)} columns)")


def _rate_and_times(
    table: np.ndarray, fs: float | None, time_index: int | None, file_name: str
) -> tuple[float, np.ndarray]:
    if time_index is not None:
        times = table[:, time_index].astype(np.float64)
        steps = np.diff(times)
        if times.size < 2 or not np.all(steps > 0):
            raise UserError(f"{file_name}: the time column must increase from row to row")
        return (float(fs) if fs else float(1.0 / np.median(steps))), times
    if fs is None:
        raise UserError(f"{file_name}: the file has no sampling rate; --fs supplies it (or --time-column)")
    fs = float(fs)
    if fs <= 0:
        raise UserError(f"--fs must be positive, not {fs}")
    return fs, uniform_timestamps(table.shape[0], fs)


def _channel_units(
    names: list[str], indices: list[int], options: dict[str, Any], file_name: str
) -> tuple[list[str], list[float], list[str]]:
    """Channel names without unit suffixes, microvolts per file unit, and the file unit of each channel."""
    scale_option = options.get("scale")
    unit_option = options.get("units")
    option_scale = None
    if scale_option is not None:
        option_scale = float(scale_option)
    elif unit_option is not None:
        option_scale = microvolts_per_unit(unit_option)
        if option_scale is None:
            # a non-voltage unit (raw counts) is kept as is: the user named it, so it is not a silent guess
            option_scale = 1.0
    clean_names, scales, units = [], [], []
    for index in indices:
        match = _UNIT_IN_NAME.match(names[index])
        name, header_unit = (match["name"], match["unit"]) if match else (names[index], None)
        clean_names.append(name)
        if option_scale is not None:
            scales.append(option_scale)
            units.append(unit_option or f"{scale_option} uV per unit")
        elif header_unit is not None:
            scale = microvolts_per_unit(header_unit)
            if scale is None:
                raise UserError(
                    f"{file_name}: column {names[index]!r} is in {header_unit!r}, not a voltage; "
                    "--scale (microvolts per unit) supplies the conversion"
                )
            scales.append(scale)
            units.append(header_unit)
        else:
            scales.append(1.0)
            units.append(MICROVOLTS)
    return clean_names, scales, units
