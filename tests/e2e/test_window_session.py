"""The window's record button and annotations, wired to a real session: LabRecorder writes an XDF that holds the
raw EMG and the annotation the user typed, at the moment it was typed."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.players import start_player, wait_until


@pytest.mark.slow
def test_record_button_and_annotation_end_up_in_the_xdf(qtbot, tmp_path, monkeypatch):
    import pylsl
    import pyxdf

    from monitor.acquisition import resolve_stream
    from monitor.gui.main_window import MainWindow
    from monitor.pipeline import MonitorPipeline
    from monitor.session import RecordingControl, SessionOptions

    monkeypatch.chdir(tmp_path)
    source_id = f"win-{uuid.uuid4().hex[:8]}"
    player = start_player(source_id, 30)
    pipeline = MonitorPipeline(resolve_stream(source_id=source_id, timeout_s=20))
    recording = RecordingControl(SessionOptions(), pipeline)
    pipeline.start()
    window = MainWindow(pipeline)
    qtbot.addWidget(window)
    window.connect_session(recording.toggle, pipeline.annotate)
    try:
        window.status.record_button.click()
        assert wait_until(lambda: recording.recorder is not None, 30)
        time.sleep(3.0)
        window.status.marker_edit.setText("start 50% MVC")
        before = pylsl.local_clock()
        window.status.add_marker()
        time.sleep(2.0)
        window.status.record_button.click()
        assert wait_until(lambda: recording.recorder is None, 30)
    finally:
        recording.stop()
        pipeline.stop()
        player.kill()
        player.wait()
    files = list(tmp_path.glob("neurofusion-*.xdf"))
    assert len(files) == 1
    streams, _ = pyxdf.load_xdf(str(files[0]))
    events = next(s for s in streams if s["info"]["name"][0].endswith("-events"))
    annotations = [(t, v[0]) for t, v in zip(events["time_stamps"], events["time_series"], strict=True)
                   if v[0].startswith("annotation")]
    assert [text for _, text in annotations] == ["annotation: start 50% MVC"]
    assert abs(annotations[0][0] - before) < 0.5
    emg = next(s for s in streams if s["info"]["type"][0] == "EMG")
    assert emg["time_stamps"][0] < annotations[0][0] < emg["time_stamps"][-1]
