"""Entry points the session calls: ``run_window`` (the interactive dashboard) and ``save_snapshot`` (a PNG of it).

Both reuse a running QApplication (pytest-qt, an embedding program) or make one; without a display the snapshot
renders offscreen.
"""

from __future__ import annotations

import gc
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monitor.errors import UserError

#: what the probe runs: loading the platform plugin and connecting to the display is where Qt calls abort()
_PROBE = "from PyQt6 import QtGui\napp = QtGui.QGuiApplication(['neurofusion-probe'])\nprint(app.platformName())"


def window_unavailable(timeout_s: float = 60.0) -> str | None:
    """Why no window can open here (one line with the fix), or None when Qt starts on this display.

    Qt ends the process with abort() when its platform plugin cannot load or the display does not answer, before
    Python can clean up anything, so it is tried in a throwaway process first."""
    try:
        probe = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=timeout_s,
                               stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"Qt did not connect to display {os.environ.get('DISPLAY', '')!r} within {timeout_s:.0f} s"
    if probe.returncode == 0:
        return None
    return _window_failure(probe.stderr)


def _window_failure(stderr: str) -> str:
    """The reason and the fix for a failed probe, from Qt's messages and what the xcb plugin's libraries lack."""
    display = os.environ.get("DISPLAY", "")
    unknown = re.search(r'Could not find the Qt platform plugin "([^"]*)"', stderr)
    if unknown:
        return (f"Qt has no platform plugin {unknown.group(1)!r} (QT_QPA_PLATFORM); "
                "fix: unset QT_QPA_PLATFORM, or pass --headless")
    if "could not connect to display" in stderr:
        return (f"Qt could not connect to display {display!r}; "
                "fix: set DISPLAY to a running X server, or pass --headless")
    missing = missing_xcb_libraries()
    if missing:
        packages = " ".join(sorted({debian_package(library) for library in missing}))
        return (f"Qt's xcb plugin cannot load ({', '.join(missing)} missing); "
                f"fix: sudo apt-get install -y {packages} (or: sudo bash tools/ensure-system-deps.sh)")
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return f"Qt could not start ({lines[0] if lines else 'no message'}); fix: pass --headless"


def missing_xcb_libraries() -> list[str]:
    """Shared libraries Qt's xcb platform plugin needs and the loader cannot find (ldd), in ldd's order."""
    from PyQt6.QtCore import QLibraryInfo

    plugins = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath))
    plugin = plugins / "platforms" / "libqxcb.so"
    if not plugin.is_file() or shutil.which("ldd") is None:
        return []
    listing = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True).stdout
    missing = [line.split("=>")[0].strip() for line in listing.splitlines() if "not found" in line]
    return list(dict.fromkeys(missing))


def debian_package(soname: str) -> str:
    """Debian's package for a shared library by its naming policy: libxcb-icccm.so.4 -> libxcb-icccm4,
    libxkbcommon-x11.so.0 -> libxkbcommon-x11-0."""
    name, _, version = soname.partition(".so.")
    name = name.lower()
    return f"{name}-{version}" if name[-1].isdigit() else f"{name}{version}"


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
    from monitor.gui.collector import collection_in_qt_thread
    from monitor.gui.main_window import MainWindow

    app = _application()
    with collection_in_qt_thread():
        return _show_until_closed(app, MainWindow(pipeline, adaptation=adaptation), pipeline, duration_s,
                                  on_recording, on_marker)


def _show_until_closed(app: Any, window: Any, pipeline: Any, duration_s: float | None,
                       on_recording: Callable[[bool], str | None] | None,
                       on_marker: Callable[[float, str], None] | None) -> int:
    from PyQt6 import QtCore

    window.connect_session(on_recording, on_marker)
    window.resize(1600, 1000)
    window.show()
    # the window's start-up objects out of full collections, which stalled drawing for 65-290 ms; the garbage is
    # collected first so that it is not frozen with them (collection_in_qt_thread unfreezes when the window is gone)
    gc.collect()
    gc.freeze()
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
    from monitor.core.snapshot import check_snapshot_target

    target = check_snapshot_target(path)
    from monitor.gui.collector import collection_in_qt_thread
    from monitor.gui.main_window import MainWindow

    app = _application()
    with collection_in_qt_thread():
        return _render(app, MainWindow(pipeline), target, after_s, size)


def _render(app: Any, window: Any, target: Path, after_s: float, size: tuple[int, int]) -> Path:
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
