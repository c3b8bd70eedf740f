"""The monitor process of `neurofusion demo` never imports torch: the inference worker and the adaptation job, which
run the network, are processes of their own, and the monitor reads model cards from their JSON files. Checked in
fresh processes, because this test process has usually imported torch already."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO


def _run(*arguments: str, timeout_s: float = 120.0) -> dict:
    done = subprocess.run([sys.executable, *arguments], cwd=REPO, capture_output=True, text=True, timeout=timeout_s)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_bundled_model_card_reads_without_torch_and_matches_the_checkpoint():
    code = (
        "import json, sys\n"
        "from models.checkpoint import BUNDLED_CHECKPOINT, ModelCard, card_path, read_card\n"
        "import monitor.adaptation.job, monitor.adaptation.session, monitor.gui.adaptation\n"
        "from monitor.session import SessionOptions, model_card\n"
        "card = read_card()\n"
        "card.check_layout(card.layout)\n"
        "assert ModelCard.from_json(card_path(BUNDLED_CHECKPOINT).read_text()) == card\n"
        "assert model_card(SessionOptions())['model_id'] == card.model_id\n"
        "print(json.dumps({'card': card.to_json(), 'torch_imported': 'torch' in sys.modules}))\n"
    )
    result = _run("-c", code)
    assert result["torch_imported"] is False
    # the premise of reading the .card.json instead of the checkpoint: both hold the same card
    from models.checkpoint import load_checkpoint

    _, embedded = load_checkpoint()
    assert result["card"] == embedded.to_json()


def test_the_demo_window_and_a_live_adaptation_keep_torch_out_of_the_monitor_process():
    result = _run("-m", "tests.monitor_footprint", "--view", "window", "--duration", "2", "--adapt")
    assert result["exit_code"] == 0
    assert result["adaptation_card"]  # the window's adaptation panel was given the running model's card
    assert result["adaptation_job"] == "done", result["adaptation_error"]  # fine-tuned, in its own process
    assert result["torch_imported"] is False
    assert result["torch_geometric_imported"] is False


@pytest.mark.slow
def test_the_headless_demo_keeps_torch_out_of_the_monitor_process():
    result = _run("-m", "tests.monitor_footprint", "--view", "headless", "--duration", "2")
    assert result["exit_code"] == 0
    assert result["torch_imported"] is False
