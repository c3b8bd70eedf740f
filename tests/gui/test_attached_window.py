"""The real dashboard attached to a core through shared memory and the control channel (monitor/core): it draws
what the core computed, sample for sample, and its filter settings and markers reach the core; a request without
the user's token changes nothing."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.gui.conftest import wait_for

TOKEN = "test-token"


@pytest.fixture
def attached(ring_pipeline, tmp_path):
    from models.checkpoint import read_card
    from monitor.adaptation.session import AdaptationSession
    from monitor.core.adaptation_proxy import describe
    from monitor.core.control import ControlClient, ControlServer, ViewRegistry
    from monitor.core.process import core_handlers
    from monitor.core.publisher import StatePublisher
    from monitor.core.shared_state import SharedStateReader
    from monitor.view_client import RemotePipeline

    views = ViewRegistry()
    # the core's live-adaptation session (no worker to swap here: it adapts and saves)
    adaptation = AdaptationSession(ring_pipeline.engine.filtered, ring_pipeline.state.fs, read_card(), None, "p-21",
                                   tmp_path / "patients")  # fmt: skip
    publisher = StatePublisher(ring_pipeline, views.describe, history_windows=2000,
                               extra_status=lambda: {"adaptation": describe(adaptation)})  # fmt: skip
    publisher.start()
    endpoint = f"ipc://{tmp_path / 'control'}"
    server = ControlServer(endpoint, core_handlers(ring_pipeline, None, views, adaptation), token=TOKEN)
    server.start()
    remote = RemotePipeline(SharedStateReader(publisher.name_in_shm), ControlClient(endpoint, token=TOKEN)).start()
    yield ring_pipeline, remote, views, endpoint, publisher, adaptation
    remote.stop()
    remote.reader.close()
    server.stop()
    publisher.stop()


def test_the_attached_window_draws_the_cores_state_and_steers_its_filters(qtbot, attached):
    from monitor.core.control import ControlClient
    from monitor.gui.main_window import MainWindow

    pipeline, remote, views, endpoint, publisher, _ = attached
    fs = pipeline.state.fs
    assert wait_for(lambda: remote.engine.filtered.total_written > fs and len(remote.state.features) > 10, 30)
    window = MainWindow(remote)
    window.connect_session(remote.toggle_recording, remote.annotate)  # as `neurofusion view` connects them
    qtbot.addWidget(window)
    window.resize(1600, 1000)
    window.show()
    window.refresh(everything=True)
    assert window.view_errors == {}
    assert window.windowTitle() == f"NeuroFusion Monitor — {pipeline.state.stream_name} (8 ch @ {fs:g} Hz)"

    # the traces the view reads are the core's filtered samples, bit for bit, at the same sample counters
    shown = remote.engine.filtered.latest(int(fs))
    core = pipeline.engine.filtered.read_from(shown.first_counter, len(shown.timestamps))
    assert core.first_counter == shown.first_counter and len(shown.timestamps) == int(fs)
    np.testing.assert_array_equal(shown.data, core.data)
    np.testing.assert_array_equal(shown.timestamps, core.timestamps)
    # the trend history is the core's, window for window
    with pipeline.state.lock:
        times, values = pipeline.state.features.recent(pipeline.state.windows_seen, ["RMS", "MDF"])
    with remote.state.lock:
        remote_times, remote_values = remote.state.features.since(float(times[0]), ["RMS", "MDF"])
    n = min(len(times), len(remote_times))
    np.testing.assert_array_equal(remote_times[:n], times[:n])
    np.testing.assert_array_equal(remote_values["RMS"][:n], values["RMS"][:n])
    # the dead electrode the core masks is the one the view masks
    assert wait_for(lambda: remote.state.usable is not None and not remote.state.usable[2], 10)
    np.testing.assert_array_equal(remote.state.usable, pipeline.state.usable)

    # the status panel's filter change is applied by the core, and its refusal comes back as the core's words
    remote.engine.update_settings(high_hz=300.0)
    assert pipeline.engine.settings.high_hz == 300.0 and remote.engine.settings.high_hz == 300.0
    with pytest.raises(ValueError, match="settings are"):
        remote.engine.update_settings(cutoff=3.0)
    # a marker from the window is the core's event (published and recorded there)
    window.status.marker_edit.setText("needle in")
    window.status.add_marker()
    assert any(text == "annotation: needle in" for _, text in pipeline.state.events)
    assert wait_for(lambda: any(text == "annotation: needle in" for _, text in remote.state.events), 5)
    assert f"window view attached (pid {os.getpid()})" in views.describe()

    # without the user's token nothing changes
    stranger = ControlClient(endpoint, token="guess")
    try:
        reply = stranger.request("settings", changes={"high_hz": 200.0})
    finally:
        stranger.close()
    assert reply == {"ok": False, "error": "refused: wrong control token"}
    assert pipeline.engine.settings.high_hz == 300.0

    # the core ending is said on the window's banner, in one line, and the core's segment is gone
    publisher.stop()
    assert wait_for(lambda: remote.core_ended == "the monitor core ended", 5)
    window.refresh()
    assert window.banner.isVisibleTo(window) and window.banner.text() == "the monitor core ended"
    window.close()


def test_the_attached_windows_adaptation_panel_marks_in_the_core_and_shows_its_refusals(qtbot, attached):
    from monitor.gui.adaptation import AdaptationPanel

    pipeline, remote, _, _, _, adaptation = attached
    assert wait_for(lambda: remote.adaptation is not None, 10)
    clock = iter([200.0, 203.5])
    panel = AdaptationPanel(remote.adaptation, clock=lambda: next(clock))
    qtbot.addWidget(panel)
    assert panel.title() == "Adapt to patient p-21"
    assert list(panel.label_buttons)[:3] == ["healthy", "myopathy", "neuropathy"]
    panel.label_buttons["myopathy"].click()  # pressed at LSL time 200: the span opens in the core's session
    assert adaptation.marks.open_label == "myopathy"
    panel.label_buttons["myopathy"].click()  # released at 203.5
    (mark,) = adaptation.marks.marks()
    assert (mark.label, mark.start, mark.end) == ("myopathy", 200.0, 203.5)
    panel.refresh()
    assert panel.marked.text() == "marked: myopathy 4 s"
    # the core refuses to adapt (LSL times 200-203.5 are not in its filtered buffer: nothing was cut): its words are
    # the panel's status
    panel.adapt_button.click()
    assert panel.status.text() == "no marked spans yet: mark a few seconds of each class first"
    assert adaptation.job is None

