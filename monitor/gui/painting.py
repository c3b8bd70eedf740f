"""Helpers that keep a view's repaint to one per refresh."""

from __future__ import annotations

import pyqtgraph as pg


def settle_ranges(*plots: pg.PlotWidget) -> None:
    """Applies the auto-range of ``plots`` now, right after their curves got new data, instead of during the paint.

    pyqtgraph otherwise rescales a ViewBox in the scene's prepare-for-paint step: the axes (and any X-linked plot)
    then change while Qt is painting, which schedules a second full paint of every plot a moment later (the fatigue
    view's three linked plots painted 6 times per refresh, the classification trend 2-3 times). The ranges computed
    here are the ones the paint would have computed, so the picture is the same."""
    for plot in plots:
        plot.scene().prepareForPaint()
