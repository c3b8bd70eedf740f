"""Live motor-unit decomposition inside the monitor: calibration on demand, causal discharges, an LSL outlet.

``LiveDecomposition`` listens to the DSP engine's raw chunks (``DspEngine.add_sample_listener``) in the DSP thread:
each chunk goes through the current ``dsp.decomposition_live.LiveDecomposer`` and the discharges go to the
``<stream>-discharges`` outlet and to a bounded history the GUI panel draws. ``calibrate(seconds)`` decomposes the
newest seconds of the raw ring buffer in a background thread; the new unit set replaces the old one between two
chunks (nothing is dropped, its filters start at that chunk), and ``unit_set`` counts the sets.

Where it runs: in the monitor's core (``neurofusion monitor --decompose``, or started by a view's first Calibrate:
``CoreDecomposition``), so the outlet publishes with no view at all and LabRecorder keeps the discharges beside the
raw EMG; a view reads the core's units from its status document and sends Calibrate over the control channel
(``RemoteDecomposition``). Without a core (the in-process window), the panel starts one in its own process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from dsp.engine import is_gap
from monitor.errors import UserError

if TYPE_CHECKING:  # scipy.signal (~2 s to import on the loaded 2-core machine) only once a service exists
    from pathlib import Path

    from dsp.decomposition import Decomposition, DecompositionSettings
    from dsp.decomposition_live import LiveDecomposer, RecruitmentTracker
    from dsp.decomposition_tracking import UnitSet

log = logging.getLogger(__name__)
HISTORY = 20_000  # discharges kept for the views (minutes of a dozen units)
MIN_CALIBRATION_S = 5.0
MAX_CALIBRATION_S = 30.0  # the core's raw ring holds 30 s
MIN_CHANNELS = 16  # fewer EMG channels than this: no grid to separate units from
# a core calibrating by itself (--decompose) tries again on the next seconds while a calibration finds no unit (the
# subject was not contracting yet), this many times in all: each try costs seconds of CPU beside the acquisition
AUTO_TRIES = 3
# discharges each status document carries (written 5 times a second): a view that reads it at least this often
# misses none; one that stalls longer loses only the raster's points of the stall
RECENT_S = 2.0


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
                 settings: DecompositionSettings | None = None, force_channel: int | None = None,
                 calibrate_after_s: float | None = None, cells: np.ndarray | None = None,
                 saved: UnitSet | None = None, save_path: Path | None = None) -> None:  # fmt: skip
        """``cells``: grid (row, col) of each of ``channels`` (MUAP maps; reading order on one row without a grid);
        ``saved``: a unit set saved in an earlier session (``dsp.decomposition_tracking``), applied from the first
        sample with its units' numbers, later calibrations matched to it; ``save_path``: each calibration's set is
        written there (.npz) for a later session."""
        self.buffer = buffer
        self.fs = float(fs)
        self.channels = np.arange(buffer.n_channels) if channels is None else np.asarray(channels)
        self.outlet = outlet
        self.force_channel = force_channel  # a %MVC channel of the stream: recruitment thresholds per unit
        self.recruitment: RecruitmentTracker | None = None
        from dsp.decomposition import DecompositionSettings

        self.settings = settings or DecompositionSettings()  # 64 starts: 14 s of CPU for 20 s of 64 channels
        self.status = CalibrationStatus()
        self.decomposer: LiveDecomposer | None = None
        self.unit_set = -1  # the set ``decomposer`` belongs to
        self.unit_ids = np.zeros(0, dtype=np.int64)  # per unit of the set: its number across recalibrations
        self.cells = (np.column_stack([np.zeros(self.channels.size, np.int64), np.arange(self.channels.size)])
                      if cells is None else np.asarray(cells, dtype=np.int64))  # fmt: skip
        self.save_path = save_path
        self._latest: UnitSet | None = None  # the newest set with its MUAP maps, to find its units again in the next
        self._next_id = 0
        self._known_ids = np.zeros(0, dtype=np.int64)
        self.found_again: list[Any] = []  # dsp.decomposition_tracking.Match of the newest set against the previous
        # (unit number, MUAP similarity, evidence) of each unit of the newest set found again: what the panel shows
        self.found_again_units: list[tuple[int, float, str]] = []
        self._pending: tuple[LiveDecomposer | None, int, np.ndarray, RecruitmentTracker | None] | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # (unit_set, unit, counter, lsl time, instantaneous Hz, perf_counter when published)
        self.history: deque[tuple[int, int, int, float, float, float]] = deque(maxlen=HISTORY)
        self.published = 0
        self._last_timestamp: float | None = None
        self.newest_timestamp = float("nan")  # LSL time of the newest sample seen (the views' "now")
        self._calibration_lock = threading.Lock()  # Calibrate from a view and the automatic one may meet
        # calibrate by itself once the stream has this many seconds (None: only on demand), then again while no unit
        self.calibrate_after_s = calibrate_after_s
        self._auto_tries = 0
        self._auto_at = None if calibrate_after_s is None else int(calibrate_after_s * self.fs)
        if calibrate_after_s is not None:
            self.status.message = f"calibrating by itself after {calibrate_after_s:g} s of signal (hold a contraction)"
        self._refresh_saved = False  # a saved set runs: calibrate once by itself all the same, matched to it
        if saved is not None:
            self.install_saved(saved)
            self._refresh_saved = calibrate_after_s is not None

    # ----- calibration --------------------------------------------------------------------------------------------
    def calibrate(self, seconds: float = 20.0, wait: bool = False, automatic: bool = False) -> None:
        """Decompose the newest ``seconds`` of the stream in the background (``wait``: in this thread). Cheap for
        the caller (the DSP thread, the control channel's thread): the samples are copied by the calibration. A
        calibration asked for (not ``automatic``) ends the automatic ones: the user chose the moment."""
        if not automatic:
            self._auto_at = None
        with self._calibration_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            wanted = int(seconds * self.fs)
            available = min(wanted, self.buffer.total_written, self.buffer.capacity) / self.fs
            if available < MIN_CALIBRATION_S:
                self.status = CalibrationStatus("failed", f"need {MIN_CALIBRATION_S:g} s of signal, have "
                                                f"{available:.1f} s", self.status.unit_set)  # fmt: skip
                return
            self.status = CalibrationStatus("calibrating", f"decomposing {available:.0f} s ...", self.status.unit_set)
            if not wait:
                self._thread = threading.Thread(target=self._calibrate, args=(wanted,), name="decompose", daemon=True)
                self._thread.start()
                return
        self._calibrate(wanted)

    def _calibrate(self, n_samples: int) -> None:
        from dsp.decomposition import decompose

        started = time.perf_counter()
        block = self.buffer.latest(n_samples)
        data = block.data[:, self.channels]
        seconds = len(block.timestamps) / self.fs
        try:
            result = decompose(data, self.fs, self.settings)
        except (ValueError, np.linalg.LinAlgError) as error:
            self.status = CalibrationStatus("failed", f"calibration failed: {error}", self.status.unit_set)
            return
        except Exception as error:  # a background thread's error must not leave the status "calibrating" for ever
            log.exception("calibration failed")
            self.status = CalibrationStatus("failed", f"calibration failed: {error!r}", self.status.unit_set)
            return
        self.install(result, seconds, time.perf_counter() - started, data)

    def _calibrate_if_due(self) -> None:
        """The automatic calibration (``calibrate_after_s``): once enough signal arrived, again while no unit."""
        if self._auto_at is None or self.buffer.total_written < self._auto_at:
            return
        if self.n_units > 0 and not self._refresh_saved:
            return
        if self.status.state == "calibrating" or self._pending is not None:
            return
        if self._auto_tries >= AUTO_TRIES:
            self._auto_at = None
            return
        self._auto_tries += 1
        self._refresh_saved = False
        self._auto_at = self.buffer.total_written + int(self.calibrate_after_s * self.fs)  # type: ignore[operator]
        self.calibrate(float(self.calibrate_after_s), automatic=True)  # type: ignore[arg-type]

    def install(self, result: Decomposition, seconds: float = 0.0, wall_s: float = 0.0,
                data: np.ndarray | None = None) -> None:  # fmt: skip
        """Use ``result`` from the next chunk on. With the calibration ``data``, a unit of the previous set (or of
        a saved one) found again keeps its id (``dsp.decomposition_tracking.find_again``: the previous filters fire
        with it over those samples and their MUAPs agree, or its MUAP map matches at one shift for the whole grid)."""
        from dsp.decomposition_tracking import UnitSet, find_again, save_units
        from dsp.decomposition_tracking import unit_set as make_unit_set

        unit_set = self.status.unit_set + 1
        same: dict[int, int] = {}
        if data is None:  # no samples to draw MUAP maps from: the next set is matched by discharges only
            empty = np.zeros((len(result.units), self.channels.size, 1), dtype=np.float32)
            new_set = UnitSet(result, empty, self.cells, np.zeros(len(result.units), np.int64))
        else:
            new_set = make_unit_set(result, data, self.cells)
        self.found_again = []
        if data is not None and self._latest is not None and self._latest.decomposition.units and result.units:
            self.found_again = find_again(self._latest, new_set, data)
            same = {match.found: match.saved for match in self.found_again}
        ids = np.zeros(len(result.units), dtype=np.int64)
        for index in range(len(result.units)):
            if index in same:
                ids[index] = self._known_ids[same[index]]
            else:
                ids[index], self._next_id = self._next_id, self._next_id + 1
        new_set.unit_ids = ids
        self.found_again_units = [(int(ids[match.found]), float(match.similarity), str(match.evidence))
                                  for match in self.found_again]  # fmt: skip
        if data is not None and self.save_path is not None and result.units:
            try:
                save_units(self.save_path, new_set)
            except OSError as error:
                log.warning("could not save the motor units to %s: %s", self.save_path, error)
        self._latest, self._known_ids = new_set, ids
        self._queue(result, unit_set, ids)
        sils = [round(unit.sil, 3) for unit in result.units]
        again = f", {len(same)} found again" if unit_set > 0 else ""
        message = f"{len(result.units)} units from {seconds:.0f} s in {wall_s:.1f} s (set {unit_set}{again})"
        if not result.units:
            message = f"no unit reached SIL {result.settings.sil_threshold:g} in {seconds:.0f} s: contract steadily"
        self.status = CalibrationStatus("calibrated", message, unit_set, seconds, wall_s, sils)

    def install_saved(self, saved: UnitSet) -> None:
        """Apply a unit set saved in an earlier session from the next chunk on, its units keeping their numbers."""
        if saved.decomposition.n_channels != self.channels.size or saved.decomposition.fs != self.fs:
            raise ValueError(f"the saved units were calibrated on {saved.decomposition.n_channels} channels at "
                             f"{saved.decomposition.fs:g} Hz; this stream has {self.channels.size} at {self.fs:g} Hz")
        unit_set = self.status.unit_set + 1
        ids = np.asarray(saved.unit_ids, dtype=np.int64)
        self._latest, self._known_ids = saved, ids
        self.found_again, self.found_again_units = [], []
        self._next_id = max(self._next_id, int(ids.max()) + 1 if ids.size else 0)
        self._queue(saved.decomposition, unit_set, ids)
        self.status = CalibrationStatus("calibrated", f"{ids.size} saved units applied (set {unit_set}): "
                                        "Calibrate to decompose afresh and find them again", unit_set)  # fmt: skip

    def save_units(self, path: str | Path) -> Path:
        """Writes the running unit set (filters, numbers, MUAP maps) to ``path`` (.npz, the ``--save-motor-units``
        format); ValueError in one line when there is none or the file cannot be written."""
        from pathlib import Path

        from dsp.decomposition_tracking import save_units

        path, latest = Path(path), self._latest
        if path.suffix.lower() != ".npz":
            raise ValueError(f"{path}: the unit set is written as .npz; name the file *.npz")
        if latest is None or not latest.decomposition.units:
            raise ValueError("no motor units to save yet: calibrate first")
        try:
            return save_units(path, latest)
        except OSError as error:
            raise ValueError(f"{path}: cannot write it ({error.strerror or error})") from None

    def load_units(self, path: str | Path) -> UnitSet:
        """Applies the unit set saved in ``path`` from the next chunk on, its units keeping their numbers (as
        ``monitor --motor-units``); the next calibration finds them again. ValueError in one line for a malformed file
        or one of another grid or rate, the running set kept."""
        from dsp.decomposition_tracking import load_units

        saved = load_units(path)
        try:
            self.install_saved(saved)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
        return saved

    def _queue(self, result: Decomposition, unit_set: int, ids: np.ndarray) -> None:
        from dsp.decomposition_live import LiveDecomposer, RecruitmentTracker

        with self._lock:
            tracker = RecruitmentTracker(len(result.units), self.fs) if self.force_channel is not None else None
            # a calibration that kept no unit leaves nothing to run (and the automatic one tries again)
            self._pending = (LiveDecomposer(result) if result.units else None, unit_set, ids, tracker)

    # ----- streaming (DSP thread) ---------------------------------------------------------------------------------
    def on_samples(self, samples: np.ndarray, timestamps: np.ndarray, first_counter: int) -> None:
        self._calibrate_if_due()
        if len(timestamps):
            self.newest_timestamp = float(timestamps[-1])
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

    def newest(self, seconds: float) -> list[tuple[int, int, int, float, float, float]]:
        """Discharges of the current unit set in the last ``seconds`` of the stream, read from the newest back (the
        status document asks 5 times a second; the history holds up to ``HISTORY``)."""
        unit_set, since, rows = self.unit_set, self.newest_timestamp - seconds, []
        for row in reversed(list(self.history)):
            if row[3] < since - 1.0:  # a chunk's discharges are decided together, up to a chunk apart in time
                break
            if row[0] == unit_set and row[3] >= since:
                rows.append(row)
        return rows[::-1]

    @property
    def n_units(self) -> int:
        return 0 if self.decomposer is None else self.decomposer.n_units

    def smoothed_rates(self) -> np.ndarray:
        return np.zeros(0) if self.decomposer is None else self.decomposer.smoothed_rates()


# ----- the core's service, described for views and driven by them --------------------------------------------------
def _number(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 4)


def describe(service: LiveDecomposition, recent_s: float = RECENT_S) -> dict[str, Any]:
    """What a view shows of the core's motor units, as JSON: status, units, rates, thresholds, recent discharges."""
    status = service.status
    recruitment = service.recruitment
    return {
        "state": status.state, "message": status.message, "calibration_set": status.unit_set,
        "seconds": status.seconds, "wall_s": status.wall_s, "sil": list(status.sil),
        "unit_set": service.unit_set, "n_units": service.n_units,
        "unit_ids": [int(i) for i in service.unit_ids],
        "smoothed_hz": [float(rate) for rate in service.smoothed_rates()],
        "thresholds": None if recruitment is None else [[_number(up), _number(down)]
                                                        for up, down in recruitment.thresholds()],
        "force_channel": service.force_channel, "channels": [int(c) for c in service.channels],
        "published": service.published,
        # units of the newest set found again (their number kept): [number, MUAP similarity, evidence]
        "found_again": [[unit_id, value, evidence] for unit_id, value, evidence in service.found_again_units],
        # (unit_set, unit, counter, LSL time, instantaneous Hz) of the last ``recent_s``
        "discharges": [[row[0], row[1], row[2], row[3], _number(row[4])] for row in service.newest(recent_s)],
    }  # fmt: skip


class _Thresholds:
    def __init__(self, pairs: list[tuple[float, float]]) -> None:
        self.pairs = pairs

    def thresholds(self) -> list[tuple[float, float]]:
        return self.pairs


class RemoteDecomposition:
    """A view's stand-in for the core's ``LiveDecomposition``: what the panel and the dashboard read, copied from
    the core's status document; ``calibrate`` asks the core over the control channel."""

    def __init__(self, control: Any, document: dict[str, Any] | None = None) -> None:
        self.control = control
        self.status = CalibrationStatus(message="press Calibrate during a steady contraction (the core decomposes)")
        self.unit_set, self.n_units, self.published = -1, 0, 0
        self.unit_ids = np.zeros(0, dtype=np.int64)
        self.found_again_units: list[tuple[int, float, str]] = []
        self.channels = np.zeros(0, dtype=np.int64)
        self.force_channel: int | None = None
        self.recruitment: _Thresholds | None = None
        self.history: deque[tuple[int, int, int, float, float, float]] = deque(maxlen=HISTORY)
        self._rates = np.zeros(0)
        self._shown: set[tuple[int, int, int]] = set()  # the previous document's discharges, not to copy twice
        self._lock = threading.Lock()
        if document is not None:
            self.update(document)

    def update(self, document: dict[str, Any]) -> None:
        """Takes the core's newest description (each status document, or a control reply)."""
        with self._lock:
            self.status = CalibrationStatus(document["state"], document["message"], document["calibration_set"],
                                            document["seconds"], document["wall_s"], list(document["sil"]))  # fmt: skip
            self.unit_set, self.n_units = int(document["unit_set"]), int(document["n_units"])
            self.unit_ids = np.asarray(document["unit_ids"], dtype=np.int64)
            self.found_again_units = [(int(i), float(v), str(e)) for i, v, e in document.get("found_again", [])]
            self._rates = np.asarray(document["smoothed_hz"], dtype=float)
            self.channels = np.asarray(document["channels"], dtype=np.int64)
            self.force_channel, self.published = document["force_channel"], int(document["published"])
            pairs = document["thresholds"]
            self.recruitment = (
                None
                if pairs is None
                else _Thresholds(
                    [(np.nan if up is None else up, np.nan if down is None else down) for up, down in pairs]
                )
            )
            now = time.perf_counter()
            shown = set()
            for unit_set, unit, counter, stamp, rate in document["discharges"]:
                key = (int(unit_set), int(unit), int(counter))
                shown.add(key)
                if key not in self._shown:  # rows only leave the document's window from its old end
                    self.history.append((key[0], key[1], key[2], float(stamp), np.nan if rate is None else rate, now))
            self._shown = shown

    def calibrate(self, seconds: float = 20.0, wait: bool = False) -> None:
        """Asks the core to decompose its newest ``seconds`` (the core calibrates in its own background thread)."""
        if self.control is None:
            self.status = CalibrationStatus("failed", "this view is read-only (no control channel)", self.unit_set)
            return
        reply = self.control.request("decomposition", action="calibrate", seconds=float(seconds))
        if reply.get("ok"):
            self.update(reply["decomposition"])
        else:
            self.status = CalibrationStatus("failed", str(reply.get("error", "refused by the core")), self.unit_set)

    def save_units(self, path: str | Path) -> None:
        """Asks the core to write its running unit set to ``path`` (absolute: the core's working folder is not
        this view's); ValueError in one line with the core's refusal."""
        self._ask("save", path)

    def load_units(self, path: str | Path) -> None:
        """Asks the core to apply the unit set saved in ``path``; ValueError in one line when the core refuses it
        (a malformed file, another grid): the core keeps its running set."""
        self._ask("load", path)

    def _ask(self, action: str, path: str | Path) -> None:
        from pathlib import Path

        if self.control is None:
            raise ValueError("this view is read-only (no control channel)")
        reply = self.control.request("decomposition", action=action, path=str(Path(path).expanduser().absolute()))
        if not reply.get("ok"):
            raise ValueError(str(reply.get("error", "refused by the core")).splitlines()[0])
        self.update(reply["decomposition"])

    def recent(self, since_timestamp: float) -> list[tuple[int, int, int, float, float, float]]:
        unit_set = self.unit_set
        return [row for row in list(self.history) if row[0] == unit_set and row[3] >= since_timestamp]

    def smoothed_rates(self) -> np.ndarray:
        return self._rates


class CoreDecomposition:
    """The core's motor units: started with the session (``--decompose``) or by a view's first Calibrate, which
    reaches ``handle`` over the control channel; ``describe`` goes into the status document the views read."""

    def __init__(self, pipeline: Any, calibrate_after_s: float | None = None,
                 settings: DecompositionSettings | None = None, saved: UnitSet | None = None,
                 save_path: Path | None = None) -> None:  # fmt: skip
        self.pipeline = pipeline
        self.calibrate_after_s = calibrate_after_s
        self.settings = settings
        self.saved, self.save_path = saved, save_path
        self.service: LiveDecomposition | None = None
        self._lock = threading.Lock()
        # the outlet exists from the session's start, before any Calibrate: LabRecorder resolves its streams when a
        # recording starts, so a `--record` (or the record button) started before the first Calibrate records the
        # discharges of every later calibration too (an outlet made at the first Calibrate was never picked up)
        from monitor.discharge_outlet import DischargeOutlet

        stream = pipeline.acquisition.stream
        self.outlet = DischargeOutlet(stream.name, stream.source_id)
        pipeline.decomposition_host = self  # an in-process window's panel uses this service, not one of its own

    def start(self) -> LiveDecomposition:
        with self._lock:
            if self.service is None:
                self.service = start_live_decomposition(self.pipeline, self.calibrate_after_s, self.settings,
                                                        outlet=self.outlet, saved=self.saved,
                                                        save_path=self.save_path)  # fmt: skip
            return self.service

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """A view's request: ``action`` "calibrate" (``seconds``, 5-30), "save" / "load" (``path``: an absolute .npz
        path, ``dsp.decomposition_tracking``'s format; load applies the set as ``--motor-units``) or "describe"."""
        from pathlib import Path

        action = request.get("action")
        if action == "calibrate":
            seconds = float(request.get("seconds", 20.0))
            if not MIN_CALIBRATION_S <= seconds <= MAX_CALIBRATION_S:
                raise ValueError(f"calibrate on {MIN_CALIBRATION_S:g}-{MAX_CALIBRATION_S:g} s, not {seconds:g}")
            self.start().calibrate(seconds)
        elif action in ("save", "load"):
            path = Path(str(request.get("path", "")))
            if not path.is_absolute():  # the core's working folder is not the view's
                raise ValueError(f"{action} motor units: an absolute path, not {str(path)!r}")
            if action == "save":
                self.start().save_units(path)
            else:
                self.start().load_units(path)
        elif action != "describe":
            raise ValueError(f"unknown decomposition action {action!r}; known: calibrate, save, load, describe")
        return {"decomposition": describe(self.start())}

    def describe(self) -> dict[str, Any] | None:
        service = self.service
        return None if service is None else describe(service)


def decomposable(state: Any) -> bool:
    """Whether a stream can be decomposed into motor units: a grid, or at least 16 EMG channels."""
    layout = getattr(state, "layout", None) or {}
    return layout.get("kind") == "grid" or len(getattr(state, "emg_channels", [])) >= MIN_CHANNELS


def force_channel(labels: list[str], emg_channels: np.ndarray) -> int | None:
    """The stream's force channel: a channel that is not EMG and names force or %MVC; None without one."""
    emg = set(np.asarray(emg_channels).tolist())
    for index, label in enumerate(labels):
        if index not in emg and ("force" in label.lower() or "mvc" in label.lower()):
            return index
    return None


def start_live_decomposition(
    pipeline: Any,
    calibrate_after_s: float | None = None,
    settings: DecompositionSettings | None = None,
    publish: bool = True,
    outlet: Any | None = None,
    saved: UnitSet | None = None,
    save_path: Path | None = None,
) -> LiveDecomposition:
    """A ``LiveDecomposition`` of ``pipeline``'s EMG channels fed by its engine, publishing on ``<stream>-discharges``
    (``publish``; ``outlet``: one made already), recruitment thresholds against the stream's force channel when it
    has one, MUAP maps on the stream's grid; ``saved``/``save_path`` as ``LiveDecomposition``. Kept as
    ``pipeline.decomposition`` for the views (the terminal dashboard's row)."""
    from dsp.decomposition_tracking import grid_cells

    state = pipeline.state
    if publish and outlet is None:
        from monitor.discharge_outlet import DischargeOutlet

        stream = pipeline.acquisition.stream
        outlet = DischargeOutlet(stream.name, stream.source_id)
    channels = np.asarray(getattr(state, "emg_channels", np.arange(state.n_channels)))
    force = force_channel(list(state.channel_labels), channels)
    cells = grid_cells(getattr(state, "layout", None), channels.size)
    service = LiveDecomposition(pipeline.acquisition.buffer, float(state.fs), channels, outlet if publish else None,
                                settings, force_channel=force, calibrate_after_s=calibrate_after_s, cells=cells,
                                saved=saved, save_path=save_path)  # fmt: skip
    pipeline.engine.add_sample_listener(service.on_samples)
    pipeline.decomposition = service
    return service


def core_decomposition(
    pipeline: Any,
    decompose: bool,
    calibrate_after_s: float = 20.0,
    starts: int | None = None,
    units: Path | None = None,
    save_units: Path | None = None,
) -> CoreDecomposition | None:
    """The session's ``CoreDecomposition`` of a decomposable stream, started now with ``decompose`` or ``units`` (it
    calibrates by itself after ``calibrate_after_s`` s); None for a stream with no grid (UserError when asked to
    decompose). ``units``: a unit set saved in an earlier session, applied from the start, its units found again by
    the calibrations; ``save_units``: where each calibration's set is written."""
    decompose = decompose or units is not None
    if not decomposable(pipeline.state):
        if decompose:
            raise UserError(f"--decompose needs a grid or at least {MIN_CHANNELS} EMG channels; stream "
                            f"{pipeline.state.stream_name!r} has {len(pipeline.state.emg_channels)}")  # fmt: skip
        return None
    if starts is None:
        settings = None
    else:
        from dsp.decomposition import DecompositionSettings

        settings = DecompositionSettings(starts=starts)
    saved = None if units is None else load_saved_units(units)
    host = CoreDecomposition(pipeline, calibrate_after_s if decompose else None, settings, saved, save_units)
    if decompose:
        try:
            host.start()
        except ValueError as error:  # a saved set of another grid or rate
            raise UserError(f"--motor-units {units}: {error}") from None
    return host


def load_saved_units(path: Path) -> UnitSet:
    """``dsp.decomposition_tracking.load_units`` with its refusal as a one-line UserError."""
    from dsp.decomposition_tracking import load_units

    try:
        return load_units(path)
    except ValueError as error:
        raise UserError(f"--motor-units: {error}") from None


def check_save_units(path: Path | None) -> Path | None:
    """``--save-motor-units``: an .npz in a folder that exists (one-line error now rather than after a calibration)."""
    if path is None:
        return None
    if path.suffix.lower() != ".npz":
        raise UserError(f"--save-motor-units {path}: the unit set is written as .npz; name the file *.npz")
    if not path.parent.is_dir():
        raise UserError(f"--save-motor-units {path}: the folder {path.parent} does not exist")
    return path


def check_calibration_seconds(seconds: float) -> float:
    """``--calibrate-seconds`` within what a calibration can use (one-line error otherwise)."""
    if not MIN_CALIBRATION_S <= seconds <= MAX_CALIBRATION_S:
        raise UserError(f"--calibrate-seconds must be {MIN_CALIBRATION_S:g}-{MAX_CALIBRATION_S:g} (the raw ring holds "
                        f"{MAX_CALIBRATION_S:g} s), not {seconds:g}")  # fmt: skip
    return seconds


def summary_line(service: Any) -> str:
    """One line for the terminal dashboard and the core's status line: units, their rates and thresholds."""
    status = service.status
    if service.n_units == 0 or status.state == "failed":
        return status.message if service.n_units == 0 else f"{service.n_units} units; {status.message}"
    ids, rates = service.unit_ids, service.smoothed_rates()
    line = f"{service.n_units} units (set {service.unit_set}), {service.published} discharges: " + "  ".join(
        f"U{i} {rate:.0f} Hz" for i, rate in zip(ids, rates, strict=False)
    )
    if status.state == "calibrating":
        line = f"recalibrating; {line}"
    elif "found again" in status.message or "saved units applied" in status.message:
        line += f" [{status.message}]"  # which numbers are units of the previous or the saved set
    recruitment = service.recruitment
    if recruitment is not None:
        pairs = zip(ids, recruitment.thresholds(), strict=False)
        line += " | recruited/de-recruited at %MVC: " + "  ".join(
            f"U{i} {_threshold(up)}/{_threshold(down)}" for i, (up, down) in pairs
        )
    return line


def _threshold(value: float) -> str:
    return "-" if not np.isfinite(value) else f"{value:.1f}"
