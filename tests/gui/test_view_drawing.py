"""What the cheaper refreshes draw is what the plain ones drew: the electrode map's spots and crosses, pixel for pixel,
and the trend plots' ranges when they are settled before the paint (no stream needed: a few seconds)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtGui

from monitor.pipeline import MuscleState
from simulators.electrodes import ElectrodeLayout


@dataclass
class FakeDecisions:
    record: object | None = None

    def latest(self):
        return self.record


@dataclass
class FakeState:
    layout: dict
    n_channels: int
    channel_labels: list[str]
    lock: threading.Lock = field(default_factory=threading.Lock)
    usable: np.ndarray | None = None
    quality: object | None = None
    decisions: FakeDecisions = field(default_factory=FakeDecisions)
    emg_channels: np.ndarray | None = None


def _reference_attention_colours(attention: np.ndarray) -> list[tuple[int, int, int]]:
    """The map's colours computed one electrode at a time, as the view did before it was vectorised."""
    from monitor.gui.electrodes import ATTENTION_MAP

    low, high = float(attention.min()), float(attention.max())
    colours = []
    for value in attention:
        rgba = ATTENTION_MAP.map(np.array([0.15 + 0.85 * (value - low) / (high - low)]), mode="byte")[0]
        colours.append((int(rgba[0]), int(rgba[1]), int(rgba[2])))
    return colours


def _image(widget: pg.PlotWidget) -> QtGui.QImage:
    image = QtGui.QImage(widget.size(), QtGui.QImage.Format.Format_ARGB32)
    image.fill(0)
    painter = QtGui.QPainter(image)
    widget.render(painter)
    painter.end()
    return image


def test_electrode_maps_draw_the_reference_colours_positions_and_crosses_at_256_channels(qtbot):
    from monitor.gui.electrodes import ATTENTION_TITLE, ElectrodeMap, ElectrodesView, quality_colours

    layout = ElectrodeLayout.grid(16, 16)
    state = FakeState(layout.to_dict(), 256, list(layout.labels))
    view = ElectrodesView(SimpleNamespace(state=state))
    qtbot.addWidget(view)
    rng = np.random.default_rng(5)
    reference = ElectrodeMap(layout, ATTENTION_TITLE)  # drawn the plain way: a new brush per spot, every time
    qtbot.addWidget(reference)
    view.resize(600, 300)
    view.show()
    QtCore.QCoreApplication.processEvents()
    reference.show()
    expected_positions = np.asarray(layout.positions_mm, dtype=float) * [1.0, -1.0]  # grid row 1 at the top
    for step in range(3):
        attention = rng.random(256).astype(np.float32)
        usable = np.ones(256, dtype=bool)
        usable[rng.choice(256, size=step * 3, replace=False)] = False
        with state.lock:
            state.usable = usable
            state.decisions.record = SimpleNamespace(channel_attention=attention, muscle=MuscleState.CONTRACTING,
                                                     label="healthy")
        view.refresh()
        colours = _reference_attention_colours(attention)
        drawn = [brush.color().getRgb()[:3] for brush in view.attention_map.spots.data["brush"]]
        assert drawn == colours
        np.testing.assert_allclose(np.column_stack([view.attention_map.spots.data["x"],
                                                    view.attention_map.spots.data["y"]]), expected_positions)
        for electrode_map in (view.quality_map, view.attention_map):
            crosses = electrode_map.crosses.data
            np.testing.assert_allclose(np.column_stack([crosses["x"], crosses["y"]]), expected_positions[~usable])
        quality = [brush.color().getRgb()[:3] for brush in view.quality_map.spots.data["brush"]]
        assert quality == quality_colours(usable, None, 256)

        reference.spots.setBrush([pg.mkBrush(*c) for c in colours])
        reference.crosses.setData(pos=reference.positions[~usable] if (~usable).any() else np.empty((0, 2)))
        QtCore.QCoreApplication.processEvents()
        reference.setFixedSize(view.attention_map.size())  # the summary above the maps may wrap onto a new line
        QtCore.QCoreApplication.processEvents()
        assert _image(view.attention_map) == _image(reference)


def test_settled_plots_end_on_the_same_ranges_and_pixels_as_plain_ones_with_fewer_paints(qtbot):
    from monitor.gui.painting import settle_ranges

    paints = {"plain": 0, "settled": 0}

    class PaintCounter(QtCore.QObject):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        def eventFilter(self, _watched, event) -> bool:  # noqa: N802 - Qt's name
            paints[self.name] += event.type() == QtCore.QEvent.Type.Paint
            return False

    pairs, counters = {}, []
    for name in paints:  # two X-linked plots each, as the fatigue view's
        plots = [pg.PlotWidget(), pg.PlotWidget()]
        plots[1].setXLink(plots[0])
        counters.append(PaintCounter(name))
        for plot in plots:
            qtbot.addWidget(plot)
            plot.setFixedSize(400, 200)
            plot.show()
            plot.viewport().installEventFilter(counters[-1])
        pairs[name] = (plots, [plot.plot() for plot in plots])
    QtCore.QCoreApplication.processEvents()
    for length in (50, 80, 120, 400):
        x = np.arange(length) / 60.0
        for name, (plots, curves) in pairs.items():
            for curve, scale in zip(curves, (1.0, 3.0), strict=True):
                curve.setData(x, scale * np.sin(x))
            if name == "settled":
                settle_ranges(*plots)
        for _ in range(4):
            QtCore.QCoreApplication.processEvents()
        ranges = {name: [plot.getViewBox().viewRange() for plot in plots] for name, (plots, _) in pairs.items()}
        assert ranges["settled"] == ranges["plain"]
        for plain, settled in zip(pairs["plain"][0], pairs["settled"][0], strict=True):
            assert _image(plain) == _image(settled)
    assert paints["settled"] < paints["plain"]


def test_stacked_bands_fill_the_same_pixels_as_pyqtgraphs_fill_between(qtbot):
    from monitor.gui.classification import BandFill

    rng = np.random.default_rng(9)
    n = 900
    stacked = np.cumsum(rng.dirichlet(np.ones(3), n), axis=1)
    stacked[100:160] = np.nan  # rest level being learned: a gap
    stacked[400] = np.nan
    minutes = np.arange(n) / 20.0 / 60.0
    colours = [(80, 190, 110), (240, 150, 50), (170, 110, 230)]
    images = []
    for fill in (pg.FillBetweenItem, BandFill):
        plot = pg.PlotWidget()
        qtbot.addWidget(plot)
        plot.setFixedSize(700, 350)
        plot.show()
        previous = None
        for column, colour in enumerate(colours):
            curve = pg.PlotDataItem(pen=pg.mkPen(colour, width=1))
            plot.addItem(curve)
            if previous is not None:
                plot.addItem(fill(previous, curve, brush=pg.mkBrush(*colour, 150)) if fill is pg.FillBetweenItem
                             else fill(previous, curve, pg.mkBrush(*colour, 150)))
            curve.setData(minutes, stacked[:, column], connect="finite")
            previous = curve
        for _ in range(3):
            QtCore.QCoreApplication.processEvents()
        images.append(_image(plot))
    assert images[0] == images[1]


def test_marker_lines_are_made_once_and_moved_as_the_traces_scroll(qtbot):
    from monitor.gui.traces import TracesView

    state = SimpleNamespace(n_channels=4, fs=1000.0, channel_labels=["a", "b", "c", "d"])
    view = TracesView(SimpleNamespace(state=state))
    qtbot.addWidget(view)
    view.add_marker(100.0, "start")
    view.add_marker(104.0, "50% MVC")
    seen = {}
    for newest in (101.0, 105.0, 109.0, 112.0, 115.0):
        view._draw_markers(newest)
        expected = {text: timestamp - newest for timestamp, text in view.markers
                    if newest - view.span_s <= timestamp <= newest}
        drawn = {line.label.format: line.value() for line in view._marker_lines.values()}
        assert drawn == expected
        on_plot = [item for item in view.plot.getPlotItem().items if item in view._marker_lines.values()]
        assert len(on_plot) == len(expected)
        for line in view._marker_lines.values():
            assert seen.setdefault(line.label.format, line) is line  # the same line, moved
