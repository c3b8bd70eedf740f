"""`neurofusion train` writes what was done to the data before training (the paper's step 16)."""

from __future__ import annotations

import json

import numpy as np

from monitor.cli import main
from tests.models.test_model_commands import FS, write_session


def test_train_writes_the_preprocessing_summary_with_window_counts_and_the_mains_found(tmp_path):
    root = tmp_path / "sessions"
    for index in (1, 2):
        write_session(root / f"session{index}", seed=20 + index, seconds=16.0)
    # session 2 picked up 60 Hz mains (100 µV peak, well above its 3-40 µV EMG)
    path = root / "session2" / "recording.csv"
    table = np.loadtxt(path, delimiter=",")
    table[:, :8] += 100.0 * np.sin(2 * np.pi * 60.0 * np.arange(len(table)) / FS)[:, None]
    np.savetxt(path, table, delimiter=",", fmt=["%.3f"] * 8 + ["%d"])
    out = tmp_path / "run"
    assert main(["train", "--data", str(root), "--fs", "200", "--label-column", "8", "--layout", "ring8",
                 "--test-groups", "session2", "--epochs", "1", "--out", str(out), "--no-onnx"]) == 0
    summary = json.loads((out / "preprocessing.json").read_text())
    # labels change every 2 s (400 samples); 40-sample windows every 10 samples, the first 40 samples skipped
    n, labels = len(table), table[:, 8]
    ends = np.arange(40, n + 1, 10)
    settled = ends[ends >= 80]
    pure = np.array([len(set(labels[end - 40 : end])) == 1 for end in settled])
    windows = summary["windows"]
    assert windows["possible"] == 2 * len(ends) and windows["kept"] == 2 * int(pure.sum())
    assert windows["dropped"] == {"first 0.2 s of each recording (filter settling)": 2 * int((ends < 80).sum()),
                                  "straddling a label change": 2 * int((~pure).sum())}
    split = summary["windows_by_split"]
    assert split["train"] + split["validation"] + split["test"] == windows["kept"]
    assert split["test"] == pure.sum()
    # at 200 Hz the band-pass ends at 0.95 x Nyquist and only the 50 Hz notch fits inside it
    assert summary["filters"]["band_edges_3db_hz"][1] == np.float64(95.0)
    assert summary["filters"]["notch"]["frequencies_hz"] == [50.0]
    found = {record["file"].split("/")[-2]: record["mains_found_hz"] for record in summary["recordings"]}
    assert found == {"session1": None, "session2": 60.0}
    assert "notch was set to 50 Hz" in summary["mains"]["advice"]
    markdown = (out / "preprocessing.md").read_text()
    assert "## Preprocessing" in markdown and "straddling a label change" in markdown
