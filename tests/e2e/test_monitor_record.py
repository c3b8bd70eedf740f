"""`neurofusion monitor --record`: one XDF with raw EMG and the monitor's own result streams; bad paths fail at once."""

from __future__ import annotations

import subprocess
import sys
import uuid

import numpy as np
import pytest

from tests.players import start_player

CLI = [sys.executable, "-m", "monitor.cli"]


def test_unwritable_recording_path_is_refused_before_monitoring(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the recording's folder should be")
    source_id = f"rec-{uuid.uuid4().hex[:8]}"
    player = start_player(source_id, 20.0)
    try:
        result = subprocess.run(
            [*CLI, "monitor", "--source-id", source_id, "--no-inference", "--headless", "--duration", "5",
             "--record", str(blocker / "session.xdf")],
            capture_output=True, text=True, timeout=60,
        )
    finally:
        player.kill()
        player.wait()
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "cannot write the recording" in result.stderr.strip().splitlines()[-1], result.stderr[-2000:]


@pytest.mark.slow
def test_recording_holds_raw_emg_and_results_aligned(tmp_path):
    import pyxdf

    source_id = f"rec-{uuid.uuid4().hex[:8]}"
    target = tmp_path / "session.xdf"
    player = start_player(source_id, 60.0)  # outlives a slow start; killed once the monitor has ended
    try:
        result = subprocess.run(
            [*CLI, "monitor", "--source-id", source_id, "--no-inference", "--headless", "--duration", "10",
             "--record", str(target)],
            capture_output=True, text=True, timeout=90,
        )
    finally:
        player.kill()
        player.wait()
    assert result.returncode == 0, result.stderr[-2000:]
    streams, _ = pyxdf.load_xdf(str(target), dejitter_timestamps=False)
    by_type = {s["info"]["type"][0]: s for s in streams}
    assert {"EMG", "Fatigue", "Quality", "Markers"} <= set(by_type)
    raw = by_type["EMG"]
    index = raw["time_series"][:, -1]
    # the recorder joins a few seconds after the monitor starts (LabRecorder resolves the streams first): what it
    # has is gap-free and in order
    np.testing.assert_array_equal(np.diff(index), 1.0)
    assert len(index) > 2048 * 3
    fatigue = by_type["Fatigue"]
    # one fatigue sample per 50 ms window, stamped inside the raw stream's time span
    assert len(fatigue["time_series"]) > 3 / 0.05
    assert raw["time_stamps"][0] - 0.5 <= fatigue["time_stamps"][0] <= raw["time_stamps"][-1]
    assert np.isfinite(fatigue["time_series"]).all()
