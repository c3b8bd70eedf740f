"""Live motor-unit decomposition inside the monitor: calibration on demand, causal discharges, an LSL outlet.

``LiveDecomposition`` listens to the DSP engine's raw chunks (``DspEngine.add_sample_listener``) in the DSP thread:
each chunk goes through the current ``dsp.decomposition_live.LiveDecomposer`` and the discharges go to the
``<stream>-discharges`` outlet and to a bounded history the GUI panel draws. ``calibrate(seconds)`` decomposes the
newest seconds of the raw ring buffer in a background thread; the new unit set replaces the old one between two
chunks (nothing is dropped, its filters start at that chunk), and ``unit_set`` counts the sets.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dsp.decomposition import Decomposition, DecompositionSettings, decompose, detect, match_units
from dsp.decomposition_live import LiveDecomposer, RecruitmentTracker
from dsp.engine import is_gap

log = logging.getLogger(__name__)
HISTORY = 20_000  # discharges kept for the views (minutes of a dozen units)
MIN_CALIBRATION_S = 5.0


@dataclass
class CalibrationStatus:
    state: str = "not calibrated"  # "calibrating", "calibrated", "failed"
    message: str = "press Calibrate during a steady contraction"
    unit_set: int = -1
    seconds: float = 0.0
    wall_s: float = 0.0
    sil: list[float] = field(default_factory=list)


class LiveDecomposition:
    """Motor units of ``buffer``'s stream (the EMG ``channels`` of it), fed by the engine, published on ``outlet``."""

    def __init__(self, buffer: Any, fs: float, channels: np.ndarray | None = None, outlet: Any | None = None,
                 settings: DecompositionSettings | None = None, force_channel: int | None = None) -> None:  # fmt: skip
        self.buffer = buffer
        self.fs = float(fs)
        self.channels = np.arange(buffer.n_channels) if channels is None else np.asarray(channels)
        self.outlet = outlet
        self.force_channel = force_channel  # a %MVC channel of the stream: recruitment thresholds per unit
        self.recruitment: RecruitmentTracker | None = None
        self.settings = settings or DecompositionSettings()  # 64 starts: 14 s of CPU for 20 s of 64 channels
        self.status = CalibrationStatus()
        self.decomposer: LiveDecomposer | None = None
        self.unit_set = -1  # the set ``decomposer`` belongs to
        self.unit_ids = np.zeros(0, dtype=np.int64)  # per unit of the set: its number across recalibrations
        self._latest: Decomposition | None = None  # the newest set, to find its units again in the next one
        self._next_id = 0
        self._known_ids = np.zeros(0, dtype=np.int64)
        self._pending: tuple[LiveDecomposer, int, np.ndarray, RecruitmentTracker | None] | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # (unit_set, unit, counter, lsl time, instantaneous Hz, perf_counter when published)
        self.history: deque[tuple[int, int, int, float, float, float]] = deque(maxlen=HISTORY)
        self.published = 0
        self._last_timestamp: float | None = None

    # ----- calibration --------------------------------------------------------------------------------------------
    def calibrate(self, seconds: float = 20.0, wait: bool = False) -> None:
        """Decompose the newest ``seconds`` of the stream in the background (``wait``: in this thread)."""
        if self._thread is not None and self._thread.is_alive():
            return
        block = self.buffer.latest(int(seconds * self.fs))
        available = len(block.timestamps) / self.fs
        if available < MIN_CALIBRATION_S:
            self.status = CalibrationStatus("failed", f"need {MIN_CALIBRATION_S:g} s of signal, have {available:.1f} s",
                                            self.status.unit_set)  # fmt: skip
            return
        self.status = CalibrationStatus("calibrating", f"decomposing {available:.0f} s ...", self.status.unit_set)
        data = block.data[:, self.channels]
        if wait:
            self._calibrate(data, available)
        else:
            self._thread = threading.Thread(target=self._calibrate, args=(data, available), name="decompose",
                                            daemon=True)  # fmt: skip
            self._thread.start()

    def _calibrate(self, data: np.ndarray, seconds: float) -> None:
        started = time.perf_counter()
        try:
            result = decompose(data, self.fs, self.settings)
        except (ValueError, np.linalg.LinAlgError) as error:
            self.status = CalibrationStatus("failed", f"calibration failed: {error}", self.status.unit_set)
            return
        self.install(result, seconds, time.perf_counter() - started, data)

    def install(self, result: Decomposition, seconds: float = 0.0, wall_s: float = 0.0,
                data: np.ndarray | None = None) -> None:  # fmt: skip
        """Use ``result`` from the next chunk on. With the calibration ``data``, units of the previous set that
        discharge together with a new one over those samples (``dsp.decomposition.match_units``) keep their id."""
        unit_set = self.status.unit_set + 1
        same: dict[int, int] = {}
        if data is not None and self._latest is not None and self._latest.units and result.units:
            previous = detect(self._latest, data)
            same = match_units(previous, [unit.discharges for unit in result.units], self.fs, result.settings)
        ids = np.zeros(len(result.units), dtype=np.int64)
        for index in range(len(result.units)):
            if index in same:
                ids[index] = self._known_ids[same[index]]
            else:
                ids[index], self._next_id = self._next_id, self._next_id + 1
        self._latest, self._known_ids = result, ids
        with self._lock:
            tracker = RecruitmentTracker(len(result.units), self.fs) if self.force_channel is not None else None
            self._pending = (LiveDecomposer(result), unit_set, ids, tracker)
        sils = [round(unit.sil, 3) for unit in result.units]
        again = f", {len(same)} found again" if unit_set > 0 else ""
        message = f"{len(result.units)} units from {seconds:.0f} s in {wall_s:.1f} s (set {unit_set}{again})"
        if not result.units:
            message = f"no unit reached SIL {result.settings.sil_threshold:g} in {seconds:.0f} s: contract steadily"
        self.status = CalibrationStatus("calibrated", message, unit_set, seconds, wall_s, sils)

    # ----- streaming (DSP thread) ---------------------------------------------------------------------------------
    def on_samples(self, samples: np.ndarray, timestamps: np.ndarray, first_counter: int) -> None:
        with self._lock:
            if self._pending is not None:
                (self.decomposer, self.unit_set, self.unit_ids, self.recruitment), self._pending = self._pending, None
        decomposer = self.decomposer
        if decomposer is None or len(timestamps) == 0:
            return
        if self._last_timestamp is not None and is_gap(self._last_timestamp, float(timestamps[0]), self.fs):
            decomposer.reset(first_counter)  # the stream came back: its units are found again from rest
        self._last_timestamp = float(timestamps[-1])
        found = decomposer.process(samples[:, self.channels], timestamps, first_counter)
        if self.recruitment is not None:
            self.recruitment.update(samples[:, self.force_channel], first_counter, found)
        if len(found) == 0:
            return
        unit_set = self.unit_set
        if self.outlet is not None:
            self.outlet.push(
                found.units, unit_set, found.instantaneous_hz, found.timestamps, self.unit_ids[found.units]
            )
        now = time.perf_counter()
        columns = (found.units, found.counters, found.timestamps, found.instantaneous_hz)
        for unit, counter, stamp, rate in zip(*(column.tolist() for column in columns), strict=True):
            self.history.append((unit_set, unit, counter, stamp, rate, now))
        self.published += len(found)

    def recent(self, since_timestamp: float) -> list[tuple[int, int, int, float, float, float]]:
        """Discharges of the current unit set after ``since_timestamp`` (LSL time)."""
        unit_set = self.unit_set
        return [row for row in list(self.history) if row[0] == unit_set and row[3] >= since_timestamp]

    @property
    def n_units(self) -> int:
        return 0 if self.decomposer is None else self.decomposer.n_units

    def smoothed_rates(self) -> np.ndarray:
        return np.zeros(0) if self.decomposer is None else self.decomposer.smoothed_rates()
