"""The DSP thread's own logic, driven through DspEngine.process (the same code path the thread runs)."""

from __future__ import annotations

import time

import numpy as np

from dsp.engine import DspEngine, EngineSettings
from dsp.ringbuffer import RingBuffer

FS = 2048.0


def make_engine(channels: int) -> DspEngine:
    return DspEngine(RingBuffer(int(FS * 10), channels), FS, EngineSettings(mains_hz=50.0))


def noise(n: int, channels: int, seed: int = 0, scale: float = 20.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((n, channels)) * scale).astype(np.float32)


def test_chunking_does_not_change_windows_or_features():
    signal = noise(int(FS * 6), 4)
    signal[: int(FS * 3)] *= 0.05  # rest, then contraction; a saturated stretch and a flat one
    signal[int(FS * 4) : int(FS * 4.5), 1] = np.clip(signal[int(FS * 4) : int(FS * 4.5), 1], -10, 10)
    signal[int(FS * 5) :, 2] = 3.0
    times = np.arange(len(signal)) / FS
    whole = make_engine(4).process(signal, times, 0)
    engine = make_engine(4)
    ragged, position = [], 0
    for size in (5, 300, 1, 977, 1500, 32, 32, 500, 10_000):
        ragged += engine.process(signal[position : position + size], times[position : position + size], position)
        position += size
    assert [r.window.end_counter for r in ragged] == [r.window.end_counter for r in whole]
    for a, b in zip(whole, ragged, strict=True):
        np.testing.assert_allclose(a.window.data, b.window.data, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(a.features["MDF"], b.features["MDF"], rtol=1e-4)
        # masks and the fatigue tracker's view too: live and offline passes must decide alike
        np.testing.assert_array_equal(a.usable, b.usable)
        np.testing.assert_array_equal(a.fatigue.active, b.fatigue.active)
        assert a.fatigue.learning == b.fatigue.learning


def test_nan_burst_masks_channel_then_releases_it_and_never_reaches_windows():
    signal = noise(int(FS * 3), 3)
    signal[2048:2100, 1] = np.nan
    engine, times, results = make_engine(3), np.arange(len(signal)) / FS, []
    for start in range(0, len(signal), 64):  # live-sized chunks
        results += engine.process(signal[start : start + 64], times[start : start + 64], start)
    assert all(np.isfinite(r.window.data).all() for r in results)
    masked = [r for r in results if not r.usable[1]]
    assert masked, "a channel with NaN samples must be masked"
    assert all(r.usable[0] and r.usable[2] for r in results)
    # masked for windows that contain the burst (and the quality monitor's lag), usable again afterwards
    assert all(r.window.end_counter > 2048 for r in masked)
    assert results[-1].usable[1]


def test_flat_channel_is_masked_with_reason():
    signal = noise(int(FS * 2), 4)
    signal[:, 2] = 12.5  # electrode off: a constant
    results = make_engine(4).process(signal, np.arange(len(signal)) / FS, 0)
    last = results[-1]
    assert not last.usable[2] and last.usable[[0, 1, 3]].all()
    assert "flat" in last.quality.reasons[2]


def test_gap_restarts_filters_without_transient():
    engine = make_engine(1)
    before = noise(int(FS), 1, seed=1, scale=5.0) + 1000.0  # a large electrode offset
    engine.process(before, np.arange(len(before)) / FS, 0)
    after = noise(int(FS), 1, seed=2, scale=5.0) - 500.0  # the amplifier returns with another offset
    t_after = 10.0 + np.arange(len(after)) / FS  # 9 s later
    engine.process(after, t_after, len(before))
    filtered = engine.filtered.latest(len(after)).data[:, 0]
    assert engine.stats.gaps == 1
    # a 1500 µV step through a 20 Hz high-pass would ring at hundreds of µV; restarted, it stays at noise level
    assert np.abs(filtered).max() < 40.0


def test_spectral_features_follow_the_signal():
    t = np.arange(int(FS * 2)) / FS
    tone = (100 * np.sin(2 * np.pi * 120.0 * t))[:, None].astype(np.float32)
    results = make_engine(1).process(tone, t, 0)
    mdf = np.array([r.features["MDF"][0] for r in results[4:]])
    np.testing.assert_allclose(mdf, 120.0, atol=6.0)  # 5 Hz bins at 200 ms
    rms = np.array([r.features["RMS"][0] for r in results[4:]])
    np.testing.assert_allclose(rms, 100 / np.sqrt(2), rtol=0.03)


def test_adaptive_mains_removes_an_off_frequency_hum_the_fixed_notch_leaves():
    t = np.arange(int(FS * 8)) / FS
    emg = noise(len(t), 1, seed=5, scale=10.0)
    hum = (200 * np.sin(2 * np.pi * 50.3 * t))[:, None].astype(np.float32)  # mains drifted off its nominal 50 Hz

    def residual_hum(adaptive: bool) -> float:
        engine = DspEngine(RingBuffer(len(t), 1), FS, EngineSettings(mains_hz=50.0, adaptive_mains=adaptive))
        for start in range(0, len(t), 256):
            engine.process((emg + hum)[start : start + 256], t[start : start + 256], start)
        last = engine.filtered.latest(int(FS * 4))  # after the canceller has converged
        phase = 2 * np.pi * 50.3 * last.timestamps
        in_phase, quadrature = last.data[:, 0] @ np.sin(phase), last.data[:, 0] @ np.cos(phase)
        return float(np.hypot(in_phase, quadrature) * 2 / len(phase))  # hum amplitude left, µV

    fixed, adaptive = residual_hum(False), residual_hum(True)
    assert adaptive < fixed / 10, (fixed, adaptive)


def test_thread_wakes_once_per_hop_and_finishes_each_window_with_its_last_chunk():
    buffer = RingBuffer(int(FS * 10), 2)
    engine = DspEngine(buffer, FS, EngineSettings(mains_hz=50.0))
    hop, window = engine.windower.hop_samples, engine.windower.window_samples
    finished: list[int] = []
    engine.subscribe(lambda results: finished.extend(r.window.end_counter for r in results))
    steps: list[int] = []
    real_process = engine.process

    def counting_process(samples: np.ndarray, timestamps: np.ndarray, first_counter: int) -> list:
        steps.append(len(timestamps))
        return real_process(samples, timestamps, first_counter)

    engine.process = counting_process  # type: ignore[method-assign]
    signal, chunk, n_chunks = noise(32 * 64, 2), 32, 64
    engine.start()
    try:
        for index in range(n_chunks):
            start, stop = index * chunk, (index + 1) * chunk
            buffer.write(signal[start:stop], np.arange(start, stop) / FS)
            time.sleep(0.002)  # as an amplifier's chunks come: time for a thread woken per chunk to take each one
            ends = [end for end in range(window, stop + 1) if end % hop == 0 and end > start]
            deadline = time.monotonic() + 5.0
            # a window is finished from the chunk that holds its last sample, with no later chunk written
            while ends and ends[-1] not in finished and time.monotonic() < deadline:
                time.sleep(0.0005)
            assert not ends or ends[-1] in finished, (stop, finished[-3:])
    finally:
        engine.stop()
        engine.join(2.0)
    assert sum(steps) >= 32 * 63  # every sample was read, the last chunk at the latest by the wait's timeout
    # once per hop (20 hop ends in 2048 samples) plus a few timeouts on a loaded machine, not once per chunk (64)
    assert len(steps) <= 32, steps


def test_sample_listeners_and_wake_per_chunk_are_woken_by_every_chunk():
    buffer = RingBuffer(int(FS), 1)
    buffer.write(np.zeros((150, 1), np.float32), np.arange(150) / FS)
    engine = DspEngine(buffer, FS, start_counter=150)
    assert engine.windower.hop_samples == 102
    assert engine._wake_after() == 203  # the last sample of the hop ending at 204
    assert DspEngine(buffer, FS, start_counter=150, wake_per_chunk=True)._wake_after() == 150
    engine.add_sample_listener(lambda samples, timestamps, first_counter: None)
    assert engine._wake_after() == 150
