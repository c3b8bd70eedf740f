"""`neurofusion demo` on a real X display (Xvfb): the window opens and draws the dashboard, a screenshot of the X
server shows it, Ctrl-C ends it and every child it started. Where no window can open (a dead DISPLAY, no platform
plugin) the demo says why in one line and runs the terminal dashboard instead of Qt aborting the process and
leaving its amplifier and worker running."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from scipy import ndimage

from monitor.gui.app import debian_package, window_unavailable
from monitor.gui.traces import TRACE_COLOUR

REPO = Path(__file__).resolve().parents[2]
XVFB_MISSING = "Xvfb is not installed (tools/ensure-system-deps.sh as root installs it: apt-get install xvfb x11-utils)"
WINDOW_TITLE = "NeuroFusion Monitor — NeuroFusion-Demo"
GRAB_SCREEN = (
    "import sys\nfrom PyQt6 import QtGui\napp = QtGui.QGuiApplication(['screenshot'])\n"
    "sys.exit(0 if app.primaryScreen().grabWindow(0).save(sys.argv[1]) else 1)"
)


def display_env(display: str | None, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    env.pop("DISPLAY", None)
    if display is not None:
        env["DISPLAY"] = display
    env["LSLAPICFG"] = str(REPO / "monitor" / "lsl_api.cfg")
    env["PYTHONPATH"] = str(REPO)
    return env | extra


@pytest.fixture(scope="module")
def xvfb_display():
    if shutil.which("Xvfb") is None or shutil.which("xwininfo") is None:
        pytest.skip(XVFB_MISSING)
    read_end, write_end = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1920x1080x24", "-nolisten", "tcp"],
        pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    with os.fdopen(read_end) as announced:
        number = announced.readline().strip()  # Xvfb picks a free display and writes its number once it listens
    assert number, "Xvfb did not start"
    deadline = time.monotonic() + 30.0
    while subprocess.run(["xwininfo", "-root"], env=display_env(f":{number}"), capture_output=True).returncode:
        assert server.poll() is None and time.monotonic() < deadline, f"Xvfb :{number} does not take clients"
        time.sleep(0.2)
    yield f":{number}"
    assert server.poll() is None, f"Xvfb :{number} exited during the tests ({server.returncode})"
    server.terminate()
    server.wait(10)


def start_demo(env: dict[str, str], duration_s: float, log: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "demo", "--duration", str(duration_s), *extra], cwd=REPO, env=env,
        stdin=subprocess.DEVNULL, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )


def watch_children(demo: subprocess.Popen, seen: dict[int, psutil.Process]) -> None:
    with_children = psutil.Process(demo.pid)
    try:
        for child in with_children.children(recursive=True):
            seen.setdefault(child.pid, child)
    except psutil.NoSuchProcess:
        pass


def survivors(seen: dict[int, psutil.Process]) -> list[str]:
    alive = []
    for child in seen.values():
        try:
            if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                alive.append(" ".join(child.cmdline()[2:6]))
        except psutil.NoSuchProcess:
            pass
    return alive


def end_everything(demo: subprocess.Popen, seen: dict[int, psutil.Process]) -> None:
    """After a failed assertion: no process of this test may outlive it."""
    for process in [psutil.Process(demo.pid) if demo.poll() is None else None, *seen.values()]:
        if process is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()


def window_listed(display: str) -> bool:
    tree = subprocess.run(["xwininfo", "-root", "-tree"], env=display_env(display), capture_output=True, text=True)
    return WINDOW_TITLE in tree.stdout


def test_the_demo_window_opens_on_an_x_display_draws_the_dashboard_and_ctrl_c_ends_every_child(
    xvfb_display, tmp_path
):
    log = tmp_path / "demo.log"
    demo = start_demo(display_env(xvfb_display), 120.0, log, "--profile", "rest", "--no-inference")
    seen: dict[int, psutil.Process] = {}
    try:
        deadline = time.monotonic() + 90.0
        while not window_listed(xvfb_display):
            assert demo.poll() is None, f"the demo exited ({demo.returncode}): {log.read_text()[:3000]}"
            assert time.monotonic() < deadline, f"no window after 90 s: {log.read_text()[:3000]}"
            assert window_listed(xvfb_display) or "no window" not in log.read_text(), log.read_text()[:3000]
            watch_children(demo, seen)
            time.sleep(0.3)
        time.sleep(1.5)  # signal across a few percent of the 10 s span at least
        watch_children(demo, seen)
        screenshot = tmp_path / "screen.png"
        grab = subprocess.run([sys.executable, "-c", GRAB_SCREEN, str(screenshot)], env=display_env(xvfb_display),
                              capture_output=True, text=True, timeout=60)
        assert grab.returncode == 0, grab.stderr
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        code = demo.wait(60)
    finally:
        end_everything(demo, seen)
    output = log.read_text()
    assert code == 0, output[-2000:]
    assert "no window" not in output and "Aborted" not in output
    assert len(seen) >= 1, "the amplifier should have been seen running"
    assert survivors(seen) == []

    import matplotlib.image

    pixels = (matplotlib.image.imread(screenshot)[..., :3] * 255).round().astype(np.int16)
    # the traces plot (upper left of the window at the screen's corner): a dark plot with one lane of light-blue
    # trace per channel; a blank screen, a crashed window or an empty plot has no such lanes
    traces = pixels[40:560, 50:990]
    trace_coloured = np.all(np.abs(traces - np.array(TRACE_COLOUR)) <= 40, axis=-1)
    # rows crossed by a trace, a lane's own one-row gaps closed (lanes lie ~20 rows apart)
    _, lanes = ndimage.label(ndimage.binary_closing(trace_coloured.mean(axis=1) > 0.05, structure=np.ones(7)))
    assert lanes == 8, f"{lanes} lanes of trace drawn, the demo's ring has 8 channels"
    assert np.all(traces < 40, axis=-1).mean() > 0.5, "the trace plot's dark background is missing"


def test_a_demo_that_cannot_open_a_window_says_why_in_one_line_runs_the_terminal_dashboard_and_leaves_no_child(
    tmp_path,
):
    unused = next(n for n in range(97, 200) if not Path(f"/tmp/.X11-unix/X{n}").exists())
    log = tmp_path / "demo.log"
    demo = start_demo(display_env(f":{unused}"), 2.0, log)
    seen: dict[int, psutil.Process] = {}
    try:
        while demo.poll() is None:
            watch_children(demo, seen)
            time.sleep(0.2)
        code = demo.wait()
    finally:
        end_everything(demo, seen)
    output = log.read_text()
    assert code == 0, output[-2000:]
    reasons = [line for line in output.splitlines() if line.startswith("no window")]
    assert reasons == [
        f"no window, showing the terminal dashboard: Qt could not connect to display ':{unused}'; "
        "fix: set DISPLAY to a running X server, or pass --headless"
    ]
    assert "Aborted" not in output and "BrokenPipeError" not in output
    assert "MNF" in output and "samples" in output  # the terminal dashboard's table ran
    assert len(seen) >= 2
    assert survivors(seen) == []


def test_a_platform_plugin_qt_does_not_have_is_named_with_the_fix(monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "nosuchplatform")
    assert window_unavailable() == (
        "Qt has no platform plugin 'nosuchplatform' (QT_QPA_PLATFORM); fix: unset QT_QPA_PLATFORM, or pass --headless"
    )
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert window_unavailable() is None


def test_missing_libraries_are_named_by_their_debian_packages():
    assert debian_package("libxcb-icccm.so.4") == "libxcb-icccm4"
    assert debian_package("libxcb-cursor.so.0") == "libxcb-cursor0"
    assert debian_package("libxkbcommon-x11.so.0") == "libxkbcommon-x11-0"
    assert debian_package("libX11-xcb.so.1") == "libx11-xcb1"
