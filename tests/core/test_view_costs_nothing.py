"""The view is the least important part: frozen for 5 s (SIGSTOP), then killed (SIGKILL) mid-stream, it costs the core
nothing, and the core starts it again. Real parts: the indexed LSL player, `neurofusion monitor --view-process` (core
+ the terminal dashboard in its own process) on a real ZeroMQ worker process (the suite's bundled worker).

Every sample: the player's index channel, read back from the core's shared memory, is 0..N-1 with nothing missing or
repeated, and the XDF recording (--record) is gap-free from before the freeze to the last sample. Every decision:
every window submitted was answered or dropped for a counted reason, every answer is in the core's JSON lines once,
and the windows during the freeze and after the kill got their decisions like any others. The view the core
restarted attaches mid-session and its last dashboard counts every sample of the session.

Cost: the player streams until the test's steps are done (SIGTERM), not for a duration padded for a loaded machine."""

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

from tests.players import start_player, stop_player, wait_until

REPO = Path(__file__).resolve().parents[2]
FS = 2048.0
AFTER_KILL_S = 1.5  # of stream after the kill: ~30 windows at a 50 ms hop, the restarted view attaching meanwhile


def view_children(core: psutil.Process) -> list[psutil.Process]:
    return [child for child in core.children() if "view" in child.cmdline()]


def status_of(reader) -> dict:
    status = None
    while status is None:
        status = reader.read_blob("status")
    return status


def unaccounted(status: dict) -> int:
    stats = status["client"]["stats"]
    lost = stats["dropped_deadline"] + stats["dropped_superseded"] + stats["errors"]
    return stats["submitted"] - stats["answered"] - lost + (stats["answered"] - status["decisions_published"])


def newest_time(reader) -> float:
    ring = reader.rings["raw"]
    return float(ring.timestamps[(reader.committed("raw") - 1) % ring.capacity])


@pytest.mark.slow
def test_a_frozen_then_killed_view_loses_no_sample_and_no_decision_and_comes_back(tmp_path, bundled_worker):
    from dsp.windows import samples_for
    from monitor.core.control import running_cores
    from monitor.core.shared_state import SharedStateReader

    source_id = f"core-{uuid.uuid4().hex[:8]}"
    player = start_player(source_id, 120.0, fs=FS, wait_consumer=60.0)  # stopped once the steps are done
    jsonl, log, out = tmp_path / "decisions.jsonl", tmp_path / "core.log", tmp_path / "core.out"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "monitor.cli", "monitor", "--source-id", source_id, "--resolve-timeout", "30",
               "--view-process", "--headless", "--jsonl", str(jsonl), "--worker", bundled_worker.endpoint,
               "--record", str(tmp_path / "session.xdf")]  # fmt: skip
    with log.open("w") as stderr, out.open("w") as stdout:  # stdout: the dashboards of the view processes
        core = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env, cwd=REPO)
    reader = None
    try:
        found = wait_until(lambda: [c for c in running_cores() if c["pid"] == core.pid], 60)
        assert found is not None, log.read_text()
        description = next(c for c in running_cores() if c["pid"] == core.pid)
        reader = SharedStateReader(description["shm"])
        process = psutil.Process(core.pid)
        assert wait_until(lambda: "headless view attached" in status_of(reader)["views"], 60) is not None
        (view,) = view_children(process)

        # frozen 5 s: no heartbeat, no reads; the core is told and goes on
        view.send_signal(signal.SIGSTOP)
        frozen_at = newest_time(reader)
        assert wait_until(lambda: "not answering" in status_of(reader)["views"], 10) is not None
        time.sleep(5.0 - 3.0)  # the 3 s the core waits before it calls a view silent are part of the 5
        view.send_signal(signal.SIGCONT)
        assert wait_until(lambda: "headless view attached" in status_of(reader)["views"], 10) is not None

        # killed: the core says so, starts the view again, and goes on
        view.send_signal(signal.SIGKILL)
        view.wait(timeout=10)
        killed_at, killed_count = newest_time(reader), reader.committed("raw")
        restarted = wait_until(lambda: "view restarted" in status_of(reader)["views"], 10)
        assert restarted is not None, status_of(reader)["views"]
        assert [child.pid for child in view_children(process)] not in ([], [view.pid])
        assert wait_until(lambda: reader.committed("raw") >= killed_count + AFTER_KILL_S * FS, 30) is not None
        assert wait_until(lambda: f"headless view attached (pid {view_children(process)[0].pid})"
                          in status_of(reader)["views"], 60) is not None  # fmt: skip

        sent = stop_player(player, timeout_s=60.0)
        window, hop = samples_for(200, FS), samples_for(50, FS)
        expected = sent // hop - -(-window // hop) + 1
        assert wait_until(lambda: status_of(reader)["windows_seen"] >= expected, 30) is not None
        # every window submitted is answered or dropped for a counted reason (a deadline on this loaded machine)
        settled = wait_until(lambda: unaccounted(status_of(reader)) == 0, 30)
        status = status_of(reader)
        assert settled is not None, (status["decisions_published"], expected, status["client"])
        assert wait_until(lambda: len(jsonl.read_text().splitlines()) >= status["decisions_published"], 30) is not None
        raw = reader.read_ring("raw", 0)
        status = status_of(reader)
    finally:
        if core.poll() is None:
            core.send_signal(signal.SIGINT)
        code = core.wait(timeout=60)
        if player.poll() is None:
            player.kill()
        if reader is not None:
            reader.close()

    assert code == 0, log.read_text()
    # the core's shared ring holds its newest 30 s (all of a quick run; a loaded machine's run is longer)
    assert raw.first_counter == max(0, sent - len(raw.values))
    np.testing.assert_array_equal(raw.values[:, -1], np.arange(raw.first_counter, sent, dtype=np.float32))  # no loss
    assert status["reader_dropped"] == 0 and status["stats"]["gaps"] == 0
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    sequences = [line["sequence"] for line in lines]
    assert len(lines) == status["decisions_published"] and len(set(sequences)) == len(sequences)
    assert all("fatigue_state" in line for line in lines)  # the core's lines carry the tracker's state too
    # a window the worker could not answer in time is dropped and counted (asserted above), which a machine busy with
    # a parallel test file does for up to a quarter of them; a core held up by its view would lose whole seconds
    assert status["client"]["stats"]["answered"] == len(lines) >= 0.7 * expected, (len(lines), expected)
    # the recording went on through the freeze and the kill: gap-free and in order up to the last sample
    import pyxdf

    streams, _ = pyxdf.load_xdf(str(tmp_path / "session.xdf"), dejitter_timestamps=False)
    by_type = {stream["info"]["type"][0]: stream for stream in streams}
    recorded = by_type["EMG"]["time_series"][:, -1]
    recorded_stamps = by_type["EMG"]["time_stamps"]
    np.testing.assert_array_equal(np.diff(recorded), 1.0)
    assert recorded[-1] == sent - 1 and recorded_stamps[0] < frozen_at
    stamps = np.array([line["timestamp"] for line in lines])
    # windows end every hop from the first whole window on (times from the recording, which holds every sample from
    # before the freeze); each stretch's windows got their decisions (the worker's warm-up at the start may cost a
    # few, which is why the first stretch is not compared)
    end_counters = np.arange(-(-window // hop) * hop, sent + 1, hop) - 1
    first_recorded = int(recorded[0])
    ends = recorded_stamps[end_counters[end_counters >= first_recorded] - first_recorded]
    for start, stop in ((frozen_at, killed_at), (killed_at, np.inf)):
        windows = int(((ends > start) & (ends <= stop)).sum())
        decided = int(((stamps > start) & (stamps <= stop)).sum())
        assert windows > 10 and decided >= 0.7 * windows, (start, stop, windows, decided)
    assert {"Fatigue", "Quality", "Markers"} <= set(by_type)
    text = log.read_text()
    assert "view restarted" in text and "exited with -9" in text and "Traceback" not in text
    # the restarted view attached mid-session: its last dashboard (printed when the core ended it) has every sample
    final = out.read_text()
    final = final[final.rindex("NeuroFusion Monitor"):]
    assert f"samples {sent}" in final and "dropped 0" in final, final
    assert not [c for c in running_cores() if c["pid"] == core.pid]  # its folder and segment went with it
    assert not Path("/dev/shm", description["shm"]).exists()
