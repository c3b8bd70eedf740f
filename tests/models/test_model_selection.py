"""The bundled surface model's selection protocol (models/evaluation_selection.py, benchmarks/select_surface_model):
the subject split is fixed by its seed before anything is trained, the choice reads validation figures only, the
test subjects are read after the choice and scored once, and the card says what the model was trained on."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.evaluation_selection import Candidate, choose, subject_condition, subject_split


def subjects(per_condition: int, first_seed: int = 40000) -> list[str]:
    return [f"{condition}-{first_seed + 3 * index + offset}" for index in range(per_condition)
            for offset, condition in enumerate(("healthy", "myopathy", "neuropathy"))]


def test_the_split_is_by_subject_stratified_and_fixed_by_its_seed():
    groups = subjects(20)
    split = subject_split(groups, seed=22, validation_per_condition=4, test_per_condition=5)
    assert sorted(sum(split.values(), [])) == sorted(groups)  # every subject in exactly one part
    assert not set(split["train"]) & set(split["validation"]) | set(split["train"]) & set(split["test"])
    for part, per_condition in (("train", 11), ("validation", 4), ("test", 5)):
        counts = {condition: sum(subject_condition(g) == condition for g in split[part])
                  for condition in ("healthy", "myopathy", "neuropathy")}
        assert set(counts.values()) == {per_condition}, (part, counts)
    # the same seed and names give the same split whatever their order; another seed gives another test set
    assert subject_split(groups[::-1], 22, 4, 5) == split
    assert subject_split(groups, 23, 4, 5)["test"] != split["test"]
    with pytest.raises(ValueError, match="cannot give"):
        subject_split(subjects(3), 22, 1, 2)


def test_the_choice_reads_validation_figures_only():
    results = [{"validation_macro_f1": 0.80, "test_accuracy": 0.99},  # a test column, if one leaked, is ignored
               {"validation_macro_f1": 0.86, "test_accuracy": 0.50},
               {"validation_macro_f1": 0.86, "test_accuracy": 0.70}]
    assert choose(results) == 1  # best on validation; the tie goes to the earlier candidate
    with pytest.raises(ValueError):
        choose([])


def test_a_part_of_a_split_loads_each_subject_at_the_gain_the_whole_corpus_gives_it(monkeypatch):
    import models.datasets as datasets
    from models.datasets import simulated_corpus, simulated_subjects

    def fake_subject(condition, seed, duration_s, layout, fs, cache_dir):  # no simulation: a constant per subject
        part = synthetic_part([f"{condition}-{seed}"], windows_per_subject=2)
        part.windows[:] = 1.0
        part.description = {"simulation": {"condition": condition, "seed": seed}}
        return part

    monkeypatch.setattr(datasets, "_cached_subject", fake_subject)
    corpus = simulated_corpus(2, first_seed=40000, cache_dir=None)
    part = simulated_subjects(["neuropathy-40005", "healthy-40000"], cache_dir=None)
    for group in ("neuropathy-40005", "healthy-40000"):
        np.testing.assert_array_equal(part.windows[part.groups == group], corpus.windows[corpus.groups == group])
    assert len({float(part.windows[part.groups == g][0, 0, 0]) for g in set(part.groups)}) == 2  # own gains
    with pytest.raises(ValueError, match="not a simulated subject"):
        simulated_subjects(["session3"], cache_dir=None)


def synthetic_part(groups: list[str], windows_per_subject: int = 12):
    """Windows whose class shows in their spectrum (a different tone per condition), tiny and fast to train on."""
    from models.datasets import WindowSet
    from simulators.electrodes import ElectrodeLayout

    classes = ["healthy", "myopathy", "neuropathy"]
    parts = []
    for group in groups:
        label = classes.index(subject_condition(group))
        rng = np.random.default_rng(int(group.rsplit("-", 1)[1]))
        t = np.arange(410) / 2048.0
        tone = np.sin(2 * np.pi * (60 + 120 * label) * t + rng.uniform(0, 6, (windows_per_subject, 8, 1)))
        parts.append((40 * tone + rng.standard_normal((windows_per_subject, 8, 410))).astype(np.float32))
    labels = np.concatenate([np.full(windows_per_subject, classes.index(subject_condition(g))) for g in groups])
    return WindowSet(windows=np.concatenate(parts), labels=labels.astype(np.int64),
                     groups=np.repeat(np.array(groups), windows_per_subject), fs=2048.0,
                     layout=ElectrodeLayout.from_name("ring8").to_dict(), classes=classes)


@pytest.fixture()
def tiny_selection(monkeypatch, tmp_path):
    import benchmarks.select_surface_model as tool
    import models.evaluation_selection as selection

    reads: list[str] = []

    def load_part(split, part):
        reads.append(part)
        return synthetic_part(split[part])

    candidates = (Candidate("no features (bundled until now)"), Candidate("no features, no gnn",
                                                                          network={"use_gnn": False}))
    monkeypatch.setattr(tool, "load_part", load_part)
    monkeypatch.setattr(tool, "CANDIDATES", candidates)
    monkeypatch.setattr(selection, "CANDIDATES", candidates)
    args = ["--out", str(tmp_path / "run"), "--subjects", "4", "--validation", "1", "--test", "1", "--epochs", "1",
            "--max-minutes", "1"]
    return tool, args, reads, tmp_path / "run"


def test_the_tool_splits_first_chooses_on_validation_and_looks_at_the_test_subjects_once(tiny_selection):
    tool, args, reads, run = tiny_selection
    assert tool.main(args) == 0
    split = json.loads((run / "split.json").read_text())
    assert split["seed"] == 22 and len(split["test"]) == 3 and len(split["validation"]) == 3
    assert reads == ["train", "validation", "test"]  # the test subjects are read after the choice, once
    choice = json.loads((run / "choice.json").read_text())
    assert choice["criterion"] == "validation_macro_f1" and len(choice["candidates"]) == 2
    assert "test" not in json.dumps(choice["candidates"])  # the choice record holds validation figures only
    assert choice["keeps_bundled_weights"] == (choice["chosen_index"] == 0)
    card = json.loads((run / "final" / "model.card.json").read_text())
    test = card["metrics"]["test"]
    assert test["test_looks"] == 1 and test["interval_groups"] == 3
    low, high = test["accuracy_interval"]
    assert low <= test["accuracy"] <= high
    assert card["training"]["test_groups"] == split["test"]
    assert "simulated patients" in card["training"]["trained_on"]
    assert "not been validated on real surface recordings" in card["training"]["real_recordings"]
    assert card["metrics"]["selection"]["chosen"] == choice["chosen"]
    # a second run trains nothing again and refuses a second look at the test subjects
    reads.clear()
    assert tool.main(args) == 2 and reads == []
    looks = json.loads((run / "test_looks.json").read_text())["looks"]
    assert len(looks) == 1


def test_another_split_is_refused_in_the_same_run_folder(tiny_selection, capsys):
    tool, args, _, run = tiny_selection
    assert tool.main([*args, "--only", "0"]) == 0 and (run / "candidates" / "0.json").is_file()
    assert not (run / "choice.json").exists()  # --only trains and stops: nothing chosen, no test read
    with pytest.raises(SystemExit, match="another split"):
        tool.main([*args, "--split-seed", "7"])


def test_the_generated_page_says_what_the_model_was_trained_on_and_how_it_was_chosen():
    from models.checkpoint import BUNDLED_CHECKPOINT, card_path
    from models.model_card import render

    card = json.loads(card_path(BUNDLED_CHECKPOINT).read_text())
    page = render(card)
    assert "simulated patients only" in page and "not been validated on real surface recordings" in page
    selection = card["metrics"]["selection"]
    assert page.count("**(chosen)**") == 1 and f"| {selection['chosen']} **(chosen)** |" in page
    assert "interval of the accuracy (bootstrap over the" in page and selection["command"] in page
    # the figure is the one look at the test subjects
    assert card["metrics"]["test"]["test_looks"] == 1 and "scored on the test subjects once" in page
