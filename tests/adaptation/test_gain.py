"""Marking 10 s per class of a new subject and adapting raises window accuracy on the rest of the session."""

from __future__ import annotations

import json

import numpy as np

from tests.adaptation.conftest import FS


def accuracy_of(checkpoint, windows: np.ndarray, truth: np.ndarray) -> float:
    """Measured the way the worker serves: models.predictor on the live engine's own windows."""
    from models.predictor import load_predictor

    predictor = load_predictor(checkpoint, backend="torch")
    predicted = np.concatenate([predictor.predict(windows[i : i + 256], None, FS).probabilities.argmax(axis=1)
                                for i in range(0, len(windows), 256)])
    return float((predicted == truth).mean())


def test_adapting_on_marked_spans_raises_accuracy_on_the_rest_of_the_session(adapted) -> None:
    session, result = adapted.session, adapted.session.job.result
    assert result["improved"] and result["after"] > result["before"]
    checkpoint = session.models[-1].checkpoint
    assert checkpoint.parent.name == "patient-7" and checkpoint.is_file()
    rest = adapted.evaluation
    before = accuracy_of(None, adapted.windows[rest], adapted.truth[rest])
    after = accuracy_of(checkpoint, adapted.windows[rest], adapted.truth[rest])
    print(json.dumps({"rest_windows": int(rest.sum()), "accuracy_before": before, "accuracy_after": after,
                      "held_out_before": result["before"], "held_out_after": result["after"],
                      "fine_tune_s": result["seconds"]}))
    assert rest.sum() > 500  # 3 x ~11 s at a 50 ms hop
    assert after >= before + 0.15, (before, after)

    card = json.loads(checkpoint.with_suffix(".card.json").read_text())
    assert card["model_id"] == result["model_id"] and card["training"]["base_model_id"] == session.models[0].model_id
    assert [mark["label"] for mark in card["training"]["marks"]] == ["healthy", "myopathy", "neuropathy"]
    assert card["metrics"]["adaptation_held_out"]["accuracy_after"] == result["after"]


def test_held_out_windows_share_no_sample_with_training_windows(adapted) -> None:
    from monitor.adaptation.spans import cut_marked_windows

    spans = adapted.session.store.spans()
    assert [round(span.mark.duration) for span in spans] == [10, 10, 10] and all(span.complete for span in spans)
    windows = cut_marked_windows(spans, ["healthy", "myopathy", "neuropathy"], 410, 102)
    for label in range(3):
        mine = windows.labels == label
        train_ends = windows.ends[mine & ~windows.held_out]
        held_starts = windows.ends[mine & windows.held_out] - 409 / FS
        assert len(train_ends) > 50 and len(held_starts) > 20
        assert held_starts.min() > train_ends.max()
