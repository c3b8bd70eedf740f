"""The DSP step sends each finished window to the worker before computing its features and fatigue update (issue
21: the worker's time overlaps the rest of the step), so a quick reply can reach the decisions thread before its
window's muscle state exists. Each decision must still carry the muscle state of its own window: it waits for it,
never takes another window's state or a default, and a reply whose state can never come is not published."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
import pytest

STATES = 3  # windows cycle through learning, relaxed, contracting (by their hop number)


class AnsweringClient:
    """Stands in for the inference client: answers each window at once, inside the DSP step that submits it (before
    that step's fatigue update), as a worker faster than the rest of the step would."""

    def __init__(self) -> None:
        self._replies: list = []
        self._ready = threading.Condition()
        self.submitted: list[int] = []

    def submit(self, window: np.ndarray, last_timestamp: float, sequence: int, fs: float, mask: np.ndarray) -> None:
        from monitor.inference.client import Decision

        self.submitted.append(sequence)
        probabilities = np.array([0.7, 0.2, 0.1], dtype=np.float32)
        reply = Decision("bed", sequence, last_timestamp, probabilities, "myopathy", ("myopathy", "neuropathy",
                         "healthy"), np.ones(len(window), np.float32), "stand-in", 0.1, 0.1, 0.0, 1)  # fmt: skip
        with self._ready:
            self._replies.append(reply)
            self._ready.notify_all()

    def poll(self, timeout_s: float = 0.0) -> list:
        with self._ready:
            if not self._replies and timeout_s > 0:
                self._ready.wait(timeout_s)
            replies, self._replies = self._replies, []
        return replies


def _pipeline_with_varying_muscle(fail_after: int | None = None) -> tuple:
    """A pipeline on a live 16-channel stream whose fatigue update takes 20 ms (so every reply comes first) and
    whose muscle state changes from window to window; ``fail_after`` windows, the update raises (the DSP thread
    dies between a submit and that window's muscle state)."""
    from monitor.pipeline import MonitorPipeline, muscle_state
    from simulators.electrodes import ElectrodeLayout
    from tests.gui.streams import BandNoiseSource, LiveStream

    stream = LiveStream(BandNoiseSource(ElectrodeLayout.grid(4, 4)), name="submit-first").start()
    client = AnsweringClient()
    pipeline = MonitorPipeline(stream.resolve(), client=client, publish=False)
    engine = pipeline.engine
    update = engine.fatigue.update_features
    updates = 0

    def slow_varying_update(stream_time: float, features: dict, usable: np.ndarray):
        nonlocal updates
        updates += 1
        if fail_after is not None and updates > fail_after:
            raise RuntimeError("the DSP step failed after submitting its window")
        time.sleep(0.02)
        report = update(stream_time, features, usable)
        kind = int(round(stream_time * engine.fs)) // engine.windower.hop_samples % STATES
        active = np.zeros(engine.n_channels, bool)
        active[: kind - 1] = kind == 2
        return replace(report, learning=kind == 0, rest_rms=np.full(engine.n_channels, 5.0), active=active)

    engine.fatigue.update_features = slow_varying_update
    expected: dict[int, object] = {}  # window end counter -> its own muscle state, as the step computed it
    engine.subscribe(lambda results: expected.update(
        (r.window.end_counter, muscle_state(r, pipeline.model_channels)) for r in results))  # fmt: skip
    return stream, client, pipeline, expected


def test_every_decision_carries_its_own_windows_muscle_state() -> None:
    from monitor.pipeline import verdict

    stream, client, pipeline, expected = _pipeline_with_varying_muscle()
    pipeline.start()
    try:
        deadline = time.monotonic() + 20.0
        while len(pipeline.state.decisions) < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        pipeline.stop()
        stream.vanish()
    decisions = list(pipeline.state.decisions)
    assert len(decisions) >= 30
    assert {decision.muscle for decision in decisions} == set(expected.values()) and len(set(expected.values())) == 3
    for decision in decisions:
        assert decision.muscle is expected[decision.sequence], decision.sequence
        assert decision.label == verdict("myopathy", expected[decision.sequence])
    # the replies did come before their states: the decisions thread waited for them (once per step's batch)
    assert pipeline.muscle_waits >= 1 and pipeline.undecided == 0


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the DSP thread's failure
def test_a_reply_whose_muscle_state_never_comes_is_not_published() -> None:
    stream, client, pipeline, expected = _pipeline_with_varying_muscle(fail_after=10)
    pipeline.start()
    try:
        deadline = time.monotonic() + 20.0
        while pipeline.engine.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pipeline.engine.is_alive()
        waited = time.monotonic()
        while not pipeline.undecided and time.monotonic() - waited < 5.0:
            time.sleep(0.05)
    finally:
        stopping = time.monotonic()
        pipeline.stop()
        stream.vanish()
    assert time.monotonic() - stopping < 3.0  # the decisions thread was not left waiting
    # the failing step submitted its windows and ended without their states: those replies are not published
    published = [decision.sequence for decision in pipeline.state.decisions]
    assert sorted(published) == sorted(expected) and len(published) >= 1
    assert pipeline.undecided == len(client.submitted) - len(expected) >= 1
