"""Entry points the session calls: ``run_window`` (the interactive dashboard) and ``save_snapshot`` (a PNG of it).

Both reuse a running QApplication (pytest-qt, an embedding program) or make one; without a display the snapshot
renders offscreen.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monitor.errors import UserError


def _application() -> Any:
    from PyQt6 import QtWidgets

    app = QtWidgets.QApplication.instance()
    if app is None:
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QtWidgets.QApplication(["neurofusion"])
    return app


def _wait(app: Any, seconds: float) -> None:
    """Runs the event loop for ``seconds`` (the window keeps refreshing meanwhile)."""
    from PyQt6 import QtCore

    loop = QtCore.QEventLoop()
    QtCore.QTimer.singleShot(int(max(0.0, seconds) * 1000), loop.quit)
    loop.exec()


def run_window(
    pipeline: Any,
    duration_s: float | None = None,
    *,
    on_recording: Callable[[bool], str | None] | None = None,
    on_marker: Callable[[float, str], None] | None = None,
    adaptation: Any | None = None,
) -> int:
    """Shows the dashboard until the user closes it, Ctrl-C/SIGTERM, or ``duration_s`` passes; returns 0.

    A stream that came back in another format ends the window with that one-line error (UserError), as headless.
    ``on_recording`` and ``on_marker`` connect the record button and annotations to the session
    (``MainWindow.connect_session``); ``adaptation`` (an AdaptationSession) adds the live-labelling panel."""
    from PyQt6 import QtCore

    from monitor.gui.main_window import MainWindow

    app = _application()
    window = MainWindow(pipeline, adaptation=adaptation)
    window.connect_session(on_recording, on_marker)
    window.resize(1600, 1000)
    window.show()
    if duration_s is not None:
        QtCore.QTimer.singleShot(int(duration_s * 1000), window.close)
    # Qt's loop never returns to Python on its own, so a short timer lets Python run its SIGINT handler
    heartbeat = QtCore.QTimer()
    heartbeat.timeout.connect(lambda: None)
    heartbeat.start(200)
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: window.close())
    try:
        loop = QtCore.QEventLoop()
        window.destroyed.connect(loop.quit)
        window.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        loop.exec()
    finally:
        heartbeat.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    app.processEvents()
    incompatible = getattr(pipeline.acquisition, "incompatible", None)
    if incompatible:
        raise UserError(incompatible)
    return 0


def save_snapshot(pipeline: Any, path: str | os.PathLike[str], after_s: float = 3.0,
                  size: tuple[int, int] = (1600, 1000)) -> Path:
    """Renders the whole dashboard after ``after_s`` seconds of live data into a PNG at ``path``."""
    target = Path(path)
    if target.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp"):
        raise UserError(f"snapshot file {target} must end in .png (or .jpg, .bmp)")
    if not target.parent.is_dir():
        raise UserError(f"cannot write snapshot {target}: folder {target.parent} does not exist")
    from monitor.gui.main_window import MainWindow

    app = _application()
    window = MainWindow(pipeline)
    try:
        window.resize(*size)
        window.show()
        _wait(app, after_s)
        window.refresh(everything=True)
        app.processEvents()
        image = window.grab()
        if not image.save(str(target)):
            raise UserError(f"cannot write snapshot {target} (is the folder writable?)")
    finally:
        window.close()
        window.deleteLater()
        app.processEvents()
    return target
