"""A recorded live session run as a subprocess by tests: a looping replay amplifier recorded by LabRecorder.

Prints ``recording <LabRecorderCLI pid>`` once LabRecorder writes, then streams until killed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("LSLAPICFG", str(REPO / "monitor" / "lsl_api.cfg"))
sys.path.insert(0, str(REPO))

FS = 1000.0
N_CHANNELS = 4


def session_signal(n_samples: int = 4000) -> np.ndarray:
    """The looped signal, reproducible by the test that reads the file back."""
    return np.random.default_rng(21).normal(0.0, 60.0, (n_samples, N_CHANNELS)).astype(np.float32)


def main() -> None:
    from monitor.recordings import Recording
    from monitor.recordings.record import SessionRecorder, bytes_per_second, session_source_ids
    from monitor.recordings.replay import replay_source
    from simulators.amplifier import Amplifier

    path, source_id = sys.argv[1], sys.argv[2]
    data = session_signal()
    recording = Recording(data, np.arange(len(data)) / FS, FS, [f"EMG{i}" for i in range(N_CHANNELS)],
                          ["microvolts"] * N_CHANNELS)  # fmt: skip
    amplifier = Amplifier(replay_source(recording, loop=True), name="crash-test", source_id=source_id)
    recorder = SessionRecorder(path, session_source_ids(source_id), bytes_per_second(N_CHANNELS, FS))
    recorder.start()
    print(f"recording {recorder.process_id}", flush=True)
    amplifier.run()


if __name__ == "__main__":
    main()
