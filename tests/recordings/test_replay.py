"""Replay: a recording through the real amplifier onto real LSL outlets, read back by real inlets on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from monitor.recordings import Recording, open_recording
from monitor.recordings.replay import MarkedRecordingSource, RecordingSource, label_change_events, replay_source

REPO = Path(__file__).resolve().parents[2]


def _recording(n_samples: int = 1500, fs: float = 1000.0, n_channels: int = 3) -> Recording:
    rng = np.random.default_rng(11)
    labels = np.repeat([0, 2, 0], [500, 600, n_samples - 1100])
    return Recording(
        data=rng.normal(0.0, 80.0, (n_samples, n_channels)).astype(np.float32),
        timestamps=50.0 + np.arange(n_samples) / fs,
        fs=fs,
        channel_labels=[f"EMG{i}" for i in range(n_channels)],
        units=["microvolts"] * n_channels,
        markers=[(50.2504, "stimulus"), (51.0, "rest")],
        labels=labels,
    )


def _pull_all(inlet, expected: int, timeout_s: float) -> tuple[np.ndarray, np.ndarray]:
    chunks, stamps = [], []
    received = 0
    deadline = time.monotonic() + timeout_s
    while received < expected and time.monotonic() < deadline:
        data, timestamps = inlet.pull_chunk(timeout=0.2, max_samples=4096)
        if timestamps:
            chunks.append(np.asarray(data, dtype=np.float32))
            stamps.extend(timestamps)
            received += len(timestamps)
    # anything beyond the expected count would show up here
    data, timestamps = inlet.pull_chunk(timeout=0.3, max_samples=4096)
    if timestamps:
        chunks.append(np.asarray(data, dtype=np.float32))
        stamps.extend(timestamps)
    return (np.vstack(chunks) if chunks else np.empty((0, 0))), np.asarray(stamps)


def _replay_and_pull(command: list[str], source_id: str, n_samples: int) -> tuple[np.ndarray, str]:
    """Runs `neurofusion replay` in a subprocess, pulls ``n_samples`` from its stream, and returns them with its
    stdout once it has exited successfully."""
    import pylsl

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        infos = pylsl.resolve_byprop("source_id", source_id, timeout=20.0)
        assert infos, process.stderr.read() if process.poll() is not None else "replay stream not found"
        inlet = pylsl.StreamInlet(infos[0], max_buflen=30)
        inlet.open_stream(timeout=5.0)
        data, _ = _pull_all(inlet, n_samples, timeout_s=30.0)
        stdout, stderr = process.communicate(timeout=20.0)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    return data, stdout


def test_label_changes_become_events_at_their_samples():
    events = label_change_events(np.array([0, 0, 3, 3, 3, 0, 1]))
    assert events == [(0, '{"label": 0}'), (2, '{"label": 3}'), (5, '{"label": 0}'), (6, '{"label": 1}')]


def test_looping_source_wraps_samples_and_repeats_events_each_pass():
    recording = _recording(n_samples=1200)
    source = MarkedRecordingSource(recording, loop=True)
    read = np.vstack([source.read(500) for _ in range(6)])
    assert read.shape == (3000, 3)
    np.testing.assert_array_equal(read, np.vstack([recording.data, recording.data, recording.data[:600]]))
    events = source.markers_until(3000)
    # per pass: labels at 0, 500, 1100 and markers at samples 250 (nearest to 50.2504 s) and 1000
    one_pass = [0, 250, 500, 1000, 1100]
    assert [at for at, _ in events] == one_pass + [1200 + i for i in one_pass] + [2400, 2650, 2900]
    assert source.markers_until(3000) == []


def test_plain_source_ends_with_the_recording_and_has_no_marker_stream():
    recording = _recording()
    recording.markers, recording.labels = [], None
    source = replay_source(recording)
    assert type(source) is RecordingSource and not hasattr(source, "markers_until")
    assert source.read(1000).shape == (1000, 3)
    assert source.read(1000).shape == (500, 3)
    assert source.read(1000).shape == (0, 3)


def test_replay_delivers_every_sample_and_marker_over_lsl():
    import pylsl

    from simulators.amplifier import Amplifier

    recording = _recording()
    source_id = f"test-replay-{uuid.uuid4().hex[:8]}"
    amplifier = Amplifier(replay_source(recording), name="test-replay", source_id=source_id, speed=4.0)
    emg_info = pylsl.resolve_byprop("source_id", source_id, timeout=10.0)
    marker_info = pylsl.resolve_byprop("source_id", f"{source_id}-markers", timeout=10.0)
    assert emg_info and marker_info
    emg_inlet = pylsl.StreamInlet(emg_info[0], max_buflen=30)
    marker_inlet = pylsl.StreamInlet(marker_info[0], max_buflen=30)
    emg_inlet.open_stream(timeout=5.0)
    marker_inlet.open_stream(timeout=5.0)
    described = emg_inlet.info(timeout=5.0).desc().child("channels").first_child()
    assert described.child_value("label") == "EMG0" and described.child_value("unit") == "microvolts"

    sender = threading.Thread(target=amplifier.run)
    sender.start()
    data, stamps = _pull_all(emg_inlet, recording.n_samples, timeout_s=20.0)
    sender.join(timeout=10.0)
    markers, marker_stamps = marker_inlet.pull_chunk(timeout=1.0, max_samples=100)

    assert data.shape == (recording.n_samples, recording.n_channels)
    np.testing.assert_array_equal(data, recording.data)
    # paced at 4x: consecutive stamps 1/(4 fs) apart, exactly as the amplifier computes them
    np.testing.assert_allclose(np.diff(stamps), 1.0 / (4.0 * recording.fs), rtol=1e-6)
    texts = [m[0] for m in markers]
    assert texts == ['{"label": 0}', "stimulus", '{"label": 2}', "rest", '{"label": 0}']
    # each marker carries the timestamp of its sample in the EMG stream
    samples = [int(round((t - stamps[0]) * 4.0 * recording.fs)) for t in marker_stamps]
    assert samples == [0, 250, 500, 1000, 1100]


def test_replay_command_publishes_a_csv_file_sample_for_sample(tmp_path):

    rng = np.random.default_rng(5)
    table = np.column_stack([rng.integers(-500, 500, (2400, 4)), np.repeat([0, 1], 1200)])
    path = tmp_path / "session.csv"
    np.savetxt(path, table, fmt="%d", delimiter=",")
    source_id = f"test-replay-cli-{uuid.uuid4().hex[:8]}"
    command = [
        sys.executable, "-m", "monitor.cli", "replay", str(path), "--fs", "1000", "--label-column", "4",
        "--speed", "8", "--start", "0.4", "--end", "2.0", "--source-id", source_id, "--wait-for-consumer", "20",
    ]  # fmt: skip
    data, stdout = _replay_and_pull(command, source_id, 1600)
    assert data.shape == (1600, 4)
    np.testing.assert_array_equal(data, table[400:2000, :4].astype(np.float32))
    assert "sent 1600 samples" in stdout


def test_replay_command_loops_for_the_requested_duration(tmp_path):

    table = np.random.default_rng(9).integers(-300, 300, (700, 3))
    path = tmp_path / "short.tsv"
    np.savetxt(path, table, fmt="%d", delimiter="\t")
    source_id = f"test-replay-loop-{uuid.uuid4().hex[:8]}"
    command = [sys.executable, "-m", "monitor.cli", "replay", str(path), "--fs", "1000", "--loop", "--duration", "2",
               "--speed", "10", "--source-id", source_id, "--wait-for-consumer", "20"]  # fmt: skip
    data, stdout = _replay_and_pull(command, source_id, 2000)
    # 2 s at 1000 Hz from a 700-sample file: two whole passes and 600 samples of a third
    np.testing.assert_array_equal(data, np.vstack([table, table, table[:600]]).astype(np.float32))


def test_replay_command_reports_a_missing_rate_in_one_line(tmp_path):
    path = tmp_path / "no-rate.csv"
    np.savetxt(path, np.ones((10, 3)), delimiter=",")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "replay", str(path)], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--fs supplies it" in result.stderr


@pytest.mark.parametrize("bad", [["--speed", "0"], ["--start", "99"], ["--start", "1", "--end", "0.5"]])
def test_replay_command_rejects_bad_ranges(tmp_path, bad, capsys):
    from monitor.cli import main

    path = tmp_path / "short.csv"
    np.savetxt(path, np.ones((2000, 2)), delimiter=",")
    assert main(["replay", str(path), "--fs", "1000", *bad]) == 2
    assert "error:" in capsys.readouterr().err


def test_replayed_myo_file_keeps_its_labels_as_markers():
    recording = open_recording(REPO.parent / "shared" / "data" / "myo-gestures" / "12345-1" / "3.txt", preset="myo")
    source = replay_source(recording)
    source.read(recording.n_samples)
    events = source.markers_until(recording.n_samples)
    labels = [json.loads(text)["label"] for _, text in events]
    # the file alternates rest and radial deviation every ~5 s over ~60 s
    assert set(labels) == {0, 3} and 10 <= len(labels) <= 14
    assert {json.loads(text)["name"] for _, text in events} == {"rest", "radial deviation"}
    assert all(a != b for a, b in zip(labels, labels[1:], strict=False))
