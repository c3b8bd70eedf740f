"""Per-stage processing time of the paper stages (adaptive filters, features, denoising autoencoder, LSTM
forecast) next to the fixed filters, per 200 ms window at a 50 ms hop, with process CPU % and memory.

    nice .venv/bin/python -m benchmarks.bench_stages --channels 8 64

Timings use one torch thread (the monitor's DSP thread shares two cores with the inference worker).
"""

from __future__ import annotations

import argparse

from benchmarks.common import emit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--fs", type=float, default=2048.0)
    parser.add_argument("--seconds", type=float, default=4.0, help="signal length streamed through the DSP stages")
    args = parser.parse_args()

    from monitor.commands.stages import profile_stages

    emit("stages", {"runs": [profile_stages(channels, args.fs, args.seconds) for channels in args.channels]})


if __name__ == "__main__":
    main()
