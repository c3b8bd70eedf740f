"""The view is the least important part: frozen for 5 s (SIGSTOP), then killed (SIGKILL) mid-stream, it costs the core
nothing. Real parts: the indexed LSL player, `neurofusion monitor --view-process` (core + a real ZeroMQ worker
process + the terminal dashboard in its own process), and a second view attached afterwards.

Every sample: the player's index channel, read back from the core's shared memory, is 0..N-1 with nothing missing or
repeated, and the XDF recording (--record) is gap-free from before the freeze to the last sample. Every decision:
every window submitted was answered or dropped for a counted reason, every answer is in the core's JSON lines once,
and the windows during the freeze and after the kill got their decisions like any others."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import psutil
import pytest

from tests.players import start_player, wait_until

REPO = Path(__file__).resolve().parents[2]
DURATION_S = 16.0  # room for 1 s of stream, a 5 s freeze and the kill on a loaded machine, then more stream
FS = 2048.0


def view_child(core: psutil.Process) -> psutil.Process | None:
    for child in core.children():
        if "view" in child.cmdline():
            return child
    return None


def status_of(reader) -> dict:
    status = None
    while status is None:
        status = reader.read_blob("status")
    return status


def unaccounted(status: dict) -> int:
    stats = status["client"]["stats"]
    lost = stats["dropped_deadline"] + stats["dropped_superseded"] + stats["errors"]
    return stats["submitted"] - stats["answered"] - lost + (stats["answered"] - status["decisions_published"])


@pytest.mark.slow
def test_a_frozen_then_killed_view_loses_no_sample_and_no_decision(tmp_path):
    from dsp.windows import samples_for
    from monitor.core.control import running_cores
    from monitor.core.shared_state import SharedStateReader
    from monitor.inference.supervisor import spawn_worker

    source_id = f"core-{uuid.uuid4().hex[:8]}"
    player = start_player(source_id, DURATION_S, fs=FS)
    jsonl, log = tmp_path / "decisions.jsonl", tmp_path / "core.log"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    # a worker of the test's own, named with --worker, that the test stops itself (the model check that once
    # counted the MISC index channel as an electrode reads the outlet's full description since 51c300a)
    worker = spawn_worker(model_path=None)
    command = [sys.executable, "-m", "monitor.cli", "monitor", "--source-id", source_id, "--resolve-timeout", "30",
               "--view-process", "--headless", "--jsonl", str(jsonl), "--worker", worker.endpoint,
               "--record", str(tmp_path / "session.xdf")]  # fmt: skip
    with log.open("w") as stderr:
        core = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=env, cwd=REPO)
    reader = None
    try:
        found = wait_until(lambda: [c for c in running_cores() if c["pid"] == core.pid], 60)
        assert found is not None, log.read_text()
        description = next(c for c in running_cores() if c["pid"] == core.pid)
        reader = SharedStateReader(description["shm"])
        process = psutil.Process(core.pid)
        assert wait_until(lambda: "headless view attached" in status_of(reader)["views"], 60) is not None
        view = view_child(process)
        assert view is not None
        assert wait_until(lambda: reader.committed("raw") > FS, 30) is not None

        # frozen 5 s: no heartbeat, no reads; the core is told and goes on
        view.send_signal(signal.SIGSTOP)
        frozen_at = reader.rings["raw"].timestamps[(reader.committed("raw") - 1) % reader.rings["raw"].capacity]
        assert wait_until(lambda: "not answering" in status_of(reader)["views"], 10) is not None
        time.sleep(5.0 - 3.0)  # the 3 s the core waits before it calls a view silent are part of the 5
        view.send_signal(signal.SIGCONT)
        assert wait_until(lambda: "headless view attached" in status_of(reader)["views"], 10) is not None

        # killed: the core says the view is gone, and goes on
        view.send_signal(signal.SIGKILL)
        view.wait(timeout=10)
        killed_at = reader.rings["raw"].timestamps[(reader.committed("raw") - 1) % reader.rings["raw"].capacity]
        assert wait_until(lambda: "view gone" in status_of(reader)["views"], 10) is not None

        out, _ = player.communicate(timeout=DURATION_S + 60)
        sent = int(out.split()[-1])
        window, hop = samples_for(200, FS), samples_for(50, FS)
        expected = sent // hop - -(-window // hop) + 1
        assert wait_until(lambda: status_of(reader)["windows_seen"] >= expected, 30) is not None
        status = status_of(reader)
        # every window submitted is answered or dropped for a counted reason (a deadline on this loaded machine)
        settled = wait_until(lambda: unaccounted(status_of(reader)) == 0, 30)
        status = status_of(reader)
        assert settled is not None, (status["decisions_published"], expected, status["client"])
        assert wait_until(lambda: len(jsonl.read_text().splitlines()) >= status["decisions_published"], 30) is not None

        # a view opened again finds the whole session
        again = subprocess.run([sys.executable, "-m", "monitor.cli", "view", "--core", str(core.pid), "--headless",
                                "--duration", "1"], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
        assert again.returncode == 0, again.stderr
        assert f"samples {sent}" in again.stdout and "dropped 0" in again.stdout

        raw = reader.read_ring("raw", 0)
        status = status_of(reader)
    finally:
        if core.poll() is None:
            core.send_signal(signal.SIGINT)
        code = core.wait(timeout=60)
        if player.poll() is None:
            player.kill()
        worker.stop()
        if reader is not None:
            reader.close()

    assert code == 0, log.read_text()
    assert sent == int(DURATION_S * FS)
    assert raw.first_counter == 0
    np.testing.assert_array_equal(raw.values[:, -1], np.arange(sent, dtype=np.float32))  # nothing lost or repeated
    assert status["reader_dropped"] == 0 and status["stats"]["gaps"] == 0
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    sequences = [line["sequence"] for line in lines]
    assert len(lines) == status["decisions_published"] and len(set(sequences)) == len(sequences)
    assert status["client"]["stats"]["answered"] == len(lines) >= 0.85 * expected, (len(lines), expected)
    stamps = np.array([line["timestamp"] for line in lines])
    # windows end every hop from the first whole window on; each stretch's windows got their decisions (the worker's
    # warm-up at the start may cost a few, which is why the first stretch is not compared)
    ends = raw.timestamps[np.arange(-(-window // hop) * hop, sent + 1, hop) - 1]
    for start, stop in ((frozen_at, killed_at), (killed_at, np.inf)):
        windows = int(((ends > start) & (ends <= stop)).sum())
        decided = int(((stamps > start) & (stamps <= stop)).sum())
        assert windows > 10 and decided >= 0.85 * windows, (start, stop, windows, decided)
    # the recording went on through the freeze and the kill: gap-free and in order up to the last sample
    import pyxdf

    streams, _ = pyxdf.load_xdf(str(tmp_path / "session.xdf"), dejitter_timestamps=False)
    by_type = {stream["info"]["type"][0]: stream for stream in streams}
    recorded = by_type["EMG"]["time_series"][:, -1]
    np.testing.assert_array_equal(np.diff(recorded), 1.0)
    assert recorded[-1] == sent - 1 and by_type["EMG"]["time_stamps"][0] < frozen_at
    assert {"Fatigue", "Quality", "Markers"} <= set(by_type)
    text = log.read_text()
    assert "view gone" in text and "Traceback" not in text
    assert not [c for c in running_cores() if c["pid"] == core.pid]  # its folder and segment went with it
    assert not Path("/dev/shm", description["shm"]).exists()
