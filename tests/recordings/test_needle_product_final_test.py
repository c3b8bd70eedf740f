"""`train --mode needle` judges the held-out final-test patients only when asked (``--final-test``): a re-run that
reproduces the cross-validation, or a site retraining, must not spend the one look at them by accident, and
metrics.json, table.md and the model card say whether it was read. Cheap: the protocol's data preparation,
cross-validation and contenders are stand-ins; only the final-test logic of models/needle_run is exercised."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import models.needle_run as needle_run
from models.needle_corpus import LABELS
from models.needle_training import STATISTICS_MODEL


class _Contender:
    """A fitted stand-in: remembers every row it was asked to judge (the test rows must stay unjudged)."""

    def __init__(self, labels: np.ndarray, judged: list[int]) -> None:
        self.labels, self.judged = labels, judged
        self.network = SimpleNamespace(config=SimpleNamespace(to_dict=lambda: {"kind": "stand-in"}))
        self.info = {"C": 1.0}

    def __call__(self, view: object, rows: list[int]) -> np.ndarray:
        self.judged.extend(rows)
        return np.eye(len(LABELS))[self.labels[rows]]


@pytest.fixture
def stand_ins(monkeypatch: pytest.MonkeyPatch) -> dict:
    patients = np.array([f"{label}-{k}" for label in LABELS for k in range(8)])
    labels = np.array([LABELS.index(p.split("-")[0]) for p in patients])
    data = SimpleNamespace(patients=patients, labels=labels, variants=[None], signals=[np.zeros(8)] * len(patients),
                           infos=[SimpleNamespace(fs=None)] * len(patients))
    seen: dict = {"judged": [], "saved": []}
    monkeypatch.setattr(needle_run, "prepare", lambda *args, **kwargs: data)
    monkeypatch.setattr(needle_run, "cross_validated_probabilities",
                        lambda data, names, plan, run_tasks: {
                            name: np.eye(len(LABELS))[data.labels[needle_run.development_rows(data, plan)[0]]]
                            for name in names})  # fmt: skip
    monkeypatch.setattr(needle_run, "contenders",
                        lambda: {STATISTICS_MODEL: lambda data, dev, rng: _Contender(data.labels, seen["judged"])})
    monkeypatch.setattr(needle_run, "perturbed_view", lambda data, rows, kind, value: None)
    import models.needle_model

    monkeypatch.setattr(models.needle_model, "save_needle_model",
                        lambda path, network, card: seen["saved"].append(card))
    seen["test_rows"] = lambda report: {k for k, p in enumerate(patients) if p in set(report["final_test_patients"])}
    return seen


def test_without_final_test_no_test_patient_is_judged_and_the_outputs_say_so(stand_ins: dict, tmp_path: Path):
    report = needle_run.run([], tmp_path, n_boot=5, log=lambda _: None, final_test=False)
    test_rows = stand_ins["test_rows"](report)
    assert test_rows and not test_rows & set(stand_ins["judged"])
    assert report["final_test_read"] is False and report["final_test"] == {}
    assert json.loads((tmp_path / "metrics.json").read_text())["final_test_read"] is False
    assert "Not read in this run" in (tmp_path / "table.md").read_text()
    (card,) = stand_ins["saved"]  # the chosen contender is still bundled, its card says the test was not read
    assert card["final_test_read"] is False and "not read" in card["figures"]["final_test"]


def test_with_final_test_the_test_patients_are_judged_once_and_recorded(stand_ins: dict, tmp_path: Path):
    report = needle_run.run([], tmp_path, n_boot=5, log=lambda _: None, final_test=True)
    assert stand_ins["test_rows"](report) <= set(stand_ins["judged"])
    assert report["final_test_read"] is True and STATISTICS_MODEL in report["final_test"]
    (card,) = stand_ins["saved"]
    assert card["final_test_read"] is True
    assert card["figures"]["final_test"]["per_patient"]["n"] == len(report["final_test_patients"])


def test_train_cli_reads_the_final_test_only_when_asked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from monitor.cli import main

    asked: list[bool] = []
    (tmp_path / "manifest.csv").write_text("file,patient,label\n")
    import models.needle_corpus

    monkeypatch.setattr(models.needle_corpus, "scan", lambda data: [SimpleNamespace(patient=str(k)) for k in range(10)])
    monkeypatch.setattr(needle_run, "run", lambda *args, final_test, **kwargs: asked.append(final_test) or
                        {"bundled_configuration": {"name": None}})  # fmt: skip
    out = str(tmp_path / "out")
    assert main(["train", "--data", str(tmp_path), "--mode", "needle", "--out", out]) == 0
    assert main(["train", "--data", str(tmp_path), "--mode", "needle", "--out", out, "--final-test"]) == 0
    assert main(["train", "--data", str(tmp_path), "--mode", "needle", "--out", out, "--no-final-test"]) == 0
    assert asked == [False, True, False]
