"""Motor units in the monitor's core with no view at all (issue 19): the real HD-EMG file replayed over LSL with its
force column, the core calibrating by itself, discharges on a real inlet of ``<stream>-discharges`` stamped with the
raw EMG's own times, de-recruitment forces on the force ramp equal to the file's force at each unit's last
discharge (the force travels as a Force-typed channel of the replay), the terminal dashboard of an
attached view showing units and rates, and that view's Calibrate reaching the core's service over the control
channel (units found again keep their ids).

One looped stream, 15-25 s of it; calibrations on 6 s with 32 starts and 20 iterations (~1 s of CPU each: 2-6 units).
"""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest

from benchmarks.common import REPO
from tests.gui.conftest import wait_for

HDEMG = REPO.parent / "shared" / "data" / "hdemg-vastus-lateralis" / "otb_testfile.mat"
pytestmark = pytest.mark.skipif(not HDEMG.is_file(), reason=f"{HDEMG} is not present")
CALIBRATION_S = 6.0


def pull_all(inlet, rows: list, stamps: list, timeout_s: float = 0.2) -> None:
    chunk, chunk_stamps = inlet.pull_chunk(timeout=timeout_s)
    rows += chunk
    stamps += chunk_stamps


def test_the_core_decomposes_without_a_view_and_a_view_recalibrates_it(private_runtime_dir):
    import pylsl
    from rich.console import Console

    from dsp.decomposition import DecompositionSettings
    from monitor.core.control import ViewRegistry, find_core
    from monitor.core.process import serve_core, status_line
    from monitor.decomposition_service import CoreDecomposition
    from monitor.discharge_outlet import CHANNELS
    from monitor.headless import HeadlessDashboard
    from monitor.lslenv import use_lsl_config
    from monitor.pipeline import MonitorPipeline
    from monitor.recordings import open_recording
    from monitor.recordings.otb import FORCE_KEY
    from monitor.recordings.replay import replay_source
    from monitor.view_client import RemotePipeline
    from tests.gui.streams import LiveStream

    use_lsl_config()
    # the plateau (~26 %MVC, 7-26 s) from 10 s and the ramp down (26-32 s), looped: both calibrations on the plateau
    # however long they take on a loaded machine, units de-recruited on the ramp at the force of their last discharge
    # (and recruited again at the loop's jump back to the plateau)
    recording = open_recording(HDEMG).slice_seconds(10.0, None)
    source = replay_source(recording, loop=True, auxiliary=True)
    assert source.n_channels == 65 and source.channel_labels[64] == "force (%MVC)"
    stream = LiveStream(source, name="core-units").start()
    pipeline = MonitorPipeline(stream.resolve(), publish=False)
    assert pipeline.state.emg_channels.tolist() == list(range(64))  # the force channel is typed Force, not EMG
    pipeline.start()
    settings = DecompositionSettings(starts=32, max_iterations=20)  # ~0.8 s of CPU, 5-6 units
    host = CoreDecomposition(pipeline, calibrate_after_s=CALIBRATION_S, settings=settings)
    service = host.start()  # as `monitor --decompose --calibrate-seconds 6 --decompose-starts 32 --no-view`
    assert service.force_channel == 64
    found = pylsl.resolve_byprop("source_id", f"{stream.source_id}-discharges", 1, 10.0)
    assert found and found[0].channel_count() == len(CHANNELS)
    inlet = pylsl.StreamInlet(found[0], max_buflen=60)
    inlet.open_stream(timeout=10.0)
    stop, folders = threading.Event(), []
    core = threading.Thread(target=serve_core, args=(pipeline, None, stop), daemon=True,
                            kwargs={"view": None, "decomposition": host, "on_ready": folders.append})  # fmt: skip
    core.start()
    remote = None
    try:
        rows: list = []
        stamps: list = []
        # no view anywhere: the core calibrates on its first 6 s and publishes
        assert wait_for(lambda: pull_all(inlet, rows, stamps) or len(rows) >= 10, 40), service.status
        assert service.unit_set == 0 and service.status.seconds == pytest.approx(CALIBRATION_S, abs=0.01)
        assert "motor units: " in status_line(pipeline, ViewRegistry())  # the core's own status line says them

        # a view attaches: its terminal dashboard shows the core's units and rates
        assert wait_for(lambda: bool(folders), 10)
        remote = RemotePipeline.attach(find_core(str(folders[0])), kind="headless").start()
        assert wait_for(lambda: remote.decomposition is not None and remote.decomposition.n_units > 0, 10)
        console = Console(file=io.StringIO(), width=400)
        console.print(HeadlessDashboard(remote, console=console).render())
        shown = console.file.getvalue()
        assert "motor units" in shown and f"{service.n_units} units (set 0)" in shown and " Hz" in shown
        assert "recruited/de-recruited at %MVC: U" in shown
        first_ids = set(service.unit_ids.tolist())
        trackers = [service.recruitment]  # each unit set has its own

        # the view's Calibrate reaches the core's service over the control channel
        remote.decomposition.calibrate(CALIBRATION_S)
        assert remote.decomposition.status.state in ("calibrating", "calibrated")
        assert wait_for(lambda: service.unit_set == 1, 40), service.status
        assert wait_for(lambda: pull_all(inlet, rows, stamps) or any(row[1] == 1 for row in rows[-20:]), 20)
        trackers.append(service.recruitment)
        # a unit found again keeps its id, any other gets a new one (which units 32 starts on 6 s find varies from
        # run to run: the matching itself is tested on fixed data in tests/dsp/test_decomposition.py)
        again = set(service.unit_ids.tolist()) & first_ids
        assert f"{len(again)} found again" in service.status.message
        assert all(i > max(first_ids) for i in set(service.unit_ids.tolist()) - again)
        assert wait_for(lambda: remote.decomposition.unit_set == 1, 5)
        # the ramp down: units fall silent (their last discharge's force is the de-recruitment threshold)
        assert wait_for(lambda: any(any(tracker.derecruitments) for tracker in trackers), 30)
    finally:
        stop.set()
        core.join(timeout=10)
        if remote is not None:
            remote.stop()
            remote.reader.close()
        pipeline.stop()
        stream.vanish()
    pull_all(inlet, rows, stamps, 1.0)

    # the inlet got what the core decided, stamped with the raw EMG's own time of each discharge's sample
    history = list(service.history)
    rows = np.asarray(rows)
    n = min(len(rows), len(history))
    assert n >= 10
    np.testing.assert_array_equal(rows[:n, 0], [row[1] for row in history[:n]])
    np.testing.assert_array_equal(rows[:n, 1], [row[0] for row in history[:n]])
    np.testing.assert_allclose(stamps[:n], [row[3] for row in history[:n]], atol=1e-6)
    raw = pipeline.acquisition.buffer.latest(pipeline.acquisition.buffer.capacity)
    held = [row for row in history if row[2] >= raw.first_counter]  # the ring holds the last 30 s
    counters = np.array([row[2] for row in held]) - raw.first_counter
    np.testing.assert_allclose([row[3] for row in held], raw.timestamps[counters], atol=1e-9)

    # thresholds through the live path: every event at the file's force of that very sample (the file loops)
    force = recording.auxiliary[FORCE_KEY].astype(np.float64)
    offset = int(np.flatnonzero((recording.data[:, :4].astype(np.float32) == raw.data[0, :4]).all(axis=1))[0])
    file_index = (offset + np.arange(len(raw.data))) % len(force)
    np.testing.assert_array_equal(raw.data[:, 64], force[file_index].astype(np.float32))
    derecruited = [event for tracker in trackers for unit in tracker.derecruitments for event in unit]
    recruited = [event for tracker in trackers for unit in tracker.recruitments for event in unit]
    assert derecruited
    for counter, value in derecruited + recruited:
        assert value == force[(offset + counter - raw.first_counter) % len(force)], (counter, value)
    assert all(0.0 < value < 28.0 for _, value in derecruited + recruited)  # %MVC of this file (peak 26.8)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--calibrate-seconds", "2"], "--calibrate-seconds must be 5-30 (the raw ring holds 30 s), not 2"),
        (["--decompose-starts", "0"], "--decompose-starts must be at least 1, not 0"),
    ],
)
def test_bad_decomposition_options_are_refused_in_one_line_before_any_stream(arguments, message, capsys):
    from monitor.cli import main

    assert main(["monitor", "--decompose", "--no-view", "--source-id", "nowhere", *arguments]) == 2
    assert capsys.readouterr().err.strip() == f"neurofusion monitor: error: {message}"


def test_decompose_on_a_stream_without_a_grid_is_refused():
    from types import SimpleNamespace

    from monitor.decomposition_service import core_decomposition
    from monitor.errors import UserError

    state = SimpleNamespace(layout={"kind": "ring"}, emg_channels=list(range(8)), stream_name="forearm")
    pipeline = SimpleNamespace(state=state)
    assert core_decomposition(pipeline, decompose=False) is None  # nothing for a view to start either
    with pytest.raises(UserError, match="--decompose needs a grid or at least 16 EMG channels; stream 'forearm' has 8"):
        core_decomposition(pipeline, decompose=True)


def test_replay_with_force_adds_a_typed_force_channel_or_refuses_a_file_without_one(tmp_path, capsys):
    from monitor.cli import main
    from monitor.recordings import open_recording
    from monitor.recordings.replay import replay_source

    data = np.arange(40.0).reshape(20, 2)
    np.savez(tmp_path / "with.npz", data=data, fs=np.array(100.0), mvc_percent=np.linspace(0.0, 19.0, 20))
    np.savez(tmp_path / "without.npz", data=data, fs=np.array(100.0))
    source = replay_source(open_recording(tmp_path / "with.npz"), auxiliary=True)
    assert source.channel_labels[2:] == ["force (%MVC)"] and source.channel_types == ["EMG", "EMG", "Force"]
    np.testing.assert_array_equal(source.read(3), [[0.0, 1.0, 0.0], [2.0, 3.0, 1.0], [4.0, 5.0, 2.0]])
    plain = replay_source(open_recording(tmp_path / "with.npz"))  # without the flag: the EMG alone, as before
    assert plain.n_channels == 2 and plain.channel_types == ["EMG", "EMG"]
    assert main(["replay", str(tmp_path / "without.npz"), "--with-force"]) == 2
    assert capsys.readouterr().err.strip().endswith("without.npz has no force column to publish (--with-force)")


def test_a_recording_started_before_the_first_calibrate_keeps_the_discharges(tmp_path):
    """LabRecorder resolves its streams when it starts: the ``<stream>-discharges`` outlet exists from the session's
    start on a grid stream, so a ``--record`` running before a view's first Calibrate records that calibration's
    discharges (LabRecorderCLI through monitor.recordings.record, as ``monitor --record`` runs it)."""
    import time

    import pyxdf

    from monitor.decomposition_service import core_decomposition
    from monitor.discharge_outlet import STREAM_TYPE
    from monitor.lslenv import use_lsl_config
    from monitor.pipeline import MonitorPipeline
    from monitor.recordings import open_recording
    from monitor.recordings.record import SessionRecorder, session_source_ids
    from monitor.recordings.replay import replay_source
    from tests.gui.streams import LiveStream

    use_lsl_config()
    stream = LiveStream(replay_source(open_recording(HDEMG).slice_seconds(10.0, None), loop=True),
                        name="record-units").start()  # fmt: skip
    pipeline = MonitorPipeline(stream.resolve(), publish=False)
    pipeline.start()
    recorder = None
    try:
        host = core_decomposition(pipeline, decompose=False, starts=16)  # a session without --decompose
        assert host is not None and host.service is None
        recorder = SessionRecorder(tmp_path / "session.xdf", session_source_ids(stream.source_id))
        assert f"{stream.source_id}-discharges" in recorder.start()
        buffer = pipeline.acquisition.buffer
        assert wait_for(lambda: buffer.total_written >= 5.5 * 2048, 30)
        host.handle({"action": "calibrate", "seconds": 5.0})  # a view's first Calibrate, once recording runs
        service = host.service
        assert wait_for(lambda: service.unit_set == 0 and service.published >= 20, 60), service.status
        time.sleep(0.5)  # LabRecorder pulls every ~0.5 s
        recorder.stop()
        recorder = None
    finally:
        if recorder is not None:
            recorder.stop()
        pipeline.stop()
        stream.vanish()
    streams, _ = pyxdf.load_xdf(str(tmp_path / "session.xdf"), dejitter_timestamps=False)
    by_type = {s["info"]["type"][0]: s for s in streams}
    assert {"EMG", STREAM_TYPE} <= set(by_type)
    recorded = by_type[STREAM_TYPE]
    rows, stamps = np.asarray(recorded["time_series"]), np.asarray(recorded["time_stamps"])
    assert len(rows) >= 10 and (rows[:, 1] == 0).all()  # the calibration's set 0
    # each recorded discharge is one the service published: its unit, at its time (pyxdf applies LabRecorder's
    # clock offsets, microseconds on one machine)
    history = np.array([(row[1], row[3]) for row in service.history])
    for unit, stamp in zip(rows[:, 0], stamps, strict=True):
        same = history[history[:, 0] == unit, 1]
        assert same.size and np.abs(same - stamp).min() < 1e-3, (unit, stamp)
    # stamped on the raw EMG's clock, inside the recorded EMG (LabRecorder's last pulls of each stream differ a little)
    emg = by_type["EMG"]["time_stamps"]
    assert emg[0] <= stamps.min() and stamps.max() <= emg[-1] + 1.0
