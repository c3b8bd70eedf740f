"""Checksums of a few legacy simulations: proof that a change to the simulator left the samples the bundled surface
model was trained on (and the needle tests were built on) untouched.

    nice .venv/bin/python -m benchmarks.bench_sim_checksum

Prints the sha256 (first 16 hex digits) of 2 s of float32 samples per case; docs/simulator.md lists the values of
simulator version 2026-11-24.3, which every later commit of the legacy path must reproduce on this machine.
"""

from __future__ import annotations

import hashlib

import numpy as np

from benchmarks.common import emit

CASES = {
    "ring8_myopathy_gestures_seed3": {"layout": "ring8", "condition": "myopathy", "profile": "gestures", "seed": 3},
    "grid8x8_neuropathy_hold60_seed1": {
        "layout": "grid8x8", "condition": "neuropathy", "profile": "hold", "mvc_percent": 60, "seed": 1,
    },
    "ring8_healthy_hold30_200hz_seed5": {
        "layout": "ring8", "condition": "healthy", "profile": "hold", "mvc_percent": 30, "fs": 200.0, "seed": 5,
    },
    "needle_neuropathy_hold10_10khz_seed4": {
        "layout": "needle", "fs": 10000.0, "condition": "neuropathy", "profile": "hold", "mvc_percent": 10, "seed": 4,
    },
}


def main() -> None:
    from simulators.emg import SIMULATOR_VERSION, EmgSimulator, SimulationConfig

    sums = {}
    for name, settings in CASES.items():
        data = EmgSimulator(SimulationConfig(**settings)).generate(2.0)
        sums[name] = hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()[:16]
    emit("sim_checksum", {"simulator_version": SIMULATOR_VERSION, "sha256_16": sums})


if __name__ == "__main__":
    main()
