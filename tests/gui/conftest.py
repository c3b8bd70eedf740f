"""Fixtures: a real LSL stream of band-limited noise and a real MonitorPipeline reading it (Qt offscreen)."""

from __future__ import annotations

import gc
import time

import pytest

from simulators.electrodes import ElectrodeLayout
from tests.gui.streams import BandNoiseSource, LiveStream

DEAD_CHANNEL = 2
BAND_HZ = (60.0, 140.0)


def stop_pipeline(pipeline) -> None:
    pipeline.stop()


def wait_for(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def start_pipeline(stream: LiveStream):
    from monitor.pipeline import MonitorPipeline

    pipeline = MonitorPipeline(stream.resolve(), publish=False)
    pipeline.start()
    return pipeline


@pytest.fixture
def ring_stream():
    stream = LiveStream(BandNoiseSource(ElectrodeLayout.ring(8), band_hz=BAND_HZ, dead_channel=DEAD_CHANNEL)).start()
    yield stream
    stream.vanish()


@pytest.fixture
def ring_pipeline(ring_stream):
    pipeline = start_pipeline(ring_stream)
    yield pipeline
    stop_pipeline(pipeline)


@pytest.fixture
def grid_pipeline():
    stream = LiveStream(BandNoiseSource(ElectrodeLayout.grid(8, 8), band_hz=BAND_HZ), name="gui-grid").start()
    pipeline = start_pipeline(stream)
    yield pipeline
    stop_pipeline(pipeline)
    stream.vanish()


@pytest.fixture(scope="package", autouse=True)
def no_automatic_garbage_collection():
    """The window tests' Qt objects are collected in the Qt thread only, never by a pipeline or amplifier thread.

    Those threads allocate all the time, so the automatic collector would run in them and could destroy a closed
    test's pyqtgraph items while the Qt thread paints them (a segmentation fault in pytest-qt's event processing,
    2026-12-06; monitor/gui/collector.py does the same for the real window). Off for the whole package, as threads
    of one test may still run while the next begins."""
    was_enabled = gc.isenabled()
    gc.disable()
    yield
    gc.collect()
    if was_enabled:
        gc.enable()


@pytest.fixture(autouse=True)
def garbage_collected_after_each_test(no_automatic_garbage_collection):
    yield
    gc.unfreeze()  # what a test's run_window or session froze is the test's garbage too
    gc.collect()
