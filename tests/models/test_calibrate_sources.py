"""`neurofusion calibrate` on labels from WFDB annotations and from a manifest of whole labelled recordings, written
by wfdb and edfio, with the bundled model: labels land on the annotated samples and calibration measurably helps."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from monitor.cli import main

CLASSES = ["healthy", "myopathy", "neuropathy"]
SECONDS = 8  # per subject: 3 s calibrate, the rest held out
FS = 2048
GAIN = 10 ** (-18 / 20)  # beyond the +-12 dB the bundled model was trained on: it scores near chance


@pytest.fixture(scope="module")
def subjects():
    """One new simulated subject per condition (seeds the bundled model never saw), holding 40 %MVC."""
    from simulators.emg import EmgSimulator, SimulationConfig
    from simulators.files import record

    return [record(EmgSimulator(SimulationConfig(condition=condition, profile="hold", mvc_percent=40.0,
                                                 seed=9100 + index, snr_db=25.0)), SECONDS)
            for index, condition in enumerate(CLASSES)]  # fmt: skip


@pytest.fixture(scope="module")
def wfdb_record(subjects, tmp_path_factory) -> Path:
    """The three subjects one after the other in one WFDB record, in mV, annotated where each begins (the first one
    second late, so its first second is unlabelled), with an artefact note in between that names no class."""
    import wfdb

    folder = tmp_path_factory.mktemp("wfdb")
    signal = np.concatenate([s.data for s in subjects]).astype(np.float64) * GAIN / 1000.0  # µV -> mV
    wfdb.wrsamp("conditions", fs=FS, units=["mV"] * 8, sig_name=list(subjects[0].layout.labels), p_signal=signal,
                fmt=["16"] * 8, write_dir=str(folder))  # fmt: skip
    samples = np.array([FS, SECONDS * FS, SECONDS * FS + 100, 2 * SECONDS * FS])
    wfdb.wrann("conditions", "atr", samples, symbol=["+"] * 4,
               aux_note=["(healthy", "(myopathy", "artifact", "(neuropathy"], write_dir=str(folder))  # fmt: skip
    return folder / "conditions.hea"


def test_wfdb_annotations_label_the_samples_from_each_annotation_to_the_next(wfdb_record):
    from monitor.commands.calibrate import class_labels
    from monitor.recordings import open_recording

    recording = open_recording(wfdb_record)
    labels, source = class_labels("conditions.hea", recording, CLASSES, None)
    assert source == "annotations"
    expected = np.full(3 * SECONDS * FS, -1)
    expected[FS : SECONDS * FS] = 0
    expected[SECONDS * FS : 2 * SECONDS * FS] = 1  # the artefact note at +100 samples changes nothing
    expected[2 * SECONDS * FS :] = 2
    np.testing.assert_array_equal(labels, expected)


def test_calibrate_on_wfdb_annotations_lifts_a_model_that_the_new_gain_defeats(wfdb_record, tmp_path, capsys):
    out = tmp_path / "wfdb"
    code = main(["calibrate", str(wfdb_record), "--layout", "ring8", "--seconds-per-class", "3", "--epochs", "10",
                 "--out", str(out), "--no-onnx"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    result = json.loads((out / "calibration.json").read_text())
    calibration = result["card"]["training"]["calibration"]
    assert calibration["label_sources"] == {"conditions.hea": "annotations"} and calibration["mode"] == "surface"
    # 3 s of each class, the healthy one from its annotation at 1 s (the unlabelled first second is never used)
    assert [(s["start_s"], s["end_s"]) for s in calibration["spans"]] == [(1.0, 4.0), (8.0, 11.0), (16.0, 19.0)]
    before, after = result["before"]["accuracy"], result["after"]["accuracy"]
    assert before < 0.55 and after >= before + 0.15, (before, after)
    # held out: 4-8 s, 11-16 s and 19-24 s (14 s at 20 windows a second), less the 3 windows that would reach back
    # over the start of each; none from the unlabelled first second
    assert result["after"]["n_windows"] == calibration["held_out_windows"] == pytest.approx(14 * 20 - 3 * 3, abs=3)


def test_calibrate_reads_the_scale_it_is_told_and_refuses_values_of_no_unit(wfdb_record, tmp_path, capsys):
    import wfdb

    record = wfdb.rdrecord(str(wfdb_record.with_suffix("")))
    counts = wfdb_record.parent / "counts"
    counts.mkdir()
    wfdb.wrsamp("conditions", fs=FS, units=["adu"] * 8, sig_name=record.sig_name, p_signal=record.p_signal,
                fmt=["16"] * 8, write_dir=str(counts))  # fmt: skip
    (counts / "conditions.atr").write_bytes(wfdb_record.with_suffix(".atr").read_bytes())
    args = ["calibrate", str(counts / "conditions.hea"), "--layout", "ring8", "--seconds-per-class", "3",
            "--epochs", "10", "--no-onnx", "--out"]  # fmt: skip
    assert main([*args, str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--scale gives microvolts per unit" in err
    # told that one unit is a millivolt, calibrate reads the same microvolts as from the record in mV
    from monitor.cli import build_parser
    from monitor.commands.calibrate import _labelled_recordings

    scaled = _labelled_recordings(build_parser().parse_args([*args, "x", "--scale", "1000"]), CLASSES)
    in_mv = _labelled_recordings(build_parser().parse_args(["calibrate", str(wfdb_record)]), CLASSES)
    # (the re-written 16-bit samples differ by one quantisation step at most)
    np.testing.assert_allclose(scaled[0][2].data, in_mv[0][2].data, rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(scaled[0][3], in_mv[0][3])
    assert np.median(np.abs(in_mv[0][2].data)) > 1.0  # microvolts, not millivolts


def test_calibrate_on_a_manifest_of_whole_recordings_keeps_the_base_models_accuracy(subjects, tmp_path, capsys):
    from simulators.files import write

    rows = ["file,label,patient"]
    for index, subject in enumerate(subjects):
        (tmp_path / "edf").mkdir(exist_ok=True)
        # at the gain the bundled model knows: it already scores ~99 %, calibration must not lose it
        write(replace(subject, data=subject.data * np.float32(10 ** (3 / 20))), tmp_path / "edf" / f"p{index}.edf")
        rows.append(f"edf/p{index}.edf,{subject.condition},p{index}")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "manifest-run"
    code = main(["calibrate", "--manifest", str(tmp_path / "manifest.csv"), "--channels", "0,1,2,3,4,5,6,7",
                 "--layout", "ring8", "--seconds-per-class", "3", "--epochs", "10", "--out", str(out), "--no-onnx"])
    assert code == 0, capsys.readouterr().err
    result = json.loads((out / "calibration.json").read_text())
    calibration = result["card"]["training"]["calibration"]
    assert calibration["label_sources"] == {f"p{i}.edf": "manifest" for i in range(3)}
    assert [(s["source"], s["start_s"], s["end_s"]) for s in calibration["spans"]] == [
        (f"p{i}.edf", 0.0, 3.0) for i in range(3)]
    # every held-out window of a file carries the file's label: the 5 s after each file's 3 s, one class each
    truth_counts = np.sum(result["after"]["confusion_matrix"], axis=1)
    assert truth_counts.tolist() == [result["after"]["n_windows"] // 3] * 3
    assert truth_counts[0] == pytest.approx(5 * 20 - 3, abs=2)
    assert set(result["after"]["accuracy_by_group"]) == {f"p{i}.edf" for i in range(3)}
    # one recording per patient here: the manifest's patients get the same figures as their recordings
    assert calibration["patients"] == {f"p{i}.edf": f"p{i}" for i in range(3)}
    assert result["before"]["accuracy_by_patient"] == {
        f"p{i}": result["before"]["accuracy_by_group"][f"p{i}.edf"] for i in range(3)}
    assert result["before"]["accuracy"] > 0.9
    assert result["after"]["accuracy"] >= result["before"]["accuracy"]


def test_a_manifest_label_that_is_no_class_is_refused_in_one_line(subjects, tmp_path, capsys):
    (tmp_path / "manifest.csv").write_text("file,label\nmissing.edf,tremor\n")
    assert main(["calibrate", "--manifest", str(tmp_path / "manifest.csv"), "--out", str(tmp_path / "x")]) == 2
    assert "recording not found" in capsys.readouterr().err  # the file is looked for first
    from simulators.files import write

    write(subjects[0], tmp_path / "p0.edf")
    (tmp_path / "manifest.csv").write_text("file,label\np0.edf,tremor\n")
    assert main(["calibrate", "--manifest", str(tmp_path / "manifest.csv"), "--channels", "0,1,2,3,4,5,6,7",
                 "--out", str(tmp_path / "x")]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'tremor' is not a class of the model" in err


@pytest.fixture(scope="module")
def needle_checkpoint(tmp_path_factory) -> Path:
    """The bundled weights under a card that says the model was made on needle-filtered windows."""
    from models.checkpoint import load_checkpoint, save_checkpoint

    model, card = load_checkpoint(None)
    card.training = {**card.training, "mode": "needle"}
    return save_checkpoint(tmp_path_factory.mktemp("needle") / "needle.pt", model, card)


def test_a_needle_model_goes_to_the_needle_calibration_never_the_surface_filters(needle_checkpoint, tmp_path,
                                                                                  monkeypatch, capsys):  # fmt: skip
    import sys
    import types

    from models.calibration import model_mode
    from models.checkpoint import read_card

    assert model_mode(read_card(needle_checkpoint)) == "needle"
    args = ["calibrate", "--manifest", str(tmp_path / "none.csv"), "--checkpoint", str(needle_checkpoint),
            "--out", str(tmp_path / "n"), "--no-onnx"]  # fmt: skip
    monkeypatch.setitem(sys.modules, "models.needle_calibration", None)  # as before the needle calibration exists
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needle model" in err and "models.needle_calibration" in err
    assert not (tmp_path / "n").exists()
    calls = []
    module = types.ModuleType("models.needle_calibration")
    module.calibrate_needle_checkpoint = lambda *a: calls.append(a[3].model_id) or 0
    monkeypatch.setitem(sys.modules, "models.needle_calibration", module)
    assert main(args) == 0 and calls == ["neurofusionnet-condition-ring8-2048hz"]
