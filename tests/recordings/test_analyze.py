"""Offline analysis: the live pipeline's code over a real recording, decisions checked against a direct computation."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from monitor.errors import UserError
from monitor.pipeline import LEARNING_LABEL, REST_LABEL
from monitor.recordings import open_recording
from monitor.recordings.analysis import analyze_recording
from tests.untrained_ring_model import CLASSES, save_untrained_ring_model

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
MYO_FILE = DATA / "myo-gestures" / "12345-1" / "3.txt"


@pytest.fixture(scope="module")
def myo_part():
    return open_recording(MYO_FILE, preset="myo").slice_seconds(0.0, 20.0)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory, myo_part):
    """A small, untrained NeuroFusionNet for the Myo ring: real code, fixed random weights."""
    return save_untrained_ring_model(tmp_path_factory.mktemp("model"), myo_part.layout, "test-ring8-200hz", seed=3)


def test_dsp_and_fatigue_only_on_a_real_recording(myo_part):
    analysis = analyze_recording(myo_part)
    # 200 ms windows every 50 ms at 200 Hz: 40 samples, hop 10; the first ends at sample 40
    assert len(analysis.windows) == (myo_part.n_samples - 40) // 10 + 1
    assert [w.end_counter for w in analysis.windows[:3]] == [40, 50, 60]
    assert analysis.summary["windows"] == len(analysis.windows) and analysis.summary["quality"]["issues"] == []
    # during the gesture (label 3) the forearm is far more active than at rest
    rest = np.median([w.rms_uv for w in analysis.windows if w.file_label == 0])
    gesture = np.median([w.rms_uv for w in analysis.windows if w.file_label == 3])
    assert gesture > 2.0 * rest
    assert all(w.label is None for w in analysis.windows)


def test_decisions_equal_the_model_run_directly_on_the_same_windows(myo_part, small_model):
    from dsp.engine import DspEngine, EngineSettings
    from dsp.ringbuffer import RingBuffer
    from models.predictor import load_predictor
    from monitor.pipeline import muscle_state, verdict

    predictor = load_predictor(small_model, backend="torch")
    analysis = analyze_recording(myo_part, predictor, chunk_seconds=0.37, batch_size=16)
    engine = DspEngine(RingBuffer(1, 8), myo_part.fs, EngineSettings())
    results = engine.process(myo_part.data, myo_part.timestamps, 0)
    direct = predictor.predict(np.stack([r.window.data for r in results]), np.stack([r.usable for r in results]),
                               myo_part.fs)  # fmt: skip
    assert len(results) == len(analysis.windows)
    np.testing.assert_allclose([w.probabilities for w in analysis.windows], direct.probabilities, atol=1e-5)
    # the same verdicts: "rest" exactly where no electrode contracted (no verdict on a relaxed muscle), "learning rest
    # level" while the rest level was learned
    best = direct.probabilities.argmax(axis=1)
    expected = [verdict(CLASSES[i], muscle_state(r)) for i, r in zip(best, results, strict=True)]
    assert [w.label for w in analysis.windows] == expected
    summary = analysis.summary
    assert summary["model_id"] == "test-ring8-200hz"
    assert sum(summary["label_distribution"].values()) == pytest.approx(1.0)


def test_a_model_for_another_layout_is_refused_before_any_work(small_model):
    from models.predictor import load_predictor

    grid = open_recording(DATA / "hdemg-vastus-lateralis" / "otb_testfile.mat").slice_seconds(0.0, 1.0)
    with pytest.raises(UserError, match="expects 8 channels but the recording has 64"):
        analyze_recording(grid, load_predictor(small_model, backend="torch"))


def test_analyze_command_writes_the_report_files(tmp_path, small_model, capsys):
    from monitor.cli import main

    out = tmp_path / "report"
    code = main(["analyze", str(MYO_FILE), "--preset", "myo", "--end", "15", "--model", str(small_model),
                 "--backend", "torch", "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    names = {path.name for path in out.iterdir()}
    assert {"windows.csv", "windows.jsonl", "summary.json", "report.md", "traces.png", "probabilities.png",
            "fatigue.png"} <= names  # fmt: skip
    with (out / "windows.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    lines = (out / "windows.jsonl").read_text().splitlines()
    summary = json.loads((out / "summary.json").read_text())
    assert len(rows) == len(lines) == summary["windows"] == (15 * 200 - 40) // 10 + 1
    first = json.loads(lines[0])
    # the first window ends while the rest level is being learned: the model's probabilities, but no condition
    assert set(first["probabilities"]) == set(CLASSES) and first["label"] == LEARNING_LABEL
    assert {json.loads(line)["label"] for line in lines} <= {*CLASSES, REST_LABEL, LEARNING_LABEL}
    assert float(rows[0]["p_healthy"]) == pytest.approx(first["probabilities"]["healthy"])
    assert (out / "traces.png").read_bytes()[:4] == b"\x89PNG"
    assert "test-ring8-200hz" in (out / "report.md").read_text()


def test_analyze_command_reports_a_missing_model_and_an_unwritable_folder(tmp_path, capsys):
    from monitor.cli import main

    assert main(["analyze", str(MYO_FILE), "--preset", "myo", "--model", str(tmp_path / "none.pt"),
                 "--out", str(tmp_path / "r")]) == 2  # fmt: skip
    assert "--no-model skips decisions" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["analyze", str(MYO_FILE), "--preset", "myo", "--no-model", "--out", str(blocker / "sub")]) == 2
    assert "cannot write to" in capsys.readouterr().err


def test_quality_issues_name_the_channels_and_their_duration():
    grid = open_recording(DATA / "hdemg-vastus-lateralis" / "otb_testfile.mat").slice_seconds(8.0, 12.0)
    grid.data[:, 10] = 0.0  # an electrode off for the whole 4 s
    issues = analyze_recording(grid).summary["quality"]["issues"]
    flat = [issue for issue in issues if issue.startswith("flat:")]
    assert flat == [f"flat: {grid.channel_labels[10]} 4 s"]


def test_analyze_command_on_a_dataset_folder_writes_one_report_per_file_and_an_index(tmp_path, capsys):
    from monitor.cli import main

    dataset = tmp_path / "dataset"
    for session in ("s1", "s2"):
        (dataset / session).mkdir(parents=True)
        table = np.column_stack([np.random.default_rng(len(session)).normal(0, 20, (1200, 8)), np.zeros(1200)])
        np.savetxt(dataset / session / "rest.csv", table, delimiter=",", fmt="%.3f")
    out = tmp_path / "out"
    assert main(["analyze", str(dataset), "--preset", "myo", "--no-model", "--no-figures", "--quiet",
                 "--out", str(out)]) == 0  # fmt: skip
    summaries = json.loads((out / "dataset_summary.json").read_text())
    assert [Path(s["file"]).parent.name for s in summaries] == ["s1", "s2"]
    assert all(s["windows"] == (1200 - 40) // 10 + 1 for s in summaries)
    assert (out / "s1" / "rest" / "report.md").is_file() and (out / "s2" / "rest" / "windows.csv").is_file()
    index = (out / "index.md").read_text()
    assert "(s1/rest/report.md)" in index and "(s2/rest/report.md)" in index
    assert "dataset of 2 recordings" in capsys.readouterr().out


def test_preprocessing_summary_names_filters_mains_masks_and_lost_windows(tmp_path):
    """Real HD-EMG with a 60 Hz hum, a dead electrode, NaN on another and a 1 s gap: each is reported as it was."""
    from monitor.recordings.report import write_report

    grid = open_recording(DATA / "hdemg-vastus-lateralis" / "otb_testfile.mat").slice_seconds(8.0, 14.0)
    fs, n = grid.fs, grid.n_samples
    grid.data[:] += (150.0 * np.sin(2 * np.pi * 60.0 * np.arange(n) / fs))[:, None].astype(grid.data.dtype)
    grid.data[:, 10] = 0.0  # electrode off
    grid.data[2048:3072, 20] = np.nan  # half a second of dropped packets
    gap_at = 4096  # a chunk boundary (the analysis reads 1 s chunks): the stream vanished for a second
    grid.timestamps[gap_at:] += 1.0
    analysis = analyze_recording(grid)
    summary = analysis.preprocessing
    filters = summary["filters"]
    assert filters["band_edges_3db_hz"] == [pytest.approx(20.0, abs=0.2), pytest.approx(450.0, abs=0.3)]
    # notches at 50 Hz and its harmonics inside the band only; above 450 Hz the band-pass alone does the work
    assert filters["notch"]["frequencies_hz"] == [50.0 * k for k in range(1, 10)]
    assert max(filters["notch"]["depth_db"]) < -60
    assert summary["mains"]["found_hz"] == 60.0 and "notch was set to 50 Hz" in summary["mains"]["advice"]
    # the dead electrode is masked as flat from the quality monitor's first evaluation (0.5 s = 1024 samples) on
    masked = summary["channels_masked"]
    dead, dropped = grid.channel_labels[10], grid.channel_labels[20]
    assert masked[dead] == {"windows": sum(w.end_counter >= 1024 for w in analysis.windows), "reasons": {
        "flat": sum(w.end_counter >= 1024 for w in analysis.windows)}}
    assert masked[dropped]["windows"] > 0 and set(masked[dropped]["reasons"]) <= {"nonfinite", "non-finite samples"}
    assert set(masked) == {dead, dropped}
    # 410-sample windows every 102 samples end at multiples of 102 from 510 on; the gap loses those ending inside
    # the first window after it (the filters and the windower restart there)
    ends = range(510, n + 1, 102)
    lost = sum(gap_at < end < gap_at + 410 for end in ends)
    windows = summary["windows"]
    assert windows["possible"] == len(ends) and windows["kept"] == len(analysis.windows) == len(ends) - lost
    assert windows["dropped"] == {"lost at 1 gap(s) in the timestamps": lost}
    write_report(analysis, tmp_path, figures=False)
    assert json.loads((tmp_path / "preprocessing.json").read_text())["windows"]["kept"] == len(analysis.windows)
    report = (tmp_path / "report.md").read_text()
    assert "## Preprocessing" in report and "60 Hz mains found in the signal" in report
    assert f"{dead}: {masked[dead]['windows']} windows (flat {masked[dead]['windows']})" in report
