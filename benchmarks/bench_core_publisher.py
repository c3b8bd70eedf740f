"""What publishing the core's state for views costs the core: CPU of the StatePublisher thread per second of signal.

    .venv/bin/python -m benchmarks.bench_core_publisher --channels 64 256 --seconds 10

A band-limited noise source streams on a real LSL outlet (tests/gui/streams.py, 2048 Hz); the real MonitorPipeline
reads it (no worker: DSP, features, fatigue, quality) and a StatePublisher copies raw and filtered samples, features
and the status document into shared memory while a view-side reader (RemotePipeline, no window) copies them out in
this process, as an attached view would in its own. The publisher's CPU is its own thread's (time.thread_time), so
the reader's and the pipeline's work are not in it.
"""

from __future__ import annotations

import argparse
import json
import time

from benchmarks.common import emit


def measure(channels: int, seconds: float, period_s: float = 0.01) -> dict[str, object]:
    from monitor.core.publisher import StatePublisher
    from monitor.core.shared_state import SharedStateReader
    from monitor.pipeline import MonitorPipeline
    from monitor.view_client import RemotePipeline
    from simulators.electrodes import ElectrodeLayout
    from tests.gui.streams import BandNoiseSource, LiveStream

    layout = ElectrodeLayout.ring(8) if channels == 8 else ElectrodeLayout.grid(channels // 16 or 1, 16)
    if channels == 64:
        layout = ElectrodeLayout.grid(8, 8)
    stream = LiveStream(BandNoiseSource(layout), name=f"bench-publisher-{channels}").start()
    pipeline = MonitorPipeline(stream.resolve(), publish=False)
    pipeline.start()
    publisher = StatePublisher(pipeline, period_s=period_s)
    cpu = {"seconds": 0.0, "calls": 0, "thread_first": None, "thread_last": 0.0}
    publish_once = publisher.publish_once

    def timed() -> None:
        started = time.thread_time()
        if cpu["thread_first"] is None:
            cpu["thread_first"] = started
        publish_once()
        cpu["thread_last"] = time.thread_time()  # the thread's CPU so far: its waits and wake-ups too
        cpu["seconds"] += cpu["thread_last"] - started
        cpu["calls"] += 1

    publisher.publish_once = timed  # type: ignore[method-assign]
    publisher.start()
    remote = RemotePipeline(SharedStateReader(publisher.name_in_shm), None).start()
    try:
        time.sleep(2.0)  # past the start-up
        cpu.update(seconds=0.0, calls=0, thread_first=None)
        samples_before = pipeline.acquisition.buffer.total_written
        time.sleep(seconds)
        signal_s = (pipeline.acquisition.buffer.total_written - samples_before) / pipeline.state.fs
        status_bytes = len(json.dumps(publisher.status()))
        view_behind = pipeline.acquisition.buffer.total_written - remote.acquisition.buffer.total_written
    finally:
        remote.stop()
        remote.reader.close()
        publisher.stop()
        pipeline.stop()
        stream.vanish()
    return {
        "channels": channels,
        "period_ms": round(period_s * 1000.0, 1),
        "signal_s": round(signal_s, 2),
        "publisher_cpu_ms_per_s": round(1000.0 * cpu["seconds"] / max(signal_s, 1e-9), 2),
        # the whole thread between its first and last publish of the measurement (waiting and waking included)
        "publisher_thread_cpu_ms_per_s": round(1000.0 * (cpu["thread_last"] - (cpu["thread_first"] or 0.0))
                                               / max(signal_s, 1e-9), 2),
        "publishes_per_s": round(cpu["calls"] / max(signal_s, 1e-9), 1),
        "status_document_bytes": status_bytes,
        "view_samples_behind_at_end": int(view_behind),
        "view_history_dropped": remote.dropped_history,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--period-ms", type=float, nargs="+", default=[10.0],
                        help="the publisher's shortest time between two publishes (each value measured in turn)")
    args = parser.parse_args()
    if args.seconds <= 0 or any(c not in (8, 64) and c % 16 for c in args.channels):
        parser.error("--seconds must be positive; --channels 8, 64 or a multiple of 16")
    runs = [measure(c, args.seconds, period / 1000.0) for c in args.channels for period in args.period_ms]
    emit("core_publisher_cost", {"runs": runs})


if __name__ == "__main__":
    main()
