"""`neurofusion train` and `neurofusion calibrate` end to end on small CSV recordings written here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from monitor.cli import main

FS = 200.0


def write_session(folder: Path, seed: int, seconds: float = 24.0) -> None:
    """8 channels at 200 Hz, label column last: 0 = rest (weak noise), 1 = channels 0-3 active, 2 = channels 4-7,
    each block 2 s. Band-limited noise so the band-pass filter keeps it."""
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    labels = np.tile(np.repeat([0, 1, 0, 2], int(2 * FS)), n // int(8 * FS) + 1)[:n]
    noise = sosfilt(butter(4, [25, 80], btype="bandpass", fs=FS, output="sos"), rng.standard_normal((n, 8)), axis=0)
    gain = np.full((n, 8), 3.0)
    gain[labels == 1, :4] = 40.0
    gain[labels == 2, 4:] = 40.0
    folder.mkdir(parents=True)
    table = np.column_stack([noise * gain * rng.uniform(0.8, 1.2, 8), labels])
    np.savetxt(folder / "recording.csv", table, delimiter=",", fmt=["%.3f"] * 8 + ["%d"])


@pytest.fixture(scope="module")
def sessions(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("csv-sessions")
    for index in (1, 2, 3):
        write_session(root / f"session{index}", seed=index)
    return root


@pytest.fixture(scope="module")
def trained(sessions, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    code = main(["train", "--data", str(sessions), "--fs", "200", "--label-column", "8", "--layout", "ring8",
                 "--test-groups", "session3", "--validation-groups", "session2", "--epochs", "4", "--threads", "1",
                 "--out", str(out), "--no-onnx"])
    assert code == 0
    return out


def test_train_writes_a_checkpoint_metrics_and_figures_tested_on_the_held_out_session(trained):
    metrics = json.loads((trained / "metrics.json").read_text())
    card = json.loads((trained / "model.card.json").read_text())
    assert card["training"]["test_groups"] == ["session3"] and card["training"]["train_groups"] == ["session1"]
    assert card["classes"] == ["0", "1", "2"] and card["fs"] == 200.0 and card["window_samples"] == 40
    assert metrics["test"]["accuracy"] > 0.9  # the classes differ by which channels are active: easy
    assert (trained / "training_curves.png").stat().st_size > 10_000 and (trained / "confusion_test.png").is_file()


def test_calibrate_fine_tunes_on_the_first_seconds_and_measures_on_the_rest(sessions, trained, tmp_path):
    out = tmp_path / "calibrated"
    code = main(["calibrate", str(sessions / "session3"), "--checkpoint", str(trained / "model.pt"),
                 "--label-column", "8", "--fs", "200", "--layout", "ring8", "--seconds-per-class", "4",
                 "--epochs", "3", "--out", str(out), "--no-onnx"])
    assert code == 0
    card = json.loads((out / "model.card.json").read_text())
    calibration = card["training"]["calibration"]
    used = {}
    for span in calibration["spans"]:
        used[span["source"]] = used.get(span["source"], 0) + span["end_s"] - span["start_s"]
    assert used == {"recording.csv": pytest.approx(3 * 4.0)}  # 4 s of each of the 3 classes
    assert card["model_id"].endswith("-calibrated") and calibration["base_model_id"] == "neurofusionnet-csv-sessions0"
    after = json.loads((out / "calibration.json").read_text())["after"]
    assert after["n_windows"] == calibration["held_out_windows"] > 0
    assert after["accuracy"] > 0.9


def test_calibrate_refuses_a_recording_at_another_rate_in_one_line(sessions, tmp_path, ring_checkpoint, capsys):
    code = main(["calibrate", str(sessions / "session3"), "--checkpoint", str(ring_checkpoint), "--fs", "200",
                 "--label-column", "8", "--layout", "ring8", "--out", str(tmp_path / "x"), "--no-onnx"])
    assert code == 2
    assert "recorded at 200 Hz, the model at 2048 Hz" in capsys.readouterr().err


def test_muscle_timed_training_labels_need_a_rest_class(sessions, tmp_path, capsys):
    code = main(["train", "--data", str(sessions), "--fs", "200", "--label-column", "8", "--layout", "ring8",
                 "--test-groups", "session3", "--label-timing", "muscle", "--epochs", "1", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "rest" in err and "Traceback" not in err


def test_muscle_timed_training_labels_move_training_onsets_and_leave_the_test_labels_alone():
    import argparse

    from monitor.commands.train import add_data_arguments, load_split

    parser = argparse.ArgumentParser()
    add_data_arguments(parser)
    myo = str(Path(__file__).resolve().parents[2].parent / "shared" / "data" / "myo-gestures")
    cue = load_split(parser.parse_args(["--data", myo, "--preset", "myo", "--test-groups", "12345-3"]))
    muscle = load_split(parser.parse_args(["--data", myo, "--preset", "myo", "--test-groups", "12345-3",
                                           "--label-timing", "muscle"]))
    for cue_part, muscle_part in zip(cue[:2], muscle[:2], strict=True):
        np.testing.assert_array_equal(muscle_part.labels, cue_part.muscle_labels)
        moved = np.mean(muscle_part.labels != cue_part.labels)
        # the labels lead the muscle by ~0.28 s: 4.3 % of the training and 2.6 % of the validation windows move
        assert 0.02 < moved < 0.15
        # what moves is a gesture's start to rest (the muscle has not answered yet) or its end to the gesture
        changed = muscle_part.labels != cue_part.labels
        assert np.all((cue_part.labels[changed] == 0) | (muscle_part.labels[changed] == 0))
    np.testing.assert_array_equal(muscle[2].labels, cue[2].labels)
