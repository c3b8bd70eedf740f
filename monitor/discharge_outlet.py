"""``<stream>-discharges``: motor-unit discharges as an LSL stream, so LabRecorder keeps them beside the raw EMG.

Irregular rate, float32, one sample per discharge stamped with the LSL time of the discharge (the peak of the unit's
source, a fixed lag after the MUAP's onset): channels ``unit`` (index in the unit set), ``unit_set`` (0 for the
first calibration, +1 at each recalibration), ``instantaneous_hz`` (1 / the interval to the unit's previous
discharge, NaN after a silence of 1 s or more) and ``unit_id``: the same number for a unit found again by a
recalibration (it discharges with a unit of the previous set over the new calibration's samples), a new one
otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CHANNELS = ("unit", "unit_set", "instantaneous_hz", "unit_id")
STREAM_TYPE = "MotorUnitDischarges"


class DischargeOutlet:
    def __init__(self, stream_name: str, source_id: str) -> None:
        import pylsl

        info = pylsl.StreamInfo(f"{stream_name}-discharges", STREAM_TYPE, len(CHANNELS), pylsl.IRREGULAR_RATE,
                                "float32", f"{source_id}-discharges")  # fmt: skip
        channels = info.desc().append_child("channels")
        for label in CHANNELS:
            channels.append_child("channel").append_child_value("label", label)
        self.outlet: Any = pylsl.StreamOutlet(info)

    def push(self, units: np.ndarray, unit_set: int, instantaneous_hz: np.ndarray, timestamps: np.ndarray,
             unit_ids: np.ndarray | None = None) -> None:  # fmt: skip
        """One LSL sample per discharge, each with its own time stamp."""
        if len(units) == 0:
            return
        ids = units if unit_ids is None else unit_ids
        rows = np.column_stack([units, np.full(len(units), unit_set), instantaneous_hz, ids]).astype(np.float32)
        self.outlet.push_chunk(rows.tolist(), np.asarray(timestamps, dtype=np.float64).tolist())

    def have_consumers(self) -> bool:
        return bool(self.outlet.have_consumers())
