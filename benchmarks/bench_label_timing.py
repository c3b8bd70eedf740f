"""How far the Myo gesture labels lead the muscle (see models/label_timing.py); JSON out.

    .venv/bin/python -m benchmarks.bench_label_timing [--data ../shared/data/myo-gestures]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.common import REPO, emit


def main() -> None:
    import numpy as np

    from models.datasets import MYO_FS, filter_like_pipeline
    from models.label_timing import activity_lags, summarise_lags

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "myo-gestures"))
    args = parser.parse_args()
    sessions, all_on, all_off = {}, [], []
    for session in sorted(p for p in Path(args.data).iterdir() if p.is_dir()):
        on, off = [], []
        for path in sorted(session.glob("*.txt")):
            table = np.loadtxt(path, delimiter=",")
            onsets, offsets = activity_lags(filter_like_pipeline(table[:, :8], MYO_FS), table[:, 8].astype(int), MYO_FS)
            on.append(onsets)
            off.append(offsets)
        sessions[session.name] = summarise_lags(np.concatenate(on), np.concatenate(off))
        all_on += on
        all_off += off
    emit("label_timing", {"data": args.data, "sessions": sessions,
                          "all": summarise_lags(np.concatenate(all_on), np.concatenate(all_off))})


if __name__ == "__main__":
    main()
