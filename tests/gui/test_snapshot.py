"""The offscreen snapshot of the whole dashboard, and the window entry point, on a live 64-channel grid stream."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.errors import UserError
from monitor.pipeline import DecisionRecord

SIZE = (1600, 1000)


def _pixels(image) -> np.ndarray:
    from PyQt6 import QtGui

    image = image.convertToFormat(QtGui.QImage.Format.Format_RGB32)
    buffer = image.constBits()
    buffer.setsize(image.sizeInBytes())
    rows = np.frombuffer(buffer, np.uint8).reshape(image.height(), image.bytesPerLine() // 4, 4)
    return rows[:, : image.width(), [2, 1, 0]].copy()  # BGRA in memory -> RGB


def _share_of_colour(region: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 40) -> float:
    close = np.abs(region.astype(int) - np.array(rgb)).max(axis=2) <= tolerance
    return float(close.mean())


def test_snapshot_shows_every_view(qtbot, tmp_path, grid_pipeline):
    from PyQt6 import QtCore, QtGui

    from monitor.gui.app import save_snapshot
    from monitor.gui.classification import CLASS_COLOURS
    from monitor.gui.electrodes import GOOD
    from monitor.gui.main_window import MainWindow

    state = grid_pipeline.state
    qtbot.waitUntil(lambda: len(state.features) > 5, timeout=15000)
    classes = list(CLASS_COLOURS)
    with state.lock:
        start = state.features.oldest_timestamp()
        for sequence in range(40):
            probabilities = np.array([0.6, 0.3, 0.1] if sequence % 3 else [0.2, 0.7, 0.1], dtype=np.float32)
            state.decisions.append(DecisionRecord(sequence, start + 0.05 * sequence, "healthy", probabilities, classes,
                                                  np.linspace(0, 1, 64, dtype=np.float32), "test", 0.01, 0.002))
    path = save_snapshot(grid_pipeline, tmp_path / "dashboard.png", after_s=1.5, size=SIZE)
    assert path == tmp_path / "dashboard.png"

    image = QtGui.QImage(str(path))
    assert (image.width(), image.height()) == SIZE
    pixels = _pixels(image)
    reference = MainWindow(grid_pipeline)  # same size, same layout: tells where each view was drawn
    qtbot.addWidget(reference)
    reference.resize(*SIZE)
    reference.show()
    qtbot.wait(50)
    regions = reference.view_regions()
    assert set(regions) == {"traces", "spectrum", "classification", "fatigue", "electrodes", "status"}
    for name, rect in regions.items():
        region = pixels[rect.top() : rect.bottom(), rect.left() : rect.right()]
        assert region.size and region.std() > 20, (name, region.std())
    crop = {name: pixels[r.top() : r.bottom(), r.left() : r.right()] for name, r in regions.items()}
    assert _share_of_colour(crop["traces"], (120, 200, 255)) > 0.02  # 64 lanes of signal, not empty axes
    assert _share_of_colour(crop["electrodes"], GOOD) > 0.01  # 64 usable electrodes
    assert _share_of_colour(crop["classification"], CLASS_COLOURS["healthy"], tolerance=60) > 0.02
    # stacked bands: inside the decisions' time span, probability 0.1 lies in the healthy band (p >= 0.2 always) and
    # 0.97 in the neuropathy band (the top 0.1); both filled with their class colours
    reference.refresh(everything=True)
    qtbot.wait(100)  # the plot takes its auto range when it paints
    plot = reference.classification.plot
    times = reference.classification.trend.times
    middle_minutes = (times[len(times) // 2] - reference.session_origin()) / 60.0
    for probability, name in ((0.1, "healthy"), (0.97, "neuropathy")):
        scene = plot.plotItem.vb.mapViewToScene(QtCore.QPointF(middle_minutes, probability))
        point = plot.mapTo(reference, plot.mapFromScene(scene))
        colour = pixels[point.y() - 1 : point.y() + 2, point.x() - 1 : point.x() + 2].reshape(-1, 3).mean(axis=0)
        blended = 0.4 * np.array((18, 18, 22)) + 0.6 * np.array(CLASS_COLOURS[name])  # alpha 150 on the background
        assert np.abs(colour - blended).max() < 30, (name, colour, blended)
    assert _share_of_colour(crop["spectrum"], (255, 200, 60)) > 0.0005  # the MNF marker


def test_snapshot_refuses_a_path_it_cannot_write(grid_pipeline, tmp_path):
    from monitor.gui.app import save_snapshot

    with pytest.raises(UserError, match="does not exist"):
        save_snapshot(grid_pipeline, tmp_path / "missing" / "x.png", after_s=0)
    with pytest.raises(UserError, match=".png"):
        save_snapshot(grid_pipeline, tmp_path / "x.txt", after_s=0)


def test_run_window_returns_after_its_duration(qtbot, grid_pipeline):
    from monitor.gui.app import run_window

    assert run_window(grid_pipeline, duration_s=1.0) == 0


def test_layouts_are_drawn_as_on_the_body(qtbot):
    from monitor.gui.electrodes import ElectrodeMap
    from simulators.electrodes import ElectrodeLayout

    needle = ElectrodeMap(ElectrodeLayout.needle(), "needle")
    qtbot.addWidget(needle)
    assert len(needle.spots.data) == 1
    grid = ElectrodeMap(ElectrodeLayout.from_name("grid13x5"), "grid")
    qtbot.addWidget(grid)
    assert len(grid.spots.data) == 64
    # row 1 drawn on top: y falls with the row index, x grows with the column
    first, last = grid.positions[0], grid.positions[-1]
    assert first[1] > last[1] and first[0] < last[0]
    ring = ElectrodeMap(ElectrodeLayout.ring(8), "ring")
    qtbot.addWidget(ring)
    radii = np.linalg.norm(ring.positions, axis=1)
    np.testing.assert_allclose(radii, radii[0])
    ring.set_bad(np.array([False, True] + [False] * 6))
    np.testing.assert_allclose(ring.crosses.data["x"], ring.positions[1, 0])


def test_many_channels_are_paged_64_lanes_at_a_time(qtbot):
    from monitor.gui.main_window import MainWindow
    from monitor.gui.traces import FIXED_SCALES_UV
    from simulators.electrodes import ElectrodeLayout
    from tests.gui.conftest import start_pipeline, stop_pipeline
    from tests.gui.streams import BandNoiseSource, LiveStream

    gains = 1.0 + np.arange(100) / 10.0  # channel k's amplitude grows with k: tells the lanes apart
    source = BandNoiseSource(ElectrodeLayout.grid(10, 10), fs=1024.0, amplitude_uv=20.0, channel_gains=gains)
    stream = LiveStream(source, name="gui-paged").start()
    pipeline = start_pipeline(stream)
    try:
        window = MainWindow(pipeline)
        qtbot.addWidget(window)
        window.resize(*SIZE)
        window.show()
        qtbot.wait(50)
        traces = window.traces
        assert traces.page_box.isVisible() and traces.page_box.count() == 3  # all, 1-64, 65-100
        traces.scale_box.setCurrentIndex(1 + FIXED_SCALES_UV.index(500.0))
        qtbot.waitUntil(lambda: traces.curve.yData is not None and len(traces.curve.yData) > 64 * 100, timeout=15000)
        traces.refresh()  # the frame that passed the wait may have been drawn at the automatic scale, before 500 uV
        first_page = traces.curve.yData.reshape(64, -1) + np.arange(64)[:, None]
        traces.page_box.setCurrentIndex(2)
        traces.refresh()
        second_page = traces.curve.yData.reshape(36, -1) + np.arange(36)[:, None]
        assert traces.lane_labels[0] == "R07C05" and len(traces.lane_labels) == 36  # channel 65 heads page two
        traces.page_box.setCurrentIndex(0)  # all 100 lanes: drawn as one image
        traces.refresh()
        image = traces.raster.image.astype(bool)
    finally:
        stop_pipeline(pipeline)
        stream.vanish()
    spread = np.concatenate([first_page.std(axis=1), second_page.std(axis=1)])
    # lane spreads follow the channels' gains: page two continues where page one ended
    assert np.corrcoef(spread, gains)[0, 1] > 0.98
    assert traces.raster.isVisible() and not traces.curve.isVisible()
    rows_per_lane = image.shape[1] / 101.0
    lit = [image[:, int((100 - k - 0.5) * rows_per_lane) : int((100 - k + 0.5) * rows_per_lane)].mean() for k in
           range(100)]  # fmt: skip
    assert np.corrcoef(lit[:40], gains[:40])[0, 1] > 0.9  # wider signals light more of their lane (below clipping)


@pytest.mark.parametrize(
    ("layout_name", "fs", "band"), [("ring8", 200.0, (20.0, 80.0)), ("needle", 8192.0, (200.0, 1500.0))]
)
def test_slow_armband_and_fast_needle_streams_render(qtbot, layout_name, fs, band):
    from monitor.gui.main_window import MainWindow
    from simulators.electrodes import ElectrodeLayout
    from tests.gui.conftest import start_pipeline, stop_pipeline
    from tests.gui.streams import BandNoiseSource, LiveStream

    stream = LiveStream(BandNoiseSource(ElectrodeLayout.from_name(layout_name), fs=fs, band_hz=band),
                        name=f"gui-{layout_name}").start()
    pipeline = start_pipeline(stream)
    try:
        settings_before = dict(vars(pipeline.engine.settings))
        window = MainWindow(pipeline)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitUntil(lambda: pipeline.engine.filtered.total_written > 1.5 * fs, timeout=15000)
        qtbot.waitUntil(lambda: len(pipeline.state.features) > 3, timeout=10000)
        window.refresh(everything=True)
        window.status.mains_box.setCurrentIndex(2)
    finally:
        stop_pipeline(pipeline)
        stream.vanish()
    assert window.view_errors == {}
    assert window.traces.curve.yData is not None and len(window.traces.curve.yData) > 0
    assert band[0] < window.spectrum.mnf_hz < band[1]
    assert window.spectrum.plot.viewRange()[0][1] <= fs / 2 + 1
    assert len(window.electrodes.quality_map.spots.data) == ElectrodeLayout.from_name(layout_name).n_channels
    # the notch changed and nothing else: a band edge the spin box clamped at this rate was not imposed
    changed = {k for k, v in vars(pipeline.engine.settings).items() if settings_before[k] != v}
    assert changed == {"mains_hz"}


def test_a_replayed_hdemg_recording_is_drawn_on_its_13x5_grid(qtbot):
    """The real 64-channel OT Bioelettronica recording, replayed as a live stream: the window needs nothing else."""
    from monitor.gui.main_window import MainWindow
    from monitor.recordings import open_recording
    from monitor.recordings.replay import replay_source
    from tests.conftest import SHARED_DATA
    from tests.gui.conftest import start_pipeline, stop_pipeline
    from tests.gui.streams import LiveStream

    path = SHARED_DATA / "hdemg-vastus-lateralis" / "otb_testfile.mat"
    recording = open_recording(path).slice_seconds(14.0, 20.0)  # the plateau of the force ramp
    stream = LiveStream(replay_source(recording), name="gui-hdemg").start()
    pipeline = start_pipeline(stream)
    try:
        window = MainWindow(pipeline)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitUntil(lambda: len(pipeline.state.features) > 20, timeout=20000)
        window.refresh(everything=True)
        shown_until = pipeline.engine.filtered.total_written
    finally:
        stop_pipeline(pipeline)
        stream.vanish()
    assert window.view_errors == {}
    electrodes = window.electrodes
    assert electrodes.layout_.kind == "grid" and electrodes.layout_.n_channels == 64
    assert electrodes.layout_.labels[0] == "R01C02"  # the 13 x 5 grid's first corner is empty
    assert window.traces.lane_labels[:2] == ["R01C02", "R01C03"]
    # rows of the grid are drawn 8 mm apart, top to bottom
    rows = np.unique(np.round(electrodes.quality_map.positions[:, 1], 6))
    assert len(rows) == 13 and np.allclose(np.diff(rows), 8.0)
    # the spectrum's MNF is the recording's own: independently, scipy's band-pass and Welch over the same 2 s
    from scipy.signal import butter, sosfilt, welch

    raw = recording.data[: shown_until].astype(np.float64)
    filtered = sosfilt(butter(4, (20.0, 450.0), btype="bandpass", fs=2048.0, output="sos"), raw, axis=0)
    frequencies, psd = welch(filtered[-4096:], fs=2048.0, nperseg=512, axis=0)
    psd = psd.mean(axis=1)
    independent_mnf = float(np.sum(frequencies * psd) / np.sum(psd))
    assert window.spectrum.mnf_hz == pytest.approx(independent_mnf, rel=0.15), (window.spectrum.mnf_hz, independent_mnf)


def test_cli_snapshot_on_a_machine_without_display(tmp_path):
    """`neurofusion monitor --snapshot` in a fresh process with no DISPLAY and no Qt platform set: it renders
    offscreen by itself, and a folder that does not exist is a one-line error."""
    import os
    import subprocess
    import sys

    from simulators.electrodes import ElectrodeLayout
    from tests.conftest import REPO
    from tests.gui.streams import BandNoiseSource, LiveStream

    stream = LiveStream(BandNoiseSource(ElectrodeLayout.ring(8)), name="gui-cli").start()
    env = {key: value for key, value in os.environ.items()
           if key not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}  # fmt: skip
    command = [sys.executable, "-m", "monitor.cli", "monitor", "--source-id", stream.source_id, "--no-inference",
               "--snapshot-after", "1"]  # fmt: skip
    try:
        good = subprocess.run([*command, "--snapshot", str(tmp_path / "shot.png")], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        bad = subprocess.run([*command, "--snapshot", str(tmp_path / "nowhere" / "shot.png")], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    finally:
        stream.vanish()
    assert good.returncode == 0, good.stderr
    from PyQt6 import QtGui

    image = QtGui.QImage(str(tmp_path / "shot.png"))
    assert (image.width(), image.height()) == SIZE
    assert _pixels(image).std() > 20
    assert bad.returncode == 2
    errors = [line for line in bad.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "does not exist" in errors[0] and "Traceback" not in bad.stderr
