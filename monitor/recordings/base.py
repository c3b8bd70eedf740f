"""The one reader interface: every format becomes a `Recording` (float32 microvolts, LSL-style (n, C) order).

`open_recording` picks the reader from the extension, or from the file's first bytes when the extension says
nothing; `open_dataset` opens every delimited file under a folder with the same options.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from monitor.errors import UserError

MICROVOLTS = "microvolts"

# unit spelling (lower case, micro signs folded to "u") -> microvolts per unit
_VOLTAGE_SCALES = {
    "v": 1e6,
    "volt": 1e6,
    "volts": 1e6,
    "mv": 1e3,
    "millivolt": 1e3,
    "millivolts": 1e3,
    "uv": 1.0,
    "microvolt": 1.0,
    "microvolts": 1.0,
    "nv": 1e-3,
    "nanovolt": 1e-3,
    "nanovolts": 1e-3,
}


@dataclass
class Recording:
    """A recorded session, whatever the file format.

    ``data`` is (n_samples, n_channels) float32 in microvolts; ``timestamps`` (n_samples,) float64 seconds on the
    file's own clock; ``units`` is the unit each channel was stored in before conversion to microvolts (provenance);
    ``layout`` is an ``ElectrodeLayout.to_dict()`` or None; ``markers`` are (timestamp, text) on the same clock as
    ``timestamps``; ``labels`` is one int per sample (class labels from a label column) or None; ``auxiliary``
    holds other per-sample signals (e.g. a force reference) by name; ``other_streams`` holds further streams of a
    multi-stream file (XDF) as name -> (timestamps, values) on their own timing; ``metadata`` holds what else the
    file says about the session (JSON-safe: e.g. the simulated condition).
    """

    data: np.ndarray
    timestamps: np.ndarray
    fs: float
    channel_labels: list[str]
    units: list[str]
    layout: dict[str, Any] | None = None
    markers: list[tuple[float, str]] = field(default_factory=list)
    labels: np.ndarray | None = None
    source: Path | None = None
    auxiliary: dict[str, np.ndarray] = field(default_factory=dict)
    other_streams: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    label_names: list[str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data = np.ascontiguousarray(self.data, dtype=np.float32)
        self.timestamps = np.asarray(self.timestamps, dtype=np.float64)
        name = self.source.name if self.source is not None else "recording"
        if self.data.ndim != 2 or self.data.shape[0] == 0 or self.data.shape[1] == 0:
            raise UserError(f"{name}: no samples or no channels to read (data shape {self.data.shape})")
        n_samples, n_channels = self.data.shape
        if not (math.isfinite(self.fs) and self.fs > 0):
            raise UserError(f"{name}: sampling rate {self.fs!r} is not a positive number; --fs supplies it")
        if self.timestamps.shape != (n_samples,):
            raise UserError(f"{name}: {self.timestamps.shape[0]} timestamps for {n_samples} samples")
        if len(self.channel_labels) != n_channels or len(self.units) != n_channels:
            raise UserError(
                f"{name}: {len(self.channel_labels)} channel labels and {len(self.units)} units "
                f"for {n_channels} channels"
            )
        if self.labels is not None:
            self.labels = np.asarray(self.labels)
            if self.labels.shape != (n_samples,):
                raise UserError(f"{name}: {self.labels.shape[0]} labels for {n_samples} samples")
        if self.layout is not None:
            layout_channels = len(self.layout.get("labels", ())) or len(self.layout.get("positions_mm", ()))
            if layout_channels and layout_channels != n_channels:
                raise UserError(
                    f"{name}: electrode layout has {layout_channels} electrodes but the file has {n_channels} "
                    "channels; --layout supplies a matching one (or --channels picks the grid's channels)"
                )
        for key, values in self.auxiliary.items():
            if np.shape(values)[0] != n_samples:
                raise UserError(f"{name}: auxiliary signal {key!r} has {np.shape(values)[0]} samples, not {n_samples}")

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.data.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs

    def sample_index(self, timestamp: float) -> int:
        """Index of the sample nearest ``timestamp`` on the recording's own clock (clipped to the recording)."""
        times = self.timestamps
        index = int(np.searchsorted(times, timestamp))
        if index > 0 and (index == self.n_samples or timestamp - times[index - 1] <= times[index] - timestamp):
            index -= 1
        return index

    def slice_seconds(self, start_s: float | None = None, end_s: float | None = None) -> Recording:
        """The part from ``start_s`` to ``end_s`` seconds after the first sample (markers and labels follow)."""
        start = 0 if start_s is None else int(round(start_s * self.fs))
        end = self.n_samples if end_s is None else int(round(end_s * self.fs))
        if start_s is not None and start_s < 0:
            raise UserError(f"--start {start_s} s is negative")
        if start >= self.n_samples:
            raise UserError(f"--start {start_s} s is past the end of the recording ({self.duration_s:.3f} s)")
        end = min(end, self.n_samples)
        if end <= start:
            raise UserError(f"--end {end_s} s must come after --start {start_s or 0} s")
        first_time = self.timestamps[start]
        last_time = self.timestamps[end - 1]
        return replace(
            self,
            data=self.data[start:end],
            timestamps=self.timestamps[start:end],
            labels=None if self.labels is None else self.labels[start:end],
            markers=[(t, text) for t, text in self.markers if first_time <= t <= last_time],
            auxiliary={key: values[start:end] for key, values in self.auxiliary.items()},
        )


def microvolts_per_unit(unit: str) -> float | None:
    """Microvolts per ``unit`` for voltage units (V, mV, uV/µV, nV, spelled out or not); None for anything else."""
    folded = unit.strip().replace("µ", "u").replace("μ", "u").lower()
    return _VOLTAGE_SCALES.get(folded)


def error_summary(error: BaseException) -> str:
    """First line of a library's error message (or its type), for a one-line UserError."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def checked_rate(value: Any, file_name: str, source: str) -> float:
    """``value`` (what ``source``, e.g. "the header", gives as the sampling rate) as a positive finite float, else a
    one-line UserError: before any timestamps are made from it (a rate of 0 printed two numpy RuntimeWarnings
    above the error) and before float() meets a string (a ValueError with exit 1)."""
    try:
        rate = float(np.asarray(value).ravel()[0]) if np.ndim(value) else float(value)
    except (TypeError, ValueError, IndexError):
        rate = math.nan
    if not (math.isfinite(rate) and rate > 0):
        shown = value.tolist() if isinstance(value, np.ndarray) else value
        raise UserError(f"{file_name}: {source} gives the sampling rate as {shown!r}, not a positive number of Hz")
    return rate


def uniform_timestamps(n_samples: int, fs: float, start: float = 0.0) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):  # a rate of 0 is refused by Recording, in one line
        return start + np.arange(n_samples, dtype=np.float64) / fs


def select_channels(
    selection: Sequence[str | int] | str | None, labels: Sequence[str], file_name: str
) -> list[int]:
    """Column indices for ``selection`` (labels or 0-based indices, or a comma-separated string of them)."""
    if selection is None:
        return list(range(len(labels)))
    if isinstance(selection, str):
        selection = [item.strip() for item in selection.split(",") if item.strip()]
    indices: list[int] = []
    for item in selection:
        if isinstance(item, int) or (isinstance(item, str) and item.lstrip("-").isdigit() and item not in labels):
            index = int(item)
            if not -len(labels) <= index < len(labels):
                raise UserError(f"{file_name}: channel index {index} out of range (0..{len(labels) - 1}) in --channels")
            indices.append(index % len(labels))
        elif item in labels:
            indices.append(list(labels).index(item))
        else:
            raise UserError(f"{file_name}: no channel named {item!r} (--channels); channels: {', '.join(labels)}")
    if not indices:
        raise UserError(f"{file_name}: --channels selected no channels")
    return indices


def layout_by_name(name: str, n_channels: int, file_name: str) -> dict[str, Any]:
    """An ``ElectrodeLayout.from_name(name).to_dict()`` checked against the channel count."""
    from simulators.electrodes import ElectrodeLayout

    try:
        layout = ElectrodeLayout.from_name(name)
    except (KeyError, ValueError) as error:
        # the layout's own message names the layout and the choices (a KeyError's str() is quoted): add the option
        message = str(error).strip("'\"")
        raise UserError(f"--layout: {message}") from None
    if layout.n_channels != n_channels:
        raise UserError(
            f"{file_name}: layout {name!r} has {layout.n_channels} electrodes but the file has {n_channels} channels"
        )
    return layout.to_dict()


# extension -> module in this package that defines read(path, **options) -> Recording
_READERS_BY_SUFFIX = {
    ".xdf": "xdf",
    ".xdfz": "xdf",
    ".edf": "edf",
    ".bdf": "edf",
    ".hea": "wfdb_reader",
    ".dat": "wfdb_reader",
    ".mat": "otb",
    ".csv": "delimited",
    ".tsv": "delimited",
    ".txt": "delimited",
    ".npz": "npz",
    ".asc": "asc",
}

# leading bytes -> reader, for files whose extension says nothing
_MAGIC = [
    (b"XDF:", "xdf"),
    (b"\xffBIOSEMI", "edf"),
    (b"0       ", "edf"),
    (b"MATLAB", "otb"),
    (b"PK\x03\x04", "npz"),
]

DELIMITED_SUFFIXES = (".csv", ".tsv", ".txt")


# compressed copies of any format: suffix -> (archive name in messages, opener), and their leading bytes
_COMPRESSIONS = {".xz": "xz", ".lzma": "xz", ".gz": "gzip", ".bz2": "bzip2"}
_COMPRESSION_MAGIC = [(b"\xfd7zXZ\x00", "xz"), (b"\x1f\x8b", "gzip"), (b"BZh", "bzip2")]
# WFDB spreads a record over files sharing its name: a compressed header comes with its compressed signal files
_RECORD_COMPANIONS = (".hea", ".dat", ".atr")


def _compression_of(path: Path) -> str | None:
    """"xz", "gzip", "bzip2" or None: from the extension, else from the first bytes."""
    kind = _COMPRESSIONS.get(path.suffix.lower())
    if kind is not None or path.suffix.lower() in _READERS_BY_SUFFIX:  # .xdfz is gzip that pyxdf reads itself
        return kind
    with path.open("rb") as handle:
        head = handle.read(6)
    return next((name for magic, name in _COMPRESSION_MAGIC if head.startswith(magic)), None)


def _open_compressed(path: Path, kind: str) -> Any:
    import bz2
    import gzip
    import lzma

    return {"xz": lzma.open, "gzip": gzip.open, "bzip2": bz2.open}[kind](path, "rb")


def _decompress(path: Path, kind: str, folder: Path) -> Path:
    """``path`` decompressed into ``folder`` under its name without the compression suffix (one-line UserError for a
    corrupt or truncated archive)."""
    import gzip
    import lzma
    import shutil
    import zlib

    name = path.name[: -len(path.suffix)] if path.suffix.lower() in _COMPRESSIONS else path.name
    target = folder / name
    try:
        with _open_compressed(path, kind) as source, target.open("wb") as sink:
            shutil.copyfileobj(source, sink, 1 << 20)
    except (lzma.LZMAError, gzip.BadGzipFile, zlib.error, OSError, EOFError, ValueError) as error:
        reason = "truncated" if isinstance(error, EOFError) else error_summary(error)
        raise UserError(f"{path.name}: not a readable {kind} archive ({reason})") from None
    return target


def _read_compressed(path: Path, kind: str, options: dict[str, Any]) -> Recording:
    """Reads a compressed copy of any supported format: decompressed into a private temporary folder (with a WFDB
    record's companion files, compressed or not), read there, and ``source`` set back to the file the user named."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="neurofusion-") as temporary:
        folder = Path(temporary)
        inner = _decompress(path, kind, folder)
        if inner.suffix.lower() in _RECORD_COMPANIONS:
            for suffix in _RECORD_COMPANIONS:
                companion = inner.with_suffix(suffix)
                if companion.exists():
                    continue
                # not glob: the name may hold its special characters
                for candidate in (p for p in path.parent.iterdir() if p.name.startswith(companion.name)):
                    if candidate.name == companion.name:
                        shutil.copyfile(candidate, companion)
                    elif candidate.suffix.lower() in _COMPRESSIONS and candidate.stem == companion.name:
                        _decompress(candidate, _COMPRESSIONS[candidate.suffix.lower()], folder)
        if _compression_of(inner) is not None:
            raise UserError(f"{path.name}: an archive inside an archive; decompress it once first")
        try:
            recording = _reader_for(inner)(inner, **options)
        except UserError as error:
            message = str(error)
            if message.startswith(inner.name):  # name the file the user gave, not the temporary copy
                message = path.name + message[len(inner.name):]
            raise UserError(message) from None
    recording.source = path
    return recording


def _reader_for(path: Path) -> Callable[..., Recording]:
    module_name = _READERS_BY_SUFFIX.get(path.suffix.lower())
    if module_name is None:
        with path.open("rb") as handle:
            head = handle.read(8)
        module_name = next((name for magic, name in _MAGIC if head.startswith(magic)), None)
    if module_name is None:
        known = ", ".join(sorted(_READERS_BY_SUFFIX))
        raise UserError(f"{path.name}: unknown recording format (known extensions: {known})")
    module = importlib.import_module(f"{__package__}.{module_name}")
    return module.read


def open_recording(path: str | Path, **options: Any) -> Recording:
    """Reads any supported recording. Options (None = not given) are the reader's; see docs/formats.md."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder; open_dataset reads a folder of CSV/TSV files")
    if not path.exists():
        raise UserError(f"recording not found: {path}")
    given = {key: value for key, value in options.items() if value is not None}
    kind = _compression_of(path)
    if kind is not None:
        return _read_compressed(path, kind, given)
    return _reader_for(path)(path, **given)


def _delimited_name(path: Path) -> bool:
    """A CSV/TSV/TXT file, or a compressed copy of one (``trial.csv.gz``)."""
    return without_compression(path).suffix.lower() in DELIMITED_SUFFIXES


def without_compression(path: Path) -> Path:
    """``trial.csv.gz`` -> ``trial.csv``; any other path as it is."""
    return path.with_suffix("") if path.suffix.lower() in _COMPRESSIONS else path


def recording_stem(path: Path) -> str:
    """The name without its compression and format extensions (``EMG _203.asc.xz`` -> ``EMG _203``)."""
    return without_compression(path).stem


def is_recording_file(path: Path) -> bool:
    """A file a reader opens by its name, compressed or not; a WFDB record's signal files open through its header."""
    suffix = without_compression(path).suffix.lower()
    return path.is_file() and suffix in _READERS_BY_SUFFIX and suffix not in _RECORD_COMPANIONS[1:]


def open_dataset(folder: str | Path, **options: Any) -> list[Recording]:
    """Every CSV/TSV/TXT file (or compressed copy) under ``folder`` (recursively, sorted by path), each read with the
    same options."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"dataset folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and _delimited_name(p))
    if not files:
        raise UserError(f"{folder}: no .csv, .tsv or .txt files in this folder")
    return [open_recording(path, **options) for path in files]


def reject_unknown_options(options: dict[str, Any], accepted: Sequence[str], format_name: str) -> None:
    """A reader given an option it does not use says so, rather than silently ignoring it."""
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        flags = ", ".join("--" + name.replace("_", "-") for name in unknown)
        raise UserError(f"{flags} does not apply to {format_name} files")
