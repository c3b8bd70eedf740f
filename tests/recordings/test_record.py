"""Recording through the real LabRecorderCLI: round trip through XDF, crash safety, destination checks up front."""

from __future__ import annotations

import contextlib
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
from monitor.recordings import Recording, open_recording
from monitor.recordings.record import SessionRecorder, bytes_per_second, check_destination, session_source_ids
from monitor.recordings.replay import replay_source
from simulators.electrodes import ElectrodeLayout

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_session_recorded_to_xdf_reads_back_sample_for_sample(tmp_path):
    from simulators.amplifier import Amplifier

    layout = ElectrodeLayout.ring(8)
    n = 3000
    original = Recording(
        data=np.random.default_rng(4).normal(0.0, 70.0, (n, 8)).astype(np.float32),
        timestamps=np.arange(n) / 2000.0,
        fs=2000.0,
        channel_labels=list(layout.labels),
        units=["microvolts"] * 8,
        layout=layout.to_dict(),
        markers=[(0.25, "contraction"), (1.0, "rest")],
    )
    source_id = f"test-record-{uuid.uuid4().hex[:8]}"
    amplifier = Amplifier(replay_source(original), name="test-record", source_id=source_id, speed=2.0)
    recorder = SessionRecorder(tmp_path / "session.xdf", session_source_ids(source_id), bytes_per_second(8, 2000.0))
    assert recorder.start() == [source_id, f"{source_id}-markers"]
    try:
        sent = amplifier.run()
        time.sleep(0.5)  # LabRecorder pulls in the background; let the last chunk arrive
    finally:
        recorder.stop()
    back = open_recording(tmp_path / "session.xdf")
    assert sent == n and back.n_samples == n
    np.testing.assert_array_equal(back.data, original.data)
    assert back.layout == layout.to_dict() and back.channel_labels == list(layout.labels)
    assert [text for _, text in back.markers] == ["contraction", "rest"]
    # markers keep their place: 'rest' sits on sample 2000 of the EMG stream
    rest_time = back.markers[1][0]
    assert back.sample_index(rest_time) == 2000
    # and the recorded file replays like any other recording
    assert replay_source(back).read(n).shape == (n, 8)


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
    assert session_source_ids("amp") == ["amp", "amp-markers", "amp-decisions", "amp-fatigue", "amp-quality"]
