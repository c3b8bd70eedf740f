"""The bundled surface condition model learnt simulated patients only: the GUI's condition view, the analysis
report and the model card each say so beside its verdict (issue 18); other models get no such note."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from models.checkpoint import read_card
from models.model_card import PAGE, SIMULATED_ONLY_NOTE, simulated_only_note

BUNDLED = read_card().model_id


def test_the_note_names_the_bundled_model_and_models_adapted_from_it_only() -> None:
    assert simulated_only_note(BUNDLED) == SIMULATED_ONLY_NOTE
    assert simulated_only_note(f"{BUNDLED}+patient7-20261206T1100") == SIMULATED_ONLY_NOTE
    assert "simulated patients" in SIMULATED_ONLY_NOTE and "not validated on real surface" in SIMULATED_ONLY_NOTE
    for other in (None, "", "needlefusionnet-condition", f"{BUNDLED}-copy"):
        assert simulated_only_note(other) is None


def test_a_card_trained_on_real_recordings_gets_no_note(tmp_path: Path) -> None:
    card = json.loads(Path("models/weights/default.card.json").read_text())
    card["training"]["data"] = {"dataset": "recordings"}
    (tmp_path / "model.card.json").write_text(json.dumps(card))
    assert simulated_only_note(BUNDLED, tmp_path / "model.pt") is None


def test_the_model_card_page_says_it() -> None:
    page = PAGE.read_text()
    assert "simulated patients only" in page and "not been validated on real surface recordings" in page


def test_the_report_says_it_beside_the_bundled_models_verdict() -> None:
    from monitor.recordings.report import _markdown

    summary = {"file": "x.npz", "n_channels": 8, "fs": 2048.0, "duration_s": 10.0, "windows": 40,
               "model_id": BUNDLED, "wall_seconds": 0.5, "real_time_factor": 20.0}
    text = _markdown(SimpleNamespace(summary=summary, preprocessing=None), [])
    assert SIMULATED_ONLY_NOTE in text
    summary["model_id"] = None
    assert SIMULATED_ONLY_NOTE not in _markdown(SimpleNamespace(summary=summary, preprocessing=None), [])


def test_the_condition_view_shows_it_for_the_bundled_models_decisions(qtbot) -> None:
    from monitor.gui.classification import ClassificationView
    from monitor.pipeline import DecisionRecord, MonitorState, MuscleState

    state = MonitorState()
    view = ClassificationView(SimpleNamespace(state=state), lambda: 10.0)
    qtbot.addWidget(view)
    classes, probabilities = ["healthy", "myopathy", "neuropathy"], np.array([0.8, 0.1, 0.1])

    def publish(first: int, model_id: str) -> None:
        with state.lock:
            for sequence in range(first, first + 5):
                state.decisions.append(DecisionRecord(
                    sequence, 10.0 + 0.05 * sequence, "healthy", probabilities, classes, None, model_id, 0.01,
                    0.002, muscle=MuscleState.CONTRACTING))  # fmt: skip

    publish(0, BUNDLED)
    view.refresh()
    assert view.provenance_label.text() == SIMULATED_ONLY_NOTE and not view.provenance_label.isHidden()
    publish(5, "a-model-trained-on-real-recordings")
    view.refresh()
    assert view.provenance_label.isHidden()
