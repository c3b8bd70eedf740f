"""`neurofusion adapt` end to end on a live player stream, and its one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO


def neurofusion(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "monitor.cli", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=timeout)


@pytest.mark.slow  # a live stream, a worker and a fine-tune, ~30 s: the same flow is tested in-process
def test_marks_from_a_file_adapt_and_a_model_without_gain_is_left_running(tmp_path: Path) -> None:
    source_id = f"adapt-{uuid.uuid4().hex[:8]}"
    player = subprocess.Popen([sys.executable, str(REPO / "tests" / "players.py"), "--source-id", source_id,
                               "--duration", "9", "--wait-consumer", "60"], stdout=subprocess.PIPE, text=True)
    marks = tmp_path / "marks.json"
    # every class must be marked; a gain bar no model can clear makes the outcome certain: nothing changes
    marks.write_text(json.dumps({"marks": [{"label": "healthy", "start": 0.5, "end": 3.0},
                                           {"label": "ignore", "start": 3.0, "end": 3.2},
                                           {"label": "myopathy", "start": 3.2, "end": 5.7},
                                           {"label": "neuropathy", "start": 5.7, "end": 8.2}]}))
    try:
        done = neurofusion("adapt", "--source-id", source_id, "--marks", str(marks), "--patient", "p-1",
                           "--patients-dir", str(tmp_path / "patients"), "--epochs", "2", "--min-gain", "0.99",
                           "--timeout", "100")
    finally:
        player.kill()
        player.wait(10)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["state"] == "done" and summary["held_out_windows"] >= 12 and summary["train_windows"] >= 24
    assert not summary["improved"] and "unchanged" in summary["status"]
    assert summary["status"].startswith("no gain")
    assert summary["running_model"] == "neurofusionnet-condition-ring8-2048hz"
    assert not list((tmp_path / "patients").rglob("*.pt"))


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "marks.json"
    broken.write_text(json.dumps({"marks": [{"label": "healthy", "start": 5, "end": 2}]}))
    for args, words in (
        (["--marks", str(broken), "--patient", "p"], "must end after it starts"),
        (["--marks", str(tmp_path / "none.json"), "--patient", "p"], "cannot read marks"),
        (["--marks", str(broken), "--patient", "../etc"], "patient id"),
    ):
        if "patient id" in words:
            broken.write_text(json.dumps([{"label": "healthy", "start": 1, "end": 2}]))
        done = neurofusion("adapt", "--source-id", "nothing-here", *args, timeout=60)
        assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
