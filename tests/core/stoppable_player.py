"""The indexed test player (tests/players.py) streaming until SIGTERM instead of for a fixed duration, so a test
streams exactly as long as its steps take on the machine it runs on (no fixed duration padded for a loaded machine).
Its stdout ends with ``sent N`` as the fixed-duration player's does."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def start_stoppable_player(source_id: str, fs: float = 2048.0, longest_s: float = 120.0) -> subprocess.Popen:
    """This script in a subprocess: it starts streaming when a consumer connects; SIGTERM ends it cleanly."""
    command = [sys.executable, __file__, source_id, str(fs), str(longest_s)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def main() -> None:
    from simulators.amplifier import Amplifier
    from simulators.emg import EmgSimulator, SimulationConfig
    from tests.players import IndexedSource

    source_id, fs, longest_s = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    source = IndexedSource(EmgSimulator(SimulationConfig(layout="ring8", fs=fs, seed=3)))
    amplifier = Amplifier(source, name="test-player", source_id=source_id, chunk_samples=32)
    amplifier.wait_for_consumers(60.0)
    sent = amplifier.run(duration_s=longest_s, stop_event=stop)
    amplifier.linger()
    print(f"sent {sent}", flush=True)


if __name__ == "__main__":
    main()
