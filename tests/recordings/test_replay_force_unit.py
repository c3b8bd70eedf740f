"""replay --with-force: the force channel is declared in %MVC on LSL, the EMG in microvolts (no outlet opened)."""

from __future__ import annotations

import numpy as np


def _declared_units(source: object) -> list[tuple[str, str, str]]:
    import pylsl

    from simulators.amplifier import describe_stream

    info = pylsl.StreamInfo("unit-check", "EMG", source.n_channels, source.fs, "float32", "unit-check")
    describe_stream(info, source)
    channel = info.desc().child("channels").first_child()
    declared = []
    while not channel.empty():
        declared.append((channel.child_value("label"), channel.child_value("type"), channel.child_value("unit")))
        channel = channel.next_sibling()
    return declared


def test_force_channel_is_declared_in_percent_mvc_and_emg_in_microvolts(tmp_path):
    from monitor.recordings import open_recording
    from monitor.recordings.replay import replay_source

    data = np.arange(40.0).reshape(20, 2)
    np.savez(tmp_path / "with.npz", data=data, fs=np.array(100.0), mvc_percent=np.linspace(0.0, 19.0, 20))
    with_force = replay_source(open_recording(tmp_path / "with.npz"), auxiliary=True)
    declared = _declared_units(with_force)
    expected = [("EMG", "microvolts"), ("EMG", "microvolts"), ("Force", "%MVC")]
    assert [(kind, unit) for _, kind, unit in declared] == expected
    assert declared[2][0] == "force (%MVC)"
    plain = replay_source(open_recording(tmp_path / "with.npz"))
    assert [unit for _, _, unit in _declared_units(plain)] == ["microvolts", "microvolts"]


def test_a_recorded_force_channel_reads_back_as_the_force_not_as_an_electrode(tmp_path):
    # LabRecorder keeps a `replay --with-force` stream as it was published: 2 EMG channels in microvolts, then the
    # force typed Force in %MVC. Read back, the force is the recording's force (replayable with --with-force), the
    # electrodes alone are EMG, and the layout of the electrodes still applies.
    import json

    from xdf_file import XdfStream, write_xdf  # tests/recordings is on the path, as for test_readers

    from monitor.recordings import open_recording
    from monitor.recordings.otb import FORCE_KEY

    n = 50
    values = np.column_stack([np.full(n, 5.0), np.full(n, -5.0), np.linspace(0.0, 49.0, n)])
    layout = {"kind": "ring", "n": 2}
    stream = XdfStream(
        "amp", "EMG", 100.0, np.arange(n) / 100.0, values, ["E1", "E2", "force (%MVC)"],
        ["microvolts", "microvolts", "%MVC"], json.dumps(layout), ["EMG", "EMG", "Force"],
    )
    recording = open_recording(write_xdf(tmp_path / "session.xdf", [stream]))
    assert recording.channel_labels == ["E1", "E2"] and recording.layout == layout
    np.testing.assert_array_equal(recording.data[:, 0], 5.0)
    np.testing.assert_allclose(recording.auxiliary[FORCE_KEY], np.linspace(0.0, 49.0, n))
