"""A replayed recording's LSL stream is named after the file without any recording suffix, compression included:
``EMG _203.asc.xz`` streams as "NeuroFusion-Replay-EMG _203", not "... EMG _203.asc"."""

from __future__ import annotations

from pathlib import Path

from monitor.commands.replay import stream_names


def test_compressed_recording_streams_under_its_bare_name() -> None:
    assert stream_names(Path("data/EMG _203.asc.xz")) == ("NeuroFusion-Replay-EMG _203", "neurofusion-replay-EMG _203")
    assert stream_names("trial.csv.gz")[0] == "NeuroFusion-Replay-trial"
    assert stream_names(Path("subject.edf"))[0] == "NeuroFusion-Replay-subject"


def test_given_names_and_a_recording_without_a_file_are_kept() -> None:
    assert stream_names(Path("a.asc.xz"), "mine", "id-1") == ("mine", "id-1")
    assert stream_names(None) == ("NeuroFusion-Replay-recording", "neurofusion-replay-recording")
