"""An LSL player run as a subprocess by tests: the simulated amplifier with the sample index in its last channel.

The index channel proves end to end that the ring buffer lost and duplicated nothing (MNE-LSL's test idea).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("LSLAPICFG", str(REPO / "monitor" / "lsl_api.cfg"))
sys.path.insert(0, str(REPO))


class IndexedSource:
    """Wraps a source and appends a channel carrying each sample's index (exact in float32 up to 2**24)."""

    def __init__(self, inner, start_index: int = 0) -> None:
        self.inner = inner
        self.fs = inner.fs
        self.n_channels = inner.n_channels + 1
        self.channel_labels = list(inner.channel_labels) + ["INDEX"]
        self.channel_types = ["EMG"] * inner.n_channels + ["MISC"]
        self.layout = inner.layout  # of the EMG channels; the INDEX channel is typed MISC and kept off the model
        self._next = start_index

    def read(self, n: int) -> np.ndarray:
        index = np.arange(self._next, self._next + n, dtype=np.float32)[:, None]
        self._next += n
        return np.hstack([self.inner.read(n), index])


class FaultySource(IndexedSource):
    """Electrode faults on known channels from ``start_s`` on: NaN/Inf bursts on E02, E03 flat (lifted off), E04
    saturated at the amplifier's rail, E05 nothing but mains pick-up."""

    def __init__(self, inner, start_s: float) -> None:
        super().__init__(inner)
        self.start = int(start_s * inner.fs)

    def read(self, n: int) -> np.ndarray:
        first = self._next
        data = super().read(n)
        index = np.arange(first, first + n)
        faulty = index >= self.start
        burst = faulty & ((index - self.start) % int(self.fs) < 40)  # 40 bad samples every second
        data[burst, 1] = np.where(index[burst] % 2 == 0, np.nan, np.inf)
        data[faulty, 2] = 3.0
        data[faulty, 3] = np.clip(data[faulty, 3] * 20.0, -150.0, 150.0)  # an overdriven input clipping at the rail
        data[faulty, 4] = 400.0 * np.sin(2 * np.pi * 50.0 * index[faulty] / self.fs)
        return data


def start_player(source_id: str, duration_s: float, **options: object) -> subprocess.Popen:
    """This script in a subprocess; ``options`` are its flags (``start_index=5`` -> ``--start-index 5``,
    ``no_index=True`` -> ``--no-index``). Its stdout ends with ``sent N``."""
    command = [sys.executable, __file__, "--source-id", source_id, "--duration", str(duration_s)]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            command.append(flag)
        elif value is not None and value is not False:
            command += [flag, str(value)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def stop_player(player: subprocess.Popen, timeout_s: float = 40.0) -> int:
    """End a player now (or let it finish) and return how many samples it sent."""
    if player.poll() is None:
        player.terminate()
    return int(player.communicate(timeout=timeout_s)[0].split()[-1])


def wait_until(condition: Callable[[], object], timeout_s: float) -> float | None:
    """Seconds until ``condition()`` held, or None if it never did within the timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if condition():
            return time.monotonic() - start
        time.sleep(0.02)
    return None


def main() -> None:
    from simulators.amplifier import Amplifier
    from simulators.emg import EmgSimulator, SimulationConfig

    parser = argparse.ArgumentParser()
    parser.add_argument("--source-id", required=True)
    parser.add_argument("--name", default="test-player", help="the stream's name (a renamed return, say)")
    parser.add_argument("--layout", default="ring8")
    parser.add_argument("--fs", type=float, default=2048.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--chunk", type=int, default=32)
    parser.add_argument("--wait-consumer", type=float, default=20.0)
    parser.add_argument("--no-index", action="store_true")
    parser.add_argument("--start-index", type=int, default=0, help="first value of the index channel")
    parser.add_argument("--faults-at", type=float, metavar="S", help="electrode faults from S seconds (FaultySource)")
    args = parser.parse_args()
    simulator = EmgSimulator(SimulationConfig(layout=args.layout, fs=args.fs, seed=3))
    if args.faults_at is not None:
        source = FaultySource(simulator, args.faults_at)
    else:
        source = simulator if args.no_index else IndexedSource(simulator, args.start_index)
    amplifier = Amplifier(source, name=args.name, source_id=args.source_id, chunk_samples=args.chunk)
    # start the clock only once the monitor listens, so the stream's duration is exactly what it receives
    # SIGTERM ends the stream early and cleanly (still "sent N"): a test that is done before --duration stops it
    # rather than waiting out a duration padded for a loaded machine
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    amplifier.wait_for_consumers(args.wait_consumer)
    sent = amplifier.run(duration_s=args.duration, stop_event=stop)
    amplifier.linger()
    print(f"sent {sent}", flush=True)


if __name__ == "__main__":
    main()
