"""A live needle verdict needs activity, as on the surface path: baseline noise at the learned rest level is
published as "rest" (label_index REST_INDEX), and nothing is a condition before that level is known. Cheap: a
stand-in pipeline (raw and filtered ring buffers, a fatigue report) and a stand-in model; no LSL stream."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest

from dsp.fatigue import FatigueSettings
from dsp.ringbuffer import RingBuffer
from monitor.decision_history import DecisionRing, MuscleState
from monitor.needle_live import LiveNeedleVerdicts
from monitor.outlets import LEARNING_INDEX, REST_INDEX
from monitor.pipeline import LEARNING_LABEL, REST_LABEL

FS = 8000.0
REST_RMS = 5.0  # µV, the rest level the stand-in fatigue tracker has learned


class _Outlets:
    def __init__(self) -> None:
        self.label_indices: list[int] = []

    def push_decision(self, classes, probabilities, timestamp, label_index) -> None:  # noqa: ANN001
        self.label_indices.append(label_index)


class _Model:
    model_id = "needle-stand-in"

    def predict_window(self, samples: np.ndarray, fs: float) -> dict:
        return {"probabilities": {"healthy": 0.1, "myopathy": 0.7, "neuropathy": 0.2}, "model_id": self.model_id,
                "label": "myopathy"}


def _pipeline(signal: np.ndarray, learning: bool = False, rest_rms: float = REST_RMS) -> SimpleNamespace:
    raw, filtered = RingBuffer(len(signal), 1), RingBuffer(len(signal), 1)
    times = np.arange(len(signal)) / FS
    raw.write(signal[:, None], times)
    filtered.write(signal[:, None], times)  # already zero-mean: the engine's high-pass would leave it as it is
    fatigue = SimpleNamespace(learning=learning, rest_rms=np.array([np.nan if learning else rest_rms]),
                              active=np.array([False]))
    state = SimpleNamespace(fs=FS, lock=threading.Lock(), fatigue=fatigue, decisions=DecisionRing(64),
                            latencies_s=[])
    return SimpleNamespace(acquisition=SimpleNamespace(buffer=raw, arrival_of=lambda counter: None), state=state,
                           engine=SimpleNamespace(filtered=filtered, fatigue=SimpleNamespace(
                               settings=FatigueSettings())), outlets=_Outlets())  # fmt: skip


def _judge(signal: np.ndarray, learning: bool = False, rest_rms: float = REST_RMS) -> tuple[dict, SimpleNamespace]:
    pipeline = _pipeline(signal, learning, rest_rms)
    verdicts = LiveNeedleVerdicts(pipeline, _Model())
    result = verdicts.judge(len(signal))
    assert result is not None and verdicts.published == 1
    return result, pipeline


def _baseline(seconds: float = 2.0) -> np.ndarray:
    return np.random.default_rng(0).normal(0.0, REST_RMS, int(seconds * FS))


def test_baseline_noise_at_rest_gets_no_condition() -> None:
    result, pipeline = _judge(_baseline())
    assert result["muscle"] == MuscleState.RELAXED.value and result["verdict"] == REST_LABEL
    assert pipeline.state.decisions.latest().label == REST_LABEL
    assert pipeline.outlets.label_indices == [REST_INDEX]


def test_motor_unit_potentials_get_the_model_verdict() -> None:
    signal = _baseline()
    for start in range(200, len(signal) - 100, 800):  # a unit firing at 10 Hz, 500 µV biphasic, ~5 ms
        signal[start:start + 40] += 500.0 * np.sin(np.linspace(0, 2 * np.pi, 40))
    result, pipeline = _judge(signal)
    assert result["muscle"] == MuscleState.CONTRACTING.value and result["verdict"] == "myopathy"
    assert pipeline.outlets.label_indices == [1]


def test_no_condition_while_the_rest_level_is_being_learned() -> None:
    result, pipeline = _judge(_baseline(), learning=True)
    assert result["verdict"] == LEARNING_LABEL and pipeline.outlets.label_indices == [LEARNING_INDEX]


def test_a_weak_needle_contraction_counts_when_the_stream_started_inside_it() -> None:
    # a stream that starts inside a contraction: the tracker learned the contraction as rest and capped it at the
    # surface ceiling (20 µV); a weak needle contraction at 50 µV RMS (16 % of the healthy clinical recordings' 0.5 s
    # windows sit below the 80 µV that ceiling would gate at) is still a contraction under the needle ceiling
    settings = FatigueSettings()
    assert settings.max_rest_rms == 20.0  # the surface ceiling is untouched
    weak = np.random.default_rng(1).normal(0.0, 50.0, int(2.0 * FS))
    assert settings.activity_ratio * settings.needle_max_rest_rms < 50.0 < settings.activity_ratio * 20.0
    result, pipeline = _judge(weak, rest_rms=20.0)
    assert result["muscle"] == MuscleState.CONTRACTING.value and result["verdict"] == "myopathy"
    # and baseline noise of a noisier needle amplifier (twice the quietest clinical stretches) still reads as rest
    noise = np.random.default_rng(2).normal(0.0, 2 * 3.9, int(2.0 * FS))
    result, _ = _judge(noise, rest_rms=20.0)
    assert result["verdict"] == REST_LABEL


def _fibrillations(signal: np.ndarray, rate_hz: float = 8.0, amplitude_uv: float = 100.0) -> np.ndarray:
    """Regular brief biphasic spikes (2 ms, initial positive) added to ``signal``: a fibrillating fibre at rest."""
    out = signal.copy()
    width = int(0.002 * FS)
    for start in np.arange(0.05, len(signal) / FS - 0.01, 1.0 / rate_hz):
        i = int(start * FS)
        out[i:i + width] -= amplitude_uv / 2 * np.sin(np.linspace(0, 2 * np.pi, width))
    return out


def test_spontaneous_potentials_at_rest_are_not_a_silent_rest() -> None:
    from monitor.needle_live import SPONTANEOUS_LABEL

    result, pipeline = _judge(_fibrillations(_baseline()))
    # still no condition (the model was trained on contractions) and the window is rest on the outlet
    assert result["muscle"] == MuscleState.RELAXED.value and pipeline.outlets.label_indices == [REST_INDEX]
    assert result["verdict"] == SPONTANEOUS_LABEL == pipeline.state.decisions.latest().label
    assert result["spontaneous"]["flagged"] and 14 <= result["spontaneous"]["count"] <= 16  # 8 Hz over 2 s
    # plain baseline noise is never flagged, nor a lone spike (a needle movement, an end-plate spike)
    for quiet in (_baseline(), _fibrillations(_baseline(), rate_hz=0.4)):
        result, _ = _judge(quiet)
        assert result["verdict"] == REST_LABEL and not result["spontaneous"]["flagged"]


def test_simulated_denervated_fibres_at_rest_are_flagged_and_healthy_rest_is_not() -> None:
    # the simulator's fibrillating fibres (severe neuropathy, tissue "fibres"; 0.5-15 Hz, regular) at 0 %MVC, through
    # the engine's needle-mode filters; noise 40 dB under the contraction level (~2-7 µV, as the quietest clinical
    # stretches), 2 s at 8 kHz (~1.5 s of CPU each)
    from dsp.filters import default_chain
    from monitor.needle_live import SPONTANEOUS_LABEL
    from simulators.emg import EmgSimulator, SimulationConfig

    for condition, severity, expected in (("neuropathy", "severe", SPONTANEOUS_LABEL), ("healthy", "mild", REST_LABEL)):
        config = SimulationConfig(layout="needle", fs=FS, condition=condition, severity=severity, tissue="fibres",
                                  profile="hold", mvc_percent=0.0, seed=3, fatigue_rate=0.0, snr_db=40.0)
        raw = EmgSimulator(config).generate(2.0)
        filtered = default_chain(FS, 1, mode="needle", mains_hz=50.0).process(raw.astype(np.float64))[0][:, 0]
        result, _ = _judge(filtered.astype(np.float64))
        assert result["muscle"] == MuscleState.RELAXED.value and result["verdict"] == expected, condition


def test_the_engines_tracker_uses_the_needle_rest_ceiling_in_needle_mode() -> None:
    # a needle stream that starts inside a weak contraction (50 µV RMS): the tracker learns it as rest; in needle
    # mode it is capped at 8 µV (x4: 32 µV), so the contraction reads as one; surface mode keeps its 20 µV ceiling
    # (its 20-450 Hz band leaves ~14 µV of this white signal: learnt as rest, uncapped, no contraction)
    from dsp.engine import DspEngine, EngineSettings

    weak = np.random.default_rng(4).normal(0.0, 50.0, (int(5.0 * FS), 1))
    times = np.arange(len(weak)) / FS
    for mode, ceiling, contracting in (("needle", 8.0, True), ("surface", 20.0, False)):
        engine = DspEngine(RingBuffer(1, 1), FS, EngineSettings(mode=mode), filtered_seconds=1.0)
        assert engine.fatigue.settings.max_rest_rms == ceiling
        last = list(engine.process(weak, times, 0))[-1].fatigue
        assert not last.learning and bool(last.active[0]) is contracting, mode
        if mode == "needle":
            assert last.rest_rms[0] == pytest.approx(8.0)
        else:
            assert 8.0 < last.rest_rms[0] < 20.0
    engine.update_settings(mode="needle")  # the ceiling follows a mode switched live
    assert engine.fatigue.settings.max_rest_rms == 8.0
