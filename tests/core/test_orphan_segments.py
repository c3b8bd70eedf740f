"""A core-state segment whose writer was killed before unlinking it (a snapshot's or a benchmark's publisher has no
runtime folder for `running_cores` to find) is removed at the next core or view start; live writers' are kept."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WRITER = """
import sys
from monitor.core.shared_state import RingSpec, SharedStateWriter
writer = SharedStateWriter({"trace": RingSpec(capacity=16, width=3)}, {"status": 4096}, meta={})
writer.beat()
print(writer.name, flush=True)
sys.stdin.readline()
"""


def test_a_killed_writers_segment_is_removed_and_a_live_one_kept(monkeypatch) -> None:
    from monitor.core import control
    from monitor.core.shared_state import RingSpec, SharedStateWriter

    monkeypatch.setattr(control, "ORPHAN_AFTER_S", 0.0)  # the heartbeat's age is not what is tested here
    child = subprocess.Popen([sys.executable, "-c", WRITER], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)  # fmt: skip
    live = SharedStateWriter({"trace": RingSpec(capacity=16, width=3)}, {"status": 4096}, meta={})
    try:
        assert child.stdout is not None
        orphan = child.stdout.readline().strip()
        assert Path("/dev/shm", orphan).exists()
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert Path("/dev/shm", orphan).exists()  # SIGKILL: nothing unlinked it
        removed = control.remove_orphaned_segments()
        assert orphan in removed and not Path("/dev/shm", orphan).exists()
        assert live.name not in removed and Path("/dev/shm", live.name).exists()
    finally:
        live.close()
        if child.poll() is None:
            child.kill()
