"""`neurofusion analyze --mode needle`: quantitative MUP analysis of a needle recording lands in needle.json."""

from __future__ import annotations

import json
import subprocess
import sys

CLI = [sys.executable, "-m", "monitor.cli"]


def test_simulated_neuropathic_needle_recording_reads_neurogenic(tmp_path):
    recording = tmp_path / "needle.npz"
    made = subprocess.run(
        [*CLI, "simulate", "--layout", "needle", "--condition", "neuropathy", "--profile", "hold", "--mvc", "10",
         "--duration", "8", "--seed", "4", "--tissue", "legacy", "--out", str(recording)],  # its clear large MUPs
        capture_output=True, text=True, timeout=120,
    )
    assert made.returncode == 0, made.stderr
    out = tmp_path / "report"
    analysed = subprocess.run(
        [*CLI, "analyze", str(recording), "--mode", "needle", "--no-model", "--no-figures", "--quiet",
         "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert analysed.returncode == 0, analysed.stderr
    report = json.loads((out / "needle.json").read_text())
    assert report["reading"]["label"] == "neurogenic"
    reading = json.loads((out / "summary.json").read_text())["needle_reading"]
    assert reading["label"] == "neurogenic" and reading["n_mups"] == len(report["units"])
    assert "needle EMG reading: neurogenic" in analysed.stdout
