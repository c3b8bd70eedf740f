"""What the DSP thread does in the step that finishes a window and submits it to the worker (the decision path):
the signal-quality evaluation (every 0.5 s of samples) gets a wake-up of its own before the hop's end, and the
windows' masks and quality reports are those of an offline pass over the same samples (filtered data and features
to float rounding, as for any other chunking)."""

from __future__ import annotations

import time

import numpy as np

FS = 2048.0
CHUNK = 32  # samples per amplifier chunk


def test_quality_is_evaluated_off_the_step_that_finishes_a_window_and_windows_are_unchanged() -> None:
    from dsp.engine import DspEngine
    from dsp.ringbuffer import RingBuffer

    n_channels, n_samples = 16, int(FS * 4)
    signal = (np.random.default_rng(21).standard_normal((n_samples, n_channels)) * 30).astype(np.float32)
    signal[:, 5] = 0.0  # a flat channel: masked once the quality is evaluated
    timestamps = np.arange(n_samples) / FS
    buffer = RingBuffer(int(FS * 10), n_channels)
    live = DspEngine(buffer, FS)
    evaluations = 0
    evaluate = live.quality._evaluate

    def counted_evaluate() -> None:
        nonlocal evaluations
        evaluations += 1
        evaluate()

    live.quality._evaluate = counted_evaluate
    steps: list[tuple[int, int]] = []  # (windows finished, quality evaluations) per step of the thread
    results: list = []
    process = live.process

    def counting_process(samples: np.ndarray, stamps: np.ndarray, first_counter: int) -> list:
        before = evaluations
        finished = process(samples, stamps, first_counter)
        steps.append((len(finished), evaluations - before))
        results.extend(finished)
        return finished

    live.process = counting_process
    live.start()
    try:
        for start in range(0, n_samples, CHUNK):
            buffer.write(signal[start : start + CHUNK], timestamps[start : start + CHUNK])
            time.sleep(0.002)  # as an amplifier's chunks come
        deadline = time.monotonic() + 10.0
        while live.reader.next_counter < n_samples and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        live.stop()
        live.join(2.0)
    assert sum(count for _, count in steps) == n_samples // 1024  # every 0.5 s of samples, as before

    offline = DspEngine(RingBuffer(16, n_channels), FS).process(signal, timestamps, 0)
    assert [r.window.end_counter for r in results] == [r.window.end_counter for r in offline]
    assert not results[-1].usable[5] and results[-1].usable.sum() == n_channels - 1
    for got, expected in zip(results, offline, strict=True):
        np.testing.assert_array_equal(got.usable, expected.usable)
        np.testing.assert_array_equal(got.quality.rms_uv, expected.quality.rms_uv)
        # filters and features in other chunks: float rounding only (tests/dsp/test_engine.py's tolerances)
        np.testing.assert_allclose(got.window.data, expected.window.data, rtol=1e-5, atol=1e-4)
        for name, values in expected.features.items():
            np.testing.assert_allclose(got.features[name], values, rtol=1e-4, atol=1e-6, err_msg=name)


def test_the_thread_wakes_for_a_quality_evaluation_due_before_the_hops_end() -> None:
    from dsp.engine import DspEngine
    from dsp.ringbuffer import RingBuffer

    buffer = RingBuffer(int(FS * 4), 2)
    signal = (np.random.default_rng(3).standard_normal((2048, 2)) * 30).astype(np.float32)
    buffer.write(signal, np.arange(2048) / FS)
    engine = DspEngine(buffer, FS)
    assert engine.windower.hop_samples == 102

    def step(n: int) -> int:
        block = engine.reader.read(max_samples=n)
        engine.process(block.data, block.timestamps, block.first_counter)
        return engine._wake_after()

    assert step(1000) == 1019  # the hop ending at 1020 comes first; the evaluation is due at sample 1024
    assert step(40) == 1121  # evaluated at 1024 (in the step that read it); the next hop ends at 1122
    assert step(960) == 2039  # at 2000: the hop's end (2040) before the evaluation due at 2048
    assert step(40) == 2047  # at 2040: the evaluation before the hop ending at 2142 gets a wake-up of its own
    assert engine.quality.samples_until_evaluation() == 8
    assert step(8) == 2141  # evaluated at 2048, without a window: the hop's end next
