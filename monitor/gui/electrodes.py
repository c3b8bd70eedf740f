"""Electrodes drawn where they sit on the body, twice: coloured by signal quality and by the model's attention.

Ring layouts are drawn as the forearm's cross-section, grids as the skin patch (rows along the fibres), a needle as
one point. Channels the pipeline masks out of inference are crossed out in red on both maps; hovering an electrode
names what the quality monitor found (flat, saturated, mains, nonfinite).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtWidgets

from monitor.pipeline import MuscleState
from simulators.electrodes import ElectrodeLayout

GOOD = (60, 180, 90)
BAD = (220, 50, 50)
UNKNOWN = (120, 120, 120)
WARN = (230, 160, 40)
MAX_LABELS = 24
ATTENTION_MAP = pg.colormap.get("inferno")
#: scaled to its own range (attention_colours): the title says which end of the colour map is which
ATTENTION_TITLE = "attention (bright = high)"
#: the attention map's title while no decision carries an attention (no model for the layout, or none yet)
NO_ATTENTION_TITLE = "attention: no decision yet"
#: ... and while the decisions carry none (the needle model: one channel, nothing to attend across)
NO_ATTENTION_FROM_MODEL_TITLE = "attention: none from this model"


def layout_for(state: Any) -> tuple[ElectrodeLayout, np.ndarray]:
    """The stream's layout and the stream channel of each electrode in it.

    A layout describes the EMG electrodes, so it matches either every channel or the EMG channels (a stream may
    carry others, e.g. a sample index). Without a matching layout the EMG channels are drawn in a row."""
    emg = getattr(state, "emg_channels", None)
    emg = np.arange(state.n_channels) if emg is None else np.asarray(emg, dtype=int)
    if state.layout:
        try:
            layout = ElectrodeLayout.from_dict(state.layout)
        except ValueError:
            layout = None
        if layout is not None and layout.n_channels == state.n_channels:
            return layout, np.arange(state.n_channels)
        if layout is not None and layout.n_channels == len(emg):
            return layout, emg
    n = max(1, len(emg))
    positions = np.column_stack([np.arange(n) * 10.0, np.zeros(n)])
    labels = [state.channel_labels[i] for i in emg] if len(state.channel_labels) == state.n_channels else []
    return ElectrodeLayout("custom", positions, tuple(labels or (f"ch{i + 1}" for i in range(n)))), emg


def quality_colours(
    usable: np.ndarray | None, reasons: list[str] | None, n_channels: int
) -> list[tuple[int, int, int]]:
    """Green: usable and clean; amber: usable but flagged (e.g. mains); red: masked out of inference; grey: unknown."""
    if usable is None or len(usable) != n_channels:
        return [UNKNOWN] * n_channels
    reasons = reasons if reasons is not None and len(reasons) == n_channels else [""] * n_channels
    return [(WARN if reason else GOOD) if ok else BAD for ok, reason in zip(usable, reasons, strict=True)]


def attention_colours(attention: np.ndarray | None, n_channels: int) -> list[tuple[int, ...]]:
    """Attention scaled to its own range (what matters is which electrodes drove the call, not the absolute level)."""
    if attention is None or len(attention) != n_channels or not np.all(np.isfinite(attention)):
        return [UNKNOWN] * n_channels
    low, high = float(np.min(attention)), float(np.max(attention))
    scaled = (attention - low) / (high - low) if high > low else np.full(n_channels, 0.5)
    rgba = ATTENTION_MAP.map(0.15 + 0.85 * scaled, mode="byte")
    return [tuple(colour) for colour in rgba[:, :3].tolist()]


@lru_cache(maxsize=4096)
def brush_for(colour: tuple[int, ...]) -> Any:
    """One QBrush per colour, made once: making 256 brushes took ~2 ms of every 256-channel map refresh.

    The attention colours lie on one colormap curve (a few thousand byte triples at most): the cache stays small."""
    return pg.mkBrush(*colour)


def electrode_spacing_mm(positions: np.ndarray) -> float:
    """Distance from each electrode to its nearest neighbour, the smallest over the layout (10 mm for one)."""
    if len(positions) < 2:
        return 10.0
    distances = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=2)
    np.fill_diagonal(distances, np.inf)
    return float(distances.min())


def label_position(position: np.ndarray, size: float, kind: str) -> tuple[float, float]:
    """Where an electrode's name goes (its centre): outside the ring, radially, or under the electrode.

    Drawn under each electrode of a ring, the names fell on the neighbouring electrodes ("E04" across E05)."""
    x, y = (float(v) for v in position)
    radius = float(np.hypot(x, y))
    if kind == "ring" and radius > 0:
        scale = (radius + 1.1 * size) / radius
        return x * scale, y * scale
    return x, y - 0.85 * size


class ElectrodeMap(pg.PlotWidget):
    """One drawing of the layout; ``set_colours`` recolours the electrodes, ``set_bad`` crosses channels out.

    ``electrode_clicked(index)`` gives the position in the layout of an electrode the user clicked."""

    electrode_clicked = QtCore.pyqtSignal(int)

    def __init__(self, layout: ElectrodeLayout, title: str) -> None:
        super().__init__()
        self.setMenuEnabled(False)
        self.hideButtons()
        self.setMouseEnabled(x=False, y=False)
        self.setAspectLocked(True)
        self.title = title
        self.setTitle(title, size="9pt")
        for axis in ("left", "bottom"):
            self.hideAxis(axis)
        positions = np.asarray(layout.positions_mm, dtype=float).copy()
        if layout.kind == "grid":
            positions[:, 1] *= -1  # row 1 at the top, as the grid is seen on the skin
        self.positions = positions
        extent = float(np.ptp(positions, axis=0).max()) if len(positions) > 1 else 10.0
        # electrodes sized in millimetres (85 % of the spacing), so they never overlap whatever the panel's size
        size = 0.85 * electrode_spacing_mm(positions)
        if layout.kind == "ring":
            radius = float(np.linalg.norm(positions, axis=1).max())
            outline = np.linspace(0, 2 * np.pi, 100)
            self.plot(radius * np.cos(outline), radius * np.sin(outline), pen=pg.mkPen((90, 90, 90), width=2))
        self.spots = pg.ScatterPlotItem(pos=positions, size=size, pxMode=False, pen=pg.mkPen((20, 20, 20)), symbol="o",
                                        hoverable=True, tip=lambda x, y, data: str(data))
        self.crosses = pg.ScatterPlotItem(size=size * 0.8, pxMode=False, symbol="x", pen=None, brush=pg.mkBrush(*BAD))
        self.addItem(self.spots)
        self.addItem(self.crosses)
        self.spots.sigClicked.connect(self._clicked)
        self.labels: list[pg.TextItem] = []
        if layout.n_channels <= MAX_LABELS:
            for position, label in zip(positions, layout.labels, strict=True):
                text = pg.TextItem(label, color=(200, 200, 200), anchor=(0.5, 0.5))
                text.setPos(*label_position(position, size, layout.kind))
                self.addItem(text)
                self.labels.append(text)
        # room for the labels outside the ring (or under the bottom row)
        margin = 0.15 * extent + (1.8 if layout.kind == "ring" else 1.3) * size
        self.setXRange(positions[:, 0].min() - margin, positions[:, 0].max() + margin, padding=0)
        self.setYRange(positions[:, 1].min() - margin, positions[:, 1].max() + margin, padding=0)
        self.colours: list[tuple[int, ...]] = [UNKNOWN] * len(positions)
        self.tips: list[str] = []
        self._bad: np.ndarray | None = None

    def set_title(self, title: str) -> None:
        self.title = title
        self.setTitle(title, size="9pt")

    def set_colours(self, colours: list[tuple[int, ...]]) -> None:
        if colours != self.colours:
            self.colours = colours
            self.spots.setBrush([brush_for(c) for c in colours])

    def _clicked(self, _item: Any, points: Any, *_: Any) -> None:
        if len(points):
            self.electrode_clicked.emit(int(points[0].index()))

    def set_tips(self, tips: list[str]) -> None:
        if tips != self.tips:
            self.tips = tips
            self.spots.setData(pos=self.positions, data=tips, brush=[brush_for(c) for c in self.colours])

    def set_bad(self, bad: np.ndarray) -> None:
        # setData rebuilds (and the next paint redraws) the crosses: only when the masked channels change
        if self._bad is not None and np.array_equal(bad, self._bad):
            return
        self._bad = bad.copy()
        self.crosses.setData(pos=self.positions[bad] if bad.any() else np.empty((0, 2)))


class ElectrodesView(QtWidgets.QWidget):
    """Both maps; ``channel_selected(stream_channel)`` when an electrode is clicked on either."""

    channel_selected = QtCore.pyqtSignal(int)

    def __init__(self, pipeline: Any, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.pipeline = pipeline
        self.layout_, self.channels = layout_for(pipeline.state)
        self.bad = np.zeros(self.layout_.n_channels, dtype=bool)
        self.reasons = [""] * self.layout_.n_channels
        self.quality_map = ElectrodeMap(self.layout_, "signal quality")
        self.attention_map = ElectrodeMap(self.layout_, NO_ATTENTION_TITLE)
        for electrode_map in (self.quality_map, self.attention_map):
            electrode_map.electrode_clicked.connect(lambda index: self.channel_selected.emit(int(self.channels[index])))
        self.summary = QtWidgets.QLabel("—")
        self.summary.setWordWrap(True)
        maps = QtWidgets.QHBoxLayout()
        maps.addWidget(self.quality_map)
        maps.addWidget(self.attention_map)
        header = QtWidgets.QHBoxLayout()
        header.addWidget(QtWidgets.QLabel(f"<b>Electrodes</b> ({self.layout_.kind}, {self.layout_.n_channels} ch)"))
        header.addWidget(self.summary, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(header)
        layout.addLayout(maps, 1)

    def refresh(self) -> None:
        state = self.pipeline.state
        with state.lock:
            usable = None if state.usable is None else state.usable.copy()
            last = state.decisions.latest()
            quality = getattr(state, "quality", None)
        n = self.layout_.n_channels
        reasons = list(getattr(quality, "reasons", ()) or ())
        reasons = [reasons[i] for i in self.channels] if len(reasons) == state.n_channels else None
        attention = None if last is None or last.channel_attention is None else np.asarray(last.channel_attention)
        if attention is not None and len(attention) == self.pipeline.state.n_channels and len(attention) != n:
            attention = attention[self.channels]
        if usable is not None and len(usable) == self.pipeline.state.n_channels:
            usable = usable[self.channels]
        self.bad = ~usable if usable is not None and len(usable) == n else np.zeros(n, dtype=bool)
        self.quality_map.set_colours(quality_colours(usable, reasons, n))
        reasons = reasons or [""] * n
        if reasons != self.reasons or not self.quality_map.tips:  # the tooltips only change with the reasons
            self.quality_map.set_tips([f"{label}: {reason or 'ok'}" for label, reason in zip(
                self.layout_.labels, reasons, strict=True)])
        self.reasons = reasons
        self.attention_map.set_colours(attention_colours(attention, n))
        # grey electrodes under "attention" would look like a model that attends to nothing: say why they are grey
        has_attention = attention is not None and len(attention) == n
        title = (ATTENTION_TITLE if has_attention else NO_ATTENTION_TITLE if last is None
                 else NO_ATTENTION_FROM_MODEL_TITLE)
        if title != self.attention_map.title:
            self.attention_map.set_title(title)
        self.quality_map.set_bad(self.bad)
        self.attention_map.set_bad(self.bad)
        parts = []
        flagged = np.flatnonzero(self.bad | np.array([bool(r) for r in self.reasons]))
        if len(flagged):
            named = [self._describe(i) for i in flagged[:6]]
            parts.append("masked/flagged: " + ", ".join(named) + (" …" if len(flagged) > 6 else ""))
        if attention is not None and len(attention) == n:
            top = np.argsort(attention)[::-1][:3]
            named = ", ".join(self.layout_.labels[i] for i in top)
            # at rest or while the rest level is learned there is no call for the attention to have driven
            called = last is None or last.muscle is MuscleState.CONTRACTING
            parts.append(f"drove the call: {named}" if called else f"model attention: {named} (no call: {last.label})")
        if not parts:
            parts.append("all channels usable" if usable is not None else "—")
        self.summary.setText("   ".join(parts))

    def _describe(self, index: int) -> str:
        label, reason = self.layout_.labels[index], self.reasons[index]
        state = "masked" if self.bad[index] else "usable"
        return f"{label} ({reason or state})" if reason or self.bad[index] else label
