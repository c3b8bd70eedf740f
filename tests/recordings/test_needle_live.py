"""A one-channel needle stream gets rolling verdicts from the needle model (not the 8-electrode surface model):
a real clinical recording replayed as a real LSL amplifier, the monitor's own session code on it, its decisions read
from its LSL outlet and its JSON lines, and checked against the model run on the very samples."""

from __future__ import annotations

import json
import threading
import uuid

import numpy as np
import pytest

from monitor.cli import build_parser
from monitor.commands.demo import resolve_needle, simulator_arguments
from monitor.outlets import LEARNING_INDEX, REST_INDEX
from tests.conftest import NEEDLE_CLINICAL

NEEDLE_FILE = NEEDLE_CLINICAL / "01_Deltoid" / "Neuropathy"


def test_demo_needle_streams_one_needle_channel_at_a_needle_rate():
    args = build_parser().parse_args(["demo", "--needle"])
    resolve_needle(args)
    assert (args.layout, args.fs, args.needle) == ("needle", 10000.0, True)
    arguments = simulator_arguments(args, "nf-test")
    assert arguments[arguments.index("--layout") + 1] == "needle"
    assert arguments[arguments.index("--fs") + 1] == "10000.0"
    plain = build_parser().parse_args(["demo"])
    resolve_needle(plain)
    assert (plain.layout, plain.fs, plain.needle) == ("ring8", 2048.0, False)
    layout_only = build_parser().parse_args(["demo", "--layout", "needle", "--fs", "20000"])
    resolve_needle(layout_only)
    assert (layout_only.fs, layout_only.needle) == (20000.0, True)


def test_monitor_and_demo_take_the_muscle_for_the_needle_panel():
    from monitor.commands.monitor import session_options

    for command in (["monitor"], ["demo", "--needle"]):
        options = session_options(build_parser().parse_args([*command, "--muscle", "deltoid", "--age", "63"]))
        assert (options.needle_muscle, options.needle_age) == ("deltoid", 63.0)


def test_is_needle_stream_takes_one_channel_at_needle_rates_only():
    from monitor.needle_live import is_needle_stream

    assert is_needle_stream(1, 32768.0, None) and is_needle_stream(1, 4000.0, {"kind": "needle"})
    assert not is_needle_stream(1, 2048.0, None)  # surface rate
    assert not is_needle_stream(8, 10000.0, {"kind": "ring"})
    assert not is_needle_stream(1, 10000.0, {"kind": "ring"}) and is_needle_stream(1, 10000.0, {"kind": "ring"},
                                                                                      "needle")  # fmt: skip


@pytest.mark.skipif(not NEEDLE_FILE.is_dir(), reason=f"{NEEDLE_FILE} is not present")
def test_monitor_publishes_needle_model_verdicts_on_a_replayed_clinical_recording(tmp_path):
    import pylsl

    needle_model = pytest.importorskip("models.needle_model")
    if not needle_model.BUNDLED_NEEDLE_MODEL.is_file():
        pytest.skip(f"no bundled needle model ({needle_model.BUNDLED_NEEDLE_MODEL.name}) yet")
    from monitor.acquisition import resolve_stream
    from monitor.commands.monitor import session_options
    from monitor.needle_live import MODEL_STRETCH_S, VERDICT_HOP_S
    from monitor.recordings import open_recording
    from monitor.recordings.needle import load_condition_model
    from monitor.recordings.replay import replay_source
    from monitor.session import run_session
    from simulators.amplifier import Amplifier

    # the replay's own code (`neurofusion replay FILE --loop --wait-for-consumer`) as a real LSL amplifier
    recording = open_recording(sorted(NEEDLE_FILE.glob("*.asc.xz"))[0])
    # first-call imports and filter design (seconds on a loaded machine) before the stream: a late first verdict
    # would make the thread skip to the newest, past the verdict on the file's own 5 s that is checked below
    load_condition_model(None).predict_window(recording.data[: int(recording.fs), 0], recording.fs)
    source_id = f"needle-live-{uuid.uuid4().hex[:8]}"
    amplifier = Amplifier(replay_source(recording, loop=True), name="needle-live", source_id=source_id)
    stop = threading.Event()

    def play() -> None:
        amplifier.wait_for_consumers(60.0)  # the monitor then receives the file from its first sample
        amplifier.run(duration_s=8.0, stop_event=stop)

    player = threading.Thread(target=play, daemon=True)
    player.start()
    # `neurofusion monitor --source-id ID --headless --duration 6 --jsonl FILE`, no --model: the needle stream
    # gets the bundled needle model without being asked (the surface worker would refuse one channel)
    jsonl = tmp_path / "decisions.jsonl"
    args = build_parser().parse_args(["monitor", "--source-id", source_id, "--headless", "--duration", "6.0",
                                      "--jsonl", str(jsonl)])  # fmt: skip
    outcome: list[int] = []
    session = threading.Thread(target=lambda: outcome.append(
        run_session(resolve_stream(source_id=source_id, timeout_s=30), session_options(args))), daemon=True)
    session.start()
    try:
        found = []
        while not found and session.is_alive():
            found = pylsl.resolve_byprop("source_id", f"{source_id}-decisions", 1, 1.0)
        assert found, "the monitor ended without publishing a decisions outlet"
        assert found[0].channel_count() == 4  # healthy, myopathy, neuropathy, label_index
        inlet = pylsl.StreamInlet(found[0])
        received, stamps = [], []
        while len(received) < 3 and session.is_alive():
            rows, times = inlet.pull_chunk(timeout=0.5, max_samples=64)
            received, stamps = received + list(rows), stamps + list(times)
        session.join(timeout=90)
    finally:
        stop.set()
        player.join(timeout=10)
    assert outcome == [0]
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(lines) >= 4
    model = load_condition_model(None)
    assert {line["model_id"] for line in lines} == {model.model_id}
    assert all(set(line["probabilities"]) == {"healthy", "myopathy", "neuropathy"} for line in lines)
    # counter-aligned: one verdict every hop, each on the newest 5 s (all the stream has before 5 s)
    hop, stretch = int(round(VERDICT_HOP_S * recording.fs)), int(round(MODEL_STRETCH_S * recording.fs))
    assert all(line["sequence"] % hop == 0 for line in lines)
    # no condition before the rest level is learned (the fatigue tracker's first 3 s), as on the surface path
    assert all(line["label"] == "learning rest level" for line in lines if line["muscle"] == "learning")
    # each verdict is the model's on exactly those samples (the replay waited for the monitor: counter = file
    # sample; past 5 s the loop's stretches join the file's end to its start)
    contracting = [line for line in lines if line["muscle"] == "contracting"]
    assert contracting
    for line in contracting[:3] + contracting[-2:]:
        counters = np.arange(max(0, line["sequence"] - stretch), line["sequence"])
        expected = model.predict_window(np.take(recording.data[:, 0], counters, mode="wrap"), recording.fs)
        for name, value in line["probabilities"].items():
            assert value == pytest.approx(expected["probabilities"][name], abs=1e-3)
        assert line["label"] == expected["label"]
    # the verdict on the file's own 5 s, over LSL, is analyze's on the file (4 decimals in the JSON lines)
    # (this file is 5 s and one sample: analyze's 19 windows are the same, its probabilities too)
    whole = next(line for line in lines if line["sequence"] == stretch)
    offline = model.predict_recording(recording.data[:, 0], recording.fs)
    assert whole["probabilities"] == pytest.approx(offline["probabilities"], abs=1e-4)
    # what the outlet carried is what the JSON lines say, label index included
    by_time = {round(line["timestamp"], 4): line for line in lines}
    matched = [(row, by_time[round(t, 4)]) for row, t in zip(received, stamps, strict=True) if round(t, 4) in by_time]
    assert len(matched) >= 3
    for row, line in matched:
        np.testing.assert_allclose(row[:3], list(line["probabilities"].values()), atol=1e-3)
        codes = {"rest": REST_INDEX, "learning rest level": LEARNING_INDEX, "healthy": 0, "myopathy": 1,
                 "neuropathy": 2}
        assert int(row[3]) == codes[line["label"]]
