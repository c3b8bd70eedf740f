"""Live needle latency: from a needle stream's sample to the needle model's verdict on it, published.

    .venv/bin/python -m benchmarks.bench_needle_live --duration 20

A real clinical needle recording (default: a healthy biceps of ../shared/data/needle-emg-clinical, 32768 Hz) is
replayed in real time by `neurofusion replay --loop` in a subprocess, as an LSL amplifier pushing chunks of
``--chunk`` samples. This process runs what `neurofusion monitor` runs on such a stream: the acquisition, the DSP
engine in needle mode and ``LiveNeedleVerdicts`` with the bundled needle model, which every hop (0.25 s) takes the
newest 5 s of raw samples (``MODEL_STRETCH_S``; from 2 s on while a stream is younger), resamples them to NEEDLE_FS
and publishes the verdict on the decisions outlet.

"sample_time_to_verdict" runs from the window's last sample's own time stamp to the verdict pushed on the outlet
(the figure the monitor itself records per decision); "sample_to_verdict" starts instead when the amplifier pushed
the chunk holding that sample (a chunk leaves when its last sample is due). Breakdown: LSL and buffering (pushed ->
in the ring buffer), wait and hand-over (in the buffer -> the verdict thread starts on it), model (resampling,
features, classifier: ``predict_recording``), publication (LSL push and history).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, emit

DEFAULT_FILE = REPO.parent / "shared" / "data" / "needle-emg-clinical" / "02_Biceps Brachii" / "Healthy" / (
    "EMG _203 _02_ RB_Hea.asc.xz")


def percentiles(values_s: np.ndarray) -> dict[str, float]:
    values = np.asarray(values_s, dtype=np.float64) * 1000.0
    if not values.size:
        return {}
    return {f"p{q}": round(float(np.percentile(values, q)), 2) for q in (50, 95, 99)} | {
        "max": round(float(values.max()), 2)}


def measure(path: Path, duration_s: float, chunk: int, model_path: str | None = None) -> dict[str, object]:
    from dsp.engine import EngineSettings
    from monitor.acquisition import resolve_stream
    from monitor.needle_live import LiveNeedleVerdicts, needle_classes
    from monitor.pipeline import MonitorPipeline
    from monitor.recordings import open_recording
    from monitor.recordings.needle import load_condition_model

    model = load_condition_model(model_path)
    if model is None:
        raise SystemExit("no needle model in this installation (models/needle_model.py)")
    recording = open_recording(path)
    source_id = f"bench-needle-{uuid.uuid4().hex[:8]}"
    player = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "replay", str(path), "--loop", "--duration", str(duration_s),
         "--source-id", source_id, "--chunk-samples", str(chunk), "--wait-for-consumer", "60"],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    try:
        stream = resolve_stream(source_id=source_id, timeout_s=30)
        pipeline = MonitorPipeline(stream, settings=EngineSettings(mode="needle"), classes=needle_classes(model))
        pipeline.start()
        verdicts = LiveNeedleVerdicts(pipeline, model).start()
        player.communicate(timeout=duration_s + 90)
        time.sleep(0.5)
        verdicts.stop()
        pipeline.stop()
    finally:
        if player.poll() is None:
            player.kill()
    decisions = list(pipeline.state.decisions)
    measured = decisions[2:]  # the first verdicts pay for imports and caches warming up
    fs = recording.fs
    last_sample = np.array([d.sequence - 1 for d in measured])
    waits_in_outlet = ((last_sample // chunk + 1) * chunk - 1 - last_sample) / fs
    from_sample = np.array([d.latency_s for d in measured])
    acquisition = np.array([np.nan if d.acquisition_s is None else d.acquisition_s for d in measured])
    expected = int((duration_s * fs - verdicts.window_samples) // verdicts.hop_samples) + 1
    return {
        "file": path.name,
        "fs": fs,
        "model_id": measured[0].model_id if measured else None,
        "amplifier_chunk_samples": chunk,
        "verdict_window_s": verdicts.window_samples / fs,  # the rest gate's stretch
        "model_stretch_s": verdicts.stretch_samples / fs,  # what the model reads (newest 5 s, from 2 s on)
        "verdict_hop_s": verdicts.hop_samples / fs,
        "verdicts": len(decisions),
        "expected_verdicts": expected,
        "skipped": verdicts.skipped,
        "errors": verdicts.errors,
        "dropped_samples": pipeline.engine.reader.dropped,
        "sample_to_verdict_ms": percentiles(from_sample - waits_in_outlet),
        "sample_time_to_verdict_ms": percentiles(from_sample),
        "breakdown_ms": {
            "lsl_and_buffering": percentiles((acquisition - waits_in_outlet)[np.isfinite(acquisition)]),
            "wait_and_hand_over": percentiles(np.array([d.dsp_s for d in measured if d.dsp_s is not None])),
            "model": percentiles(np.array([d.worker_s for d in measured])),
            "publication": percentiles(np.array([d.publication_s for d in measured if d.publication_s is not None])),
        },
        "labels": {label: sum(d.label == label for d in decisions) for label in {d.label for d in decisions}},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE, help="needle recording to replay (looped)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of live stream (default 20)")
    parser.add_argument("--chunk", type=int, default=32, help="samples per amplifier push (default 32)")
    parser.add_argument("--model", help="needle model (default: the bundled one)")
    args = parser.parse_args()
    if args.duration < 4 or args.chunk < 1:
        parser.error("--duration must be >= 4 s and --chunk positive")
    emit("needle_live_latency", measure(args.file, args.duration, args.chunk, args.model))


if __name__ == "__main__":
    main()
