"""The state views read while a returned stream's samples wait for its rate to be confirmed (shared by the
headless and GUI view tests): 2 s held at 2048 Hz, 1500 samples already pushed out of the hold, none lost by the
DSP reader, so a view that forgot the hold would say "dropped 0"."""

from __future__ import annotations

from types import SimpleNamespace

from dsp.engine import EngineSettings, EngineStats
from monitor.pipeline import MonitorState

FS = 2048.0
HELD = 4096
UNCONFIRMED_DROPPED = 1500
STORED = 20480


def confirming_pipeline(**acquisition_changes: object) -> SimpleNamespace:
    acquisition = SimpleNamespace(
        signal_lost=True, held_samples=HELD, unconfirmed_dropped=UNCONFIRMED_DROPPED, incompatible=None,
        stream=SimpleNamespace(fs=FS), buffer=SimpleNamespace(total_written=STORED), signal_lost_events=1,
    )  # fmt: skip
    for name, value in acquisition_changes.items():
        setattr(acquisition, name, value)
    state = MonitorState(stream_name="amp", fs=FS, n_channels=3, channel_labels=["a", "b", "c"])
    engine = SimpleNamespace(
        reader=SimpleNamespace(dropped=0), profiler=None, settings=EngineSettings(), stats=EngineStats(gaps=1)
    )
    return SimpleNamespace(state=state, client=None, acquisition=acquisition, engine=engine)
