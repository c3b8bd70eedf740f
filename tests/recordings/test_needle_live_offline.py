"""Live equals offline: a needle stream carrying a real clinical recording gets, once its 5 s are in, the verdict
`neurofusion analyze FILE --mode needle` gives on that file (the condition model's statistics over the same 19
windows), one file per class. The live path runs in-process (LiveNeedleVerdicts.judge on a stand-in pipeline whose
ring buffers hold the file's samples, as the acquisition would); no LSL stream, one 5 s verdict per file: cheap.

Before, the live verdict judged the newest 2 s (7 windows) and read neuropathy file EMG _351 as healthy (the
tester's report; docs/needle-emg.md, "Live verdicts and analyze")."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest

from dsp.fatigue import FatigueSettings
from dsp.ringbuffer import RingBuffer
from monitor.decision_history import DecisionRing
from tests.conftest import NEEDLE_CLINICAL, needs_needle_clinical

# one recording per class; the neuropathy one is the tester's (analyze: neuropathy 72 %, live 2 s: healthy)
FILES = (
    "02_Biceps Brachii/Healthy/EMG _203 _02_ RB_Hea.asc.xz",
    "02_Biceps Brachii/Myopathy/EMG _303 _52_ RB_Myo.asc.xz",
    "02_Biceps Brachii/Neuropathy/EMG _351 _48_ RB_Neu.asc.xz",
)


def _stand_in_pipeline(samples: np.ndarray, fs: float) -> SimpleNamespace:
    """What LiveNeedleVerdicts reads of a pipeline: the raw ring buffer (30 s, as the acquisition's), the engine's
    filtered copy (only its RMS is read, for the rest gate) and a fatigue report with a learned rest level."""
    capacity = int(30 * fs)
    raw, filtered = RingBuffer(capacity, 1), RingBuffer(capacity, 1)
    times = np.arange(len(samples)) / fs
    raw.write(samples[:, None], times)
    filtered.write((samples - samples.mean())[:, None], times)
    fatigue = SimpleNamespace(learning=False, rest_rms=np.array([5.0]), active=np.array([True]))
    state = SimpleNamespace(fs=fs, lock=threading.Lock(), fatigue=fatigue, decisions=DecisionRing(64), latencies_s=[])
    return SimpleNamespace(acquisition=SimpleNamespace(buffer=raw, arrival_of=lambda counter: None), state=state,
                           engine=SimpleNamespace(filtered=filtered, fatigue=SimpleNamespace(
                               settings=FatigueSettings())), outlets=None)  # fmt: skip


@needs_needle_clinical
@pytest.mark.parametrize("relative", FILES, ids=lambda name: name.split("/")[1])
def test_live_verdict_on_a_recordings_5_s_is_analyzes_verdict(relative: str) -> None:
    needle_model = pytest.importorskip("models.needle_model")
    if not needle_model.BUNDLED_NEEDLE_MODEL.is_file():
        pytest.skip("no bundled needle model")
    from monitor.needle_live import MODEL_STRETCH_S, LiveNeedleVerdicts
    from monitor.recordings import open_recording
    from monitor.recordings.needle import condition, load_condition_model, needle_signal

    path = NEEDLE_CLINICAL / relative
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    model = load_condition_model(None)
    signal = needle_signal(open_recording(path))
    assert len(signal.recorded) == int(round(MODEL_STRETCH_S * signal.source_fs))  # the set's 5 s recordings
    offline = condition(model, [signal])  # what `analyze --mode needle` writes as summary.json's condition
    exact = model.predict_recording(signal.recorded, signal.source_fs)

    verdicts = LiveNeedleVerdicts(_stand_in_pipeline(signal.recorded, signal.source_fs), model)
    live = verdicts.judge(len(signal.recorded))  # the verdict whose newest sample is the file's last
    assert live is not None and live["muscle"] == "contracting"
    assert (live["first_counter"], live["seconds"], live["windows"]) == (0, MODEL_STRETCH_S, offline["windows"])
    assert live["label"] == live["verdict"] == offline["label"] == exact["label"]
    for name, probability in live["probabilities"].items():
        assert probability == pytest.approx(exact["probabilities"][name], abs=1e-6)  # the same computation
        assert probability == pytest.approx(offline["probabilities"][name], abs=1e-4)  # summary.json: 4 decimals
    # earlier in the stream a verdict covers all the stream has (here 3 s), never only the newest 2 s
    early = verdicts.judge(int(3 * signal.source_fs))
    assert early is not None and (early["first_counter"], early["seconds"], early["windows"]) == (0, 3.0, 11)
