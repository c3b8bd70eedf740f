"""EDF, EDF+ and BDF recordings through edfio.

EMG channels are the signals in a voltage unit (or those named by ``channels``), which must share one sampling
rate; other signals at that rate become ``auxiliary``; EDF+ annotations become markers (onset seconds after the
start of the recording). Options: ``channels``, ``scale`` (microvolts per unit, for signals not in volts),
``layout`` (electrode layout name).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from monitor.errors import UserError
from monitor.recordings.base import (
    Recording,
    error_summary,
    layout_by_name,
    microvolts_per_unit,
    reject_unknown_options,
    select_channels,
    uniform_timestamps,
)

OPTIONS = ("channels", "scale", "layout")
logger = logging.getLogger(__name__)


def read(path: Path, **options: Any) -> Recording:
    reject_unknown_options(options, OPTIONS, "EDF/BDF")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        edf = _load(path)
        try:
            recording = _to_recording(edf, path, options)
        except (ValueError, IndexError) as error:
            raise UserError(f"{path.name}: corrupt or truncated EDF/BDF data ({error_summary(error)})") from None
    for warning in caught:
        # edfio keeps the complete data records of a truncated file and says so; pass that on, not silently
        logger.warning("%s: %s", path.name, warning.message)
    return recording


def _to_recording(edf: Any, path: Path, options: dict[str, Any]) -> Recording:
    signals = list(edf.signals)
    if edf.num_data_records == 0:
        raise UserError(f"{path.name}: truncated: not one complete data record")
    if not signals:
        raise UserError(f"{path.name}: the file holds no signals (annotations only)")
    labels = [signal.label for signal in signals]
    if options.get("channels") is not None:
        chosen = select_channels(options["channels"], labels, path.name)
    else:
        chosen = [i for i, signal in enumerate(signals) if microvolts_per_unit(signal.physical_dimension) is not None]
        if not chosen:
            units = ", ".join(sorted({signal.physical_dimension or "(none)" for signal in signals}))
            raise UserError(
                f"{path.name}: no signal is in a voltage unit (units: {units}); "
                "--channels picks the EMG signals and --scale gives microvolts per unit"
            )
    rates = sorted({float(signals[i].sampling_frequency) for i in chosen})
    if len(rates) > 1:
        raise UserError(
            f"{path.name}: the chosen signals have different rates ({', '.join(f'{r:g}' for r in rates)} Hz); "
            "--channels picks signals that share one rate"
        )
    fs = rates[0]
    scales = [_scale(signals[i], options.get("scale"), path.name) for i in chosen]
    data = _stack([signals[i].data for i in chosen], path.name) * np.asarray(scales)[None, :]
    auxiliary = {
        signal.label: signal.data.astype(np.float32)
        for i, signal in enumerate(signals)
        if i not in chosen and float(signal.sampling_frequency) == fs and len(signal.data) == data.shape[0]
    }
    markers = [(float(annotation.onset), annotation.text) for annotation in edf.annotations if annotation.text]
    layout_name = options.get("layout")
    return Recording(
        data=data,
        timestamps=uniform_timestamps(data.shape[0], fs),
        fs=fs,
        channel_labels=[labels[i] for i in chosen],
        units=[signals[i].physical_dimension for i in chosen],
        layout=layout_by_name(layout_name, len(chosen), path.name) if layout_name else None,
        markers=markers,
        source=path,
        auxiliary=auxiliary,
    )


def _load(path: Path) -> Any:
    import edfio

    with path.open("rb") as handle:
        is_bdf = handle.read(1) == b"\xff"
    reader = edfio.read_bdf if is_bdf else edfio.read_edf
    try:
        return reader(path)
    except (ValueError, OSError, IndexError, UnicodeDecodeError, KeyError, NotImplementedError) as error:
        kind = "BDF" if is_bdf else "EDF"
        raise UserError(f"{path.name}: not a readable {kind} file ({error_summary(error)})") from None


def _scale(signal: Any, scale_option: float | None, file_name: str) -> float:
    if scale_option is not None:
        return float(scale_option)
    scale = microvolts_per_unit(signal.physical_dimension)
    if scale is None:
        raise UserError(
            f"{file_name}: signal {signal.label!r} is in {signal.physical_dimension!r}, not a voltage; "
            "--scale gives microvolts per unit"
        )
    return scale


def _stack(columns: list[np.ndarray], file_name: str) -> np.ndarray:
    lengths = {len(column) for column in columns}
    if len(lengths) > 1:
        raise UserError(f"{file_name}: the chosen signals have different lengths {sorted(lengths)}")
    return np.column_stack(columns)
