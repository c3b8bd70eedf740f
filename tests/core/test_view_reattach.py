"""A view the user started by hand (`neurofusion view`) outlives its core and reattaches when a core on the same stream
starts again. Real processes on loopback: the LSL player, two `neurofusion monitor --no-view --no-inference` cores one
after the other, and two views at once, the terminal dashboard and the window (Qt offscreen), so that both ways of
waiting are tried for one price; the cores and the views see only this test's runtime folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from tests.players import start_player, stop_player, wait_until

REPO = Path(__file__).resolve().parents[2]


def views_line(core: dict) -> str:
    from monitor.core.shared_state import SharedStateReader

    try:
        reader = SharedStateReader(core["shm"])
    except (OSError, ValueError):
        return ""  # the core is still creating its segment
    try:
        status = reader.read_blob("status")
        return "" if status is None else status["views"]
    finally:
        reader.close()


def test_views_started_by_hand_wait_for_their_core_to_come_back_and_reattach(tmp_path, private_runtime_dir):
    from monitor.core.control import running_cores

    # this test's cores only, for the views and for the test
    env = dict(os.environ, PYTHONPATH=str(REPO), XDG_RUNTIME_DIR=str(private_runtime_dir), QT_QPA_PLATFORM="offscreen")
    source_id = f"reattach-{uuid.uuid4().hex[:8]}"
    player = start_player(source_id, 120.0, fs=2048.0)  # stopped once the steps are done
    core_command = [sys.executable, "-m", "monitor.cli", "monitor", "--source-id", source_id, "--resolve-timeout",
                    "30", "--no-view", "--no-inference"]  # fmt: skip
    processes: list[subprocess.Popen] = []

    def start(command: list[str], name: str) -> subprocess.Popen:
        with (tmp_path / f"{name}.err").open("w") as stderr, (tmp_path / f"{name}.out").open("w") as stdout:
            process = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env, cwd=REPO)
        processes.append(process)
        return process

    def core_of(process: subprocess.Popen) -> dict:
        found = wait_until(lambda: [c for c in running_cores() if c["pid"] == process.pid], 60)
        assert found is not None, (tmp_path / "core.err").read_text()
        return next(c for c in running_cores() if c["pid"] == process.pid)

    def errors(kind: str) -> str:
        return (tmp_path / f"{kind}.err").read_text()

    try:
        first = start(core_command, "core")
        first_core = core_of(first)
        view_command = [sys.executable, "-m", "monitor.cli", "view", "--duration", "90"]
        views = {"headless": start([*view_command, "--headless"], "headless"),
                 "window": start([*view_command, "--window"], "window")}  # fmt: skip
        lines = [f"{kind} view attached (pid {view.pid})" for kind, view in views.items()]
        assert wait_until(lambda: all(line in views_line(first_core) for line in lines), 60) is not None, (
            views_line(first_core))  # fmt: skip

        first.send_signal(signal.SIGINT)  # the core ends; the views stay, the dashboard says what it waits for
        assert first.wait(timeout=60) == 0
        assert wait_until(lambda: "waiting for a core on stream" in errors("headless"), 20) is not None, (
            errors("headless"))  # fmt: skip
        assert all(view.poll() is None for view in views.values())

        second = start(core_command, "core")
        second_core = core_of(second)
        assert wait_until(lambda: all(line in views_line(second_core) for line in lines), 60) is not None, (
            views_line(second_core), [errors(kind) for kind in views])  # fmt: skip
        for kind in views:
            assert f"reattached to the monitor core (pid {second.pid})" in errors(kind)

        for view in views.values():  # Ctrl-C ends a view that has a core as before: exit 0
            view.send_signal(signal.SIGINT)
        assert [view.wait(timeout=30) for view in views.values()] == [0, 0], [errors(kind) for kind in views]
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        stop_player(player)
