"""NPZ recordings as written by ``neurofusion simulate --out FILE.npz`` (format in docs/simulator.md).

Keys: ``data`` (n, C) µV and ``fs`` are required; ``timestamps``, ``channel_labels``, ``units`` (one string, or
one per channel; default microvolts), ``layout_json`` (``ElectrodeLayout.to_dict()`` as JSON), ``labels`` (n,)
integers with ``label_names``, ``marker_timestamps`` + ``marker_texts`` are read when present, scalar strings
(``condition``, ``config_json``...) go to ``metadata``; any other numeric (n,) array (the
simulator's ground truth, e.g. ``mvc_percent``) becomes ``auxiliary``. Loaded with ``allow_pickle=False``: an
NPZ that needs pickle is refused.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from monitor.errors import UserError
from monitor.recordings.base import (
    MICROVOLTS,
    Recording,
    checked_rate,
    layout_by_name,
    microvolts_per_unit,
    reject_unknown_options,
    uniform_timestamps,
)

OPTIONS = ("layout",)
_KNOWN_KEYS = {"data", "fs", "timestamps", "channel_labels", "units", "layout_json", "labels", "marker_timestamps",
               "marker_texts", "label_names"}


def read(path: Path, **options: Any) -> Recording:
    reject_unknown_options(options, OPTIONS, "NPZ")
    arrays = _load(path)
    for key in ("data", "fs"):
        if key not in arrays:
            raise UserError(f"{path.name}: NPZ has no {key!r} array (keys: {', '.join(sorted(arrays))})")
    data = np.asarray(arrays["data"])
    if data.ndim != 2 or data.dtype.kind not in "fiu":
        raise UserError(f"{path.name}: 'data' must be a 2-D numeric array (samples x channels), not {data.shape}")
    n_samples, n_channels = data.shape
    fs = checked_rate(arrays["fs"], path.name, "its 'fs' array")
    timestamps = arrays.get("timestamps")
    if timestamps is None:
        timestamps = uniform_timestamps(n_samples, fs)
    labels = [str(x) for x in arrays["channel_labels"]] if "channel_labels" in arrays else None
    layout = _layout(arrays, options.get("layout"), n_channels, path.name)
    if labels is None:
        labels = list(layout["labels"]) if layout else [f"ch{i + 1}" for i in range(n_channels)]
    units = _units(arrays.get("units"), n_channels, path.name)
    scales = np.array([microvolts_per_unit(unit) for unit in units])
    markers: list[tuple[float, str]] = []
    if "marker_timestamps" in arrays and "marker_texts" in arrays:
        markers = [(float(t), str(text)) for t, text in zip(arrays["marker_timestamps"], arrays["marker_texts"],
                                                           strict=True)]
    auxiliary = {
        key: values.astype(np.float32)
        for key, values in arrays.items()
        if key not in _KNOWN_KEYS and values.shape == (n_samples,) and values.dtype.kind in "fiub"
    }
    label_names = [str(name) for name in arrays["label_names"]] if "label_names" in arrays else None
    # scalar strings (the simulator's condition, its config as JSON) describe the session
    metadata = {key: str(value) for key, value in arrays.items()
                if key not in _KNOWN_KEYS and value.ndim == 0 and value.dtype.kind == "U"}  # fmt: skip
    return Recording(
        data=data * scales[None, :],
        timestamps=timestamps,
        fs=fs,
        channel_labels=labels,
        units=units,
        layout=layout,
        markers=markers,
        labels=arrays.get("labels"),
        source=path,
        auxiliary=auxiliary,
        label_names=label_names,
        metadata=metadata,
    )


def _load(path: Path) -> dict[str, np.ndarray]:
    if not zipfile.is_zipfile(path):
        # np.load would take any other bytes for a pickle and say so, which misleads
        raise UserError(f"{path.name}: not a readable NPZ file (not a zip archive, or cut short)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except ValueError as error:
        if "pickle" in str(error).lower():
            raise UserError(f"{path.name}: NPZ holds pickled objects, which are refused for safety") from None
        raise UserError(f"{path.name}: not a readable NPZ file ({error})") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as error:
        raise UserError(f"{path.name}: not a readable NPZ file (corrupt or truncated: {error})") from None


def _layout(arrays: dict[str, np.ndarray], name: str | None, n_channels: int, file_name: str) -> dict | None:
    if name:
        return layout_by_name(name, n_channels, file_name)
    if "layout_json" not in arrays:
        return None
    try:
        layout = json.loads(str(arrays["layout_json"]))
    except json.JSONDecodeError as error:
        raise UserError(f"{file_name}: layout_json is not valid JSON ({error}); --layout supplies a layout") from None
    return layout if isinstance(layout, dict) else None


def _units(units: np.ndarray | None, n_channels: int, file_name: str) -> list[str]:
    if units is None:
        return [MICROVOLTS] * n_channels
    names = [str(unit) for unit in np.atleast_1d(units)]
    if len(names) == 1:
        names = names * n_channels
    if len(names) != n_channels:
        raise UserError(f"{file_name}: {len(names)} units for {n_channels} channels")
    for unit in names:
        if microvolts_per_unit(unit) is None:
            raise UserError(f"{file_name}: unit {unit!r} is not a voltage; the NPZ 'units' array must name one")
    return names
