"""The `neurofusion` command as a user meets it: help for every subcommand, a version, a clean demo."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from monitor import __version__
from monitor.cli import build_parser

CLI = [sys.executable, "-m", "monitor.cli"]


def subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


def test_version():
    result = subprocess.run([*CLI, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.strip() == f"neurofusion {__version__}"


def test_every_subcommand_has_help():
    names = subcommands()
    assert {"demo", "monitor"} <= set(names)
    for name in names:
        result = subprocess.run([*CLI, name, "--help"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (name, result.stderr)
        assert "usage: neurofusion" in result.stdout


def test_unknown_stream_is_one_line_error_without_traceback():
    result = subprocess.run(
        [*CLI, "monitor", "--source-id", "no-such-amplifier", "--resolve-timeout", "0.5", "--headless"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "no LSL stream with source_id 'no-such-amplifier'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_headless_demo_runs_and_leaves_no_child_process(tmp_path):
    jsonl = tmp_path / "decisions.jsonl"
    env = dict(os.environ)
    env.pop("DISPLAY", None)
    demo = subprocess.Popen(
        [*CLI, "demo", "--headless", "--duration", "10", "--jsonl", str(jsonl)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    children: set[int] = set()
    deadline = time.monotonic() + 120
    while demo.poll() is None and time.monotonic() < deadline:
        try:
            children |= {c.pid for c in psutil.Process(demo.pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            break
        time.sleep(0.5)
    out, err = demo.communicate(timeout=60)
    assert demo.returncode == 0, err[-2000:]
    assert len(children) >= 2, "the demo should run the amplifier and a worker as separate processes"
    time.sleep(0.5)
    survivors = [pid for pid in children if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert survivors == []
    lines = jsonl.read_text().splitlines()
    # 10 s of decisions at a 50 ms hop, minus start-up: far more than a handful
    assert len(lines) > 100, err[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_signal_ends_a_recording_demo_cleanly_with_a_readable_file(tmp_path, stop_signal):
    import pyxdf

    target = tmp_path / "session.xdf"
    jsonl = tmp_path / "decisions.jsonl"
    env = dict(os.environ)
    env.pop("DISPLAY", None)
    demo = subprocess.Popen(
        [*CLI, "demo", "--headless", "--record", str(target), "--jsonl", str(jsonl)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    children: set[int] = set()
    deadline = time.monotonic() + 120
    # LabRecorder joins once the monitor's streams exist: wait until it has written a few seconds of EMG
    while demo.poll() is None and time.monotonic() < deadline and not (
        target.exists() and target.stat().st_size > 300_000
    ):
        with contextlib.suppress(psutil.NoSuchProcess):
            children |= {c.pid for c in psutil.Process(demo.pid).children(recursive=True)}
        time.sleep(0.5)
    demo.send_signal(stop_signal)
    _, err = demo.communicate(timeout=60)
    assert demo.returncode in (0, 130), err[-2000:]
    assert "Traceback" not in err
    time.sleep(0.5)
    assert [pid for pid in children if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"] == []
    streams, _ = pyxdf.load_xdf(str(target))
    types = {s["info"]["type"][0] for s in streams}
    assert {"EMG", "Classification", "Fatigue"} <= types
    emg = next(s for s in streams if s["info"]["type"][0] == "EMG")
    assert len(emg["time_stamps"]) > 2048


def test_corrupt_checkpoint_is_one_line_error(tmp_path):
    from models.checkpoint import BUNDLED_CHECKPOINT, card_path

    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint at all")
    card_path(broken).write_text(card_path(BUNDLED_CHECKPOINT).read_text())
    result = subprocess.run([*CLI, "worker", "--model", str(broken)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "broken.pt" in lines[0]


def test_a_named_model_for_another_layout_is_refused_before_monitoring():
    # the bundled model on a layout it does not fit is simply not run (tests/e2e/test_hdemg_replay.py); a model the
    # user named is refused
    env = dict(os.environ)
    env.pop("DISPLAY", None)
    result = subprocess.run(
        [*CLI, "demo", "--layout", "grid8x8", "--headless", "--duration", "5", "--model", "models/weights/default.pt"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert "default.pt expects 8 EMG channels (ring) but stream 'NeuroFusion-Demo' has 64" in last
    assert "Traceback" not in result.stderr
