"""ASCII needle recordings (``.asc``): whitespace-separated values in microvolts, one channel, no header.

The clinical needle set in ``../shared/data/needle-emg-clinical`` stores each 5 s recording as one line of
11-character fixed-width fields. The file states no rate: ``--fs`` gives it (``models.needle_corpus`` knows the
shared set's 32768 Hz, used when the file is named like that set's). Several columns per line (one line a
sample) are read as channels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from monitor.errors import UserError
from monitor.recordings.base import MICROVOLTS, Recording, reject_unknown_options, uniform_timestamps
from simulators.electrodes import ElectrodeLayout

OPTIONS = ("fs", "scale")


def read(path: Path, **options: Any) -> Recording:
    reject_unknown_options(options, OPTIONS, "ASC")
    fs = options.get("fs")
    if fs is None:
        from models.needle_corpus import parse_shared_name

        known = parse_shared_name(path)  # the shared clinical set's rate is in its README, not in its files
        fs = known.fs if known is not None else None
    if fs is None:
        raise UserError(f"{path.name}: an .asc file does not state its sampling rate; give it with --fs (e.g. 32768)")
    data = parse(path.read_bytes(), path.name)
    data *= float(options.get("scale", 1.0))
    n_samples, n_channels = data.shape
    return Recording(
        data=data,
        timestamps=uniform_timestamps(n_samples, float(fs)),
        fs=float(fs),
        channel_labels=["needle"] if n_channels == 1 else [f"ch{i + 1}" for i in range(n_channels)],
        units=[MICROVOLTS] * n_channels,
        layout=ElectrodeLayout.needle().to_dict() if n_channels == 1 else None,
        source=path,
    )


def parse(content: bytes, name: str = "recording") -> np.ndarray:
    """(n, C) float32 from the text: one line of values is one channel; several lines of C values are C channels."""
    try:
        text = content.decode("ascii")
    except UnicodeDecodeError:
        raise UserError(f"{name}: not an ASCII recording (non-ASCII bytes)") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise UserError(f"{name}: the .asc file holds no values")
    try:
        if len(lines) == 1:
            data = np.array(lines[0].split(), dtype=np.float64)[:, None]
        else:
            rows = [line.split() for line in lines]
            widths = {len(row) for row in rows}
            if len(widths) != 1:
                raise UserError(f"{name}: rows of the .asc file have different numbers of values ({sorted(widths)})")
            data = np.array(rows, dtype=np.float64)
    except ValueError as error:
        raise UserError(f"{name}: not a numeric .asc recording ({str(error).splitlines()[0]})") from None
    if not np.all(np.isfinite(data)):
        raise UserError(f"{name}: the .asc file holds non-finite values (NaN or Inf)")
    return data.astype(np.float32)
