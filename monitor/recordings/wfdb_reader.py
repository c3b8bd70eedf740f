"""PhysioNet WFDB records (``name.hea`` + signal files) through the wfdb package.

Open either the ``.hea`` or the ``.dat`` file. Annotations in ``name.<annotation>`` (default ``atr`` when that file
exists) become markers: their aux note, else their symbol, at the annotated sample's time. Options: ``channels``,
``scale`` (microvolts per unit, for channels not in volts), ``layout``, ``annotation`` (annotation file extension).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from monitor.errors import UserError
from monitor.recordings.base import (
    Recording,
    checked_rate,
    error_summary,
    layout_by_name,
    microvolts_per_unit,
    reject_unknown_options,
    select_channels,
    uniform_timestamps,
)

OPTIONS = ("channels", "scale", "layout", "annotation")
DEFAULT_ANNOTATION = "atr"


def read(path: Path, **options: Any) -> Recording:
    reject_unknown_options(options, OPTIONS, "WFDB")
    import wfdb

    record_name = str(path.with_suffix(""))
    header = path.with_suffix(".hea")
    if not header.exists():
        raise UserError(f"{path.name}: a WFDB record needs its header {header.name} next to it")
    try:
        record = wfdb.rdrecord(record_name, physical=True)
    except (ValueError, OSError, IndexError, KeyError, TypeError, AttributeError) as error:
        raise UserError(f"{path.name}: not a readable WFDB record ({error_summary(error)})") from None
    signal = record.p_signal
    if signal is None or signal.ndim != 2 or signal.shape[0] == 0:
        raise UserError(f"{path.name}: the WFDB record holds no samples")
    names = [str(name) for name in record.sig_name]
    chosen = select_channels(options.get("channels"), names, path.name)
    units = [str(record.units[i]) for i in chosen]
    scales = [_scale(names[i], units[k], options.get("scale"), path.name) for k, i in enumerate(chosen)]
    fs = checked_rate(record.fs, path.name, f"the header {header.name}")
    layout_name = options.get("layout")
    return Recording(
        data=signal[:, chosen] * np.asarray(scales)[None, :],
        timestamps=uniform_timestamps(signal.shape[0], fs),
        fs=fs,
        channel_labels=[names[i] for i in chosen],
        units=units,
        layout=layout_by_name(layout_name, len(chosen), path.name) if layout_name else None,
        markers=_markers(record_name, options.get("annotation"), fs, path.name),
        source=path,
    )


def _scale(name: str, unit: str, scale_option: float | None, file_name: str) -> float:
    if scale_option is not None:
        return float(scale_option)
    scale = microvolts_per_unit(unit)
    if scale is None:
        raise UserError(
            f"{file_name}: channel {name!r} is in {unit!r}, not a voltage; "
            "--channels picks the EMG channels and --scale gives microvolts per unit"
        )
    return scale


def _markers(record_name: str, extension: str | None, fs: float, file_name: str) -> list[tuple[float, str]]:
    import wfdb

    wanted = extension or DEFAULT_ANNOTATION
    if not Path(f"{record_name}.{wanted}").exists():
        if extension is not None:
            raise UserError(f"{file_name}: no annotation file {Path(record_name).name}.{extension} (--annotation)")
        return []
    try:
        annotation = wfdb.rdann(record_name, wanted)
    except (ValueError, OSError, IndexError, KeyError, TypeError) as error:
        raise UserError(f"{file_name}: unreadable annotation file .{wanted} ({error})") from None
    notes = annotation.aux_note or [""] * len(annotation.sample)
    return [
        (float(sample) / fs, (note.strip("\x00 ") or symbol))
        for sample, symbol, note in zip(annotation.sample, annotation.symbol, notes, strict=False)
    ]
