"""A session that decomposes (`monitor --decompose`, or a core whose status carries motor units) shows the motor-unit
panel by itself: `monitor --decompose --snapshot FILE.png` drew a picture with no units in it (the dock opened only
on U, which no snapshot can press). Opened once: a user who closes it keeps it closed. A real LSL grid stream and
pipeline (tests/gui/conftest.py); the service never calibrates here (about 2 s)."""

from __future__ import annotations


def test_the_motor_unit_panel_opens_by_itself_once_when_the_session_decomposes(qtbot, grid_pipeline) -> None:
    from monitor.decomposition_service import start_live_decomposition
    from monitor.gui.main_window import MainWindow

    window = MainWindow(grid_pipeline)
    qtbot.addWidget(window)
    window.refresh(everything=True)
    assert window.decomposition is None  # a grid stream that is not decomposed: U opens the panel, as before

    service = start_live_decomposition(grid_pipeline, publish=False)  # no automatic calibration
    try:
        window.refresh(everything=True)
        assert window.decomposition is not None and window.decomposition.service is service
        assert window._decomposition_dock.isVisibleTo(window)

        window.toggle_decomposition()  # the user closes it
        for _ in range(3):
            window.refresh(everything=True)
        assert not window._decomposition_dock.isVisibleTo(window)
    finally:
        window.close()
