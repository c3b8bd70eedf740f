"""Offline recordings: NPZ and EDF/BDF written by `neurofusion simulate --out` hold the simulated samples and truth."""

from __future__ import annotations

import json

import edfio
import numpy as np
import pytest

from monitor.cli import main
from simulators.electrodes import ElectrodeLayout
from simulators.emg import EmgSimulator, SimulationConfig
from simulators.files import record, write

CONFIG = SimulationConfig(layout="ring8", fs=1000.0, profile="gestures", period_s=0.5, mvc_percent=40, seed=11)


def test_npz_holds_the_same_samples_and_per_sample_truth(tmp_path):
    recording = record(EmgSimulator(CONFIG), 3.0, truth_rate_hz=4.0)
    path = write(recording, tmp_path / "sim.npz")
    with np.load(path, allow_pickle=False) as archive:
        saved = {key: archive[key] for key in archive.files}
    np.testing.assert_array_equal(saved["data"], EmgSimulator(CONFIG).generate(3.0))
    assert saved["data"].shape == (3000, 8) and float(saved["fs"]) == 1000.0
    np.testing.assert_allclose(saved["timestamps"], np.arange(3000) / 1000.0)
    assert list(saved["channel_labels"]) == [f"E{i:02d}" for i in range(1, 9)]
    assert ElectrodeLayout.from_dict(json.loads(str(saved["layout_json"]))) == ElectrodeLayout.ring(8)
    names = list(saved["label_names"])
    # 0.5 s rest, 0.5 s wrist flexion, 0.5 s rest, 0.5 s wrist extension, ...
    assert names[saved["labels"][250]] == "rest" and names[saved["labels"][750]] == "wrist_flexion"
    assert names[saved["labels"][1750]] == "wrist_extension"
    assert saved["mvc_percent"][750] == pytest.approx(40.0) and saved["mvc_percent"][250] == 0.0
    assert np.isnan(saved["true_mnf_hz"][100]) and 40.0 < saved["true_mnf_hz"][999] < 200.0
    assert len(saved["marker_texts"]) == 12 and str(saved["condition"]) == "healthy"
    last = json.loads(str(saved["marker_texts"][-1]))
    assert last["sample"] == 2999 and saved["marker_timestamps"][-1] == pytest.approx(2.999)
    assert json.loads(str(saved["config_json"]))["seed"] == 11


@pytest.mark.parametrize("suffix, resolution", [(".edf", 2**16), (".bdf", 2**24)])
def test_edf_and_bdf_hold_the_signal_in_microvolts_with_gesture_annotations(tmp_path, suffix, resolution):
    recording = record(EmgSimulator(CONFIG), 2.0)
    path = write(recording, tmp_path / f"sim{suffix}")
    edf = (edfio.read_bdf if suffix == ".bdf" else edfio.read_edf)(path)
    assert list(edf.labels) == [f"E{i:02d}" for i in range(1, 9)] + ["MVC", "relative CV"]
    for channel in range(8):
        emg = edf.signals[channel]
        assert emg.physical_dimension == "uV" and emg.sampling_frequency == 1000.0
        expected = recording.data[:, channel].astype(np.float64)
        step = (expected.max() - expected.min()) / (resolution - 1)
        np.testing.assert_allclose(emg.data, expected, atol=step)
    texts = [(round(a.onset, 3), a.text) for a in edf.annotations]
    assert (0.0, "condition=healthy") in texts
    assert (0.5, "gesture=wrist_flexion") in texts and (1.0, "gesture=rest") in texts


def test_edf_needs_whole_seconds(tmp_path):
    recording = record(EmgSimulator(CONFIG), 1.5)
    with pytest.raises(ValueError, match="whole seconds"):
        write(recording, tmp_path / "sim.edf")
    with pytest.raises(ValueError, match="must end in"):
        write(recording, tmp_path / "sim.csv")


def test_cli_writes_a_file(tmp_path, capsys):
    out = tmp_path / "needle.npz"
    code = main(["simulate", "--out", str(out), "--duration", "1", "--layout", "needle", "--condition", "neuropathy"])
    assert code == 0 and "10000 samples x 1 channels" in capsys.readouterr().out
    with np.load(out, allow_pickle=False) as archive:
        assert archive["data"].shape == (10000, 1) and str(archive["condition"]) == "neuropathy"


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--layout", "needle", "--fs", "500"], "needle EMG needs fs >= 4000"),
        (["--layout", "hexagon"], "unknown electrode layout"),
        (["--artifacts", "mains,cosmic"], "unknown artifact"),
        (["--mvc", "150"], "0-100"),
        (["--duration", "-1"], "--duration must be a positive number"),
        (["--duration", "inf"], "--duration must be a positive number"),
        (["--snr", "nan"], "snr_db must be a finite number"),
        (["--marker-rate", "0"], "--marker-rate must be in"),
    ],
)
def test_cli_rejects_bad_options_in_one_line(tmp_path, capsys, arguments, message):
    code = main(["simulate", "--out", str(tmp_path / "x.npz"), *arguments])
    error = capsys.readouterr().err.strip()
    assert code == 2 and message in error and len(error.splitlines()) == 1
    assert not (tmp_path / "x.npz").exists()


def test_cli_rejects_unknown_output_format(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path / "x.csv"), "--duration", "1"]) == 2
    assert "must end in .npz, .edf, .bdf" in capsys.readouterr().err
