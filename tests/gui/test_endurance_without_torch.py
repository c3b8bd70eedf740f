"""The GUI's "endurance left" forecast runs without torch: checked in fresh processes, because this test process has
usually imported torch already (other tests, the torch fallback)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO


def _run(*arguments: str) -> str:
    done = subprocess.run([sys.executable, *arguments], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_gui_modules_import_without_torch():
    code = ("import sys, monitor.gui.app, monitor.gui.main_window, monitor.gui.fatigue, monitor.gui.endurance; "
            "print(sorted(name for name in ('torch', 'onnxruntime') if name in sys.modules))")  # fmt: skip
    assert json.loads(_run("-c", code).replace("'", '"')) == []


def test_a_forecast_in_a_fresh_gui_process_runs_on_onnx_runtime_and_never_imports_torch():
    live = json.loads(_run("-m", "tests.gui.endurance_footprint", "--backend", "live"))
    assert live["forecaster"] == "OnnxForecaster"
    assert live["torch_imported"] is False
    # the torch path (the fallback) reads the same forecast from the same trend
    with_torch = json.loads(_run("-m", "tests.gui.endurance_footprint", "--backend", "torch"))
    assert with_torch["torch_imported"] is True
    assert live["endurance_s"] == with_torch["endurance_s"] is not None
