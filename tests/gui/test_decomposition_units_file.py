"""The motor-unit panel's Save units… / Load units… in a view of a core (issue 19): a real Qt widget (offscreen) on a
``RemotePipeline`` that reads the core's shared memory and asks over the real ZeroMQ control channel, exactly as the
view process does (here the core's threads run in the test process; the control channel and shared memory are the
real ones). The core reads and writes the files; the format and numbering rules are ``dsp.decomposition_tracking``'s,
as ``monitor --motor-units`` / ``--save-motor-units``.

The saved set is a real one: a quick decomposition of 6 s of the simulator's 8 x 8 grid (8 starts, ~1 s of CPU).
The stream the core reads is band-limited noise on an 8 x 8 grid at 2048 Hz (a saved set needs the same channels
and rate; no unit fires in noise, which the file operations do not need).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.gui.conftest import wait_for

TOKEN = "test-token"
SAVED_IDS_START, SAVED_IDS_STEP = 5, 3  # numbers unlike 0, 1, 2...: a kept number cannot be a fresh one by chance


@pytest.fixture(scope="module")
def saved_units(tmp_path_factory):
    """(path, UnitSet, its calibration data): a quick decomposition of the simulator's 8 x 8 grid, saved."""
    from dsp.decomposition import DecompositionSettings, decompose
    from dsp.decomposition_tracking import grid_cells, save_units, unit_set
    from simulators.electrodes import ElectrodeLayout
    from simulators.emg import EmgSimulator, SimulationConfig

    layout = ElectrodeLayout.grid(8, 8)
    config = SimulationConfig(layout=layout, fs=2048.0, profile="hold", mvc_percent=20.0, seed=1, fatigue_rate=0.0)
    data = EmgSimulator(config).generate(6.0).astype(np.float64)
    result = decompose(data, 2048.0, DecompositionSettings(starts=8, max_iterations=20))
    assert len(result.units) >= 2  # measured 4
    ids = SAVED_IDS_START + SAVED_IDS_STEP * np.arange(len(result.units))
    units = unit_set(result, data, grid_cells(layout.to_dict(), 64), unit_ids=ids)
    path = save_units(tmp_path_factory.mktemp("units") / "session_a.npz", units)
    return path, units, data


@pytest.fixture
def core_and_view(grid_pipeline, tmp_path):
    """The core's decomposition host, publisher and control server on the grid stream, and a view attached to it."""
    from monitor.core.control import ControlClient, ControlServer, ViewRegistry
    from monitor.core.process import core_handlers
    from monitor.core.publisher import StatePublisher
    from monitor.core.shared_state import SharedStateReader
    from monitor.decomposition_service import CoreDecomposition
    from monitor.view_client import RemotePipeline

    host = CoreDecomposition(grid_pipeline)  # as `monitor` on a grid stream: started by a view's first request
    views = ViewRegistry()
    publisher = StatePublisher(grid_pipeline, views.describe, history_windows=2000,
                               extra_status=lambda: {"decomposition": host.describe()})  # fmt: skip
    publisher.start()
    endpoint = f"ipc://{tmp_path / 'control'}"
    server = ControlServer(endpoint, core_handlers(grid_pipeline, None, views, decomposition=host), token=TOKEN)
    server.start()
    remote = RemotePipeline(SharedStateReader(publisher.name_in_shm), ControlClient(endpoint, token=TOKEN)).start()
    yield host, remote
    remote.stop()
    remote.reader.close()
    server.stop()
    publisher.stop()


def test_the_panel_saves_and_loads_unit_sets_through_the_core_and_refuses_bad_files(qtbot, core_and_view,
                                                                                    saved_units, tmp_path):  # fmt: skip
    from PyQt6 import QtWidgets

    from dsp.decomposition_tracking import load_units
    from monitor.decomposition_service import RemoteDecomposition
    from monitor.gui.decomposition import DecompositionPanel

    host, remote = core_and_view
    saved_path, saved, data = saved_units
    ids = saved.unit_ids.tolist()
    window = QtWidgets.QMainWindow()  # the panel docks in the main window: its status bar repeats the panel's line
    panel = DecompositionPanel(remote)
    window.setCentralWidget(panel)
    qtbot.addWidget(window)
    assert isinstance(panel.service, RemoteDecomposition)
    assert panel.save_button.text() == "Save units…" and panel.load_button.text() == "Load units…"

    # nothing to save before a calibration or a load: one line, nothing written
    assert not panel.save_units(tmp_path / "empty.npz")
    assert panel.units_file_label.text() == "not saved: no motor units to save yet: calibrate first"
    assert not (tmp_path / "empty.npz").exists()

    # Load: the core applies the saved set from its next chunk, the saved numbers kept
    assert panel.load_units(saved_path), panel.units_file_label.text()
    service = host.service
    assert wait_for(lambda: service.unit_ids.tolist() == ids, 5), service.unit_ids
    assert wait_for(lambda: remote.decomposition.unit_ids.tolist() == ids, 5)
    np.testing.assert_array_equal(service.decomposer.decomposition.filters, saved.decomposition.filters)
    panel.refresh()
    assert "saved units applied" in panel.status_label.text()
    rates = panel.rates_label.text()  # each unit named in its colour: "■ U5 12 Hz"
    assert rates.startswith("rates (last 1 s): ") and f"</span> U{ids[0]} " in rates.split("Hz")[0]
    assert window.statusBar().currentMessage().startswith("loaded session_a.npz")
    # the raster's rows are named by the units' kept numbers (one unit's row was labelled "unit (x0.001)", -500..500)
    left = panel.raster.getAxis("left")
    assert left._tickLevels == [[(row, f"U{i}") for row, i in enumerate(ids)]] and not left.autoSIPrefix

    # Save: the core writes the running set, numbers, filters and MUAP maps as they were
    again = tmp_path / "session_b.npz"
    assert panel.save_units(again), panel.units_file_label.text()
    written = load_units(again)
    assert written.unit_ids.tolist() == ids
    np.testing.assert_array_equal(written.decomposition.filters, saved.decomposition.filters)
    np.testing.assert_array_equal(written.templates, saved.templates)
    assert panel.units_file_label.text().startswith(f"saved {len(ids)} units (U{ids[0]} ")

    # a recalibration that finds the same units (the set found by its own filters' discharges): the numbers stay and
    # the panel says which units were found again with their MUAP similarity
    service.install(saved.decomposition, seconds=6.0, data=data)
    assert wait_for(lambda: remote.decomposition.found_again_units and service.unit_set == 1, 5)
    assert service.unit_ids.tolist() == ids
    panel.refresh()
    shown = panel.found_again_label.text()
    assert shown.startswith("found again (MUAP similarity): ")
    assert all(f"U{i} " in shown for i in ids), shown
    assert all(value >= 0.99 for _, value, _ in remote.decomposition.found_again_units)  # the same filters
    running_set, running_decomposer = service.unit_set, service.decomposer

    # a corrupt file, one that is no archive and one of another grid: refused in one line, the running set kept
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(saved_path.read_bytes()[:2000])
    junk = tmp_path / "junk.npz"
    junk.write_text("not an archive")
    arrays = dict(np.load(saved_path, allow_pickle=False))
    other_grid = tmp_path / "other_grid.npz"
    meta = json.loads(str(arrays["meta"]))
    with other_grid.open("wb") as handle:  # the same units said to come from 4096 Hz
        np.savez(handle, **{**arrays, "meta": np.array(json.dumps({**meta, "fs": 4096.0}))})
    for bad, reason in ((truncated, "not a saved motor-unit set"), (junk, "not a saved motor-unit set"),
                        (tmp_path / "absent.npz", "no such file"), (other_grid, "4096 Hz")):  # fmt: skip
        assert not panel.load_units(bad)
        line = panel.units_file_label.text()
        assert line.startswith("not loaded (running units kept): ") and reason in line and str(bad) in line, line
        assert "\n" not in line and "Traceback" not in line
        assert window.statusBar().currentMessage() == line
    assert service._pending is None and service.unit_set == running_set and service.unit_ids.tolist() == ids
    assert service.decomposer is running_decomposer

    # the core refuses a relative path itself (its working folder is not the view's)
    reply = remote.control.request("decomposition", action="load", path="session_a.npz")
    assert not reply["ok"] and "absolute path" in reply["error"]
    window.close()


def test_the_in_process_panel_saves_and_loads_with_its_own_service(qtbot, grid_pipeline, saved_units, tmp_path):
    """Without a core (the in-process window) the panel's own service reads and writes the file: the same rules."""
    from dsp.decomposition_tracking import load_units
    from monitor.decomposition_service import LiveDecomposition
    from monitor.gui.decomposition import DecompositionPanel

    saved_path, saved, _ = saved_units
    ids = saved.unit_ids.tolist()
    panel = DecompositionPanel(grid_pipeline, publish=False)
    qtbot.addWidget(panel)
    service = panel.service
    assert isinstance(service, LiveDecomposition)
    assert panel.load_units(saved_path), panel.units_file_label.text()
    assert wait_for(lambda: service.unit_ids.tolist() == ids, 5)
    assert panel.save_units(tmp_path / "again.npz")
    assert load_units(tmp_path / "again.npz").unit_ids.tolist() == ids
    assert not panel.save_units(tmp_path / "again.txt")  # the file is an .npz, as --save-motor-units asks
    assert "name the file *.npz" in panel.units_file_label.text()
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really")
    running = service.decomposer
    assert not panel.load_units(tmp_path / "junk.npz")
    assert panel.units_file_label.text().startswith("not loaded (running units kept): ")
    assert service.decomposer is running and service._pending is None and service.unit_ids.tolist() == ids
