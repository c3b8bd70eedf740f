"""`neurofusion evaluate` end to end on small CSV sessions: the table, the feature analysis and the resource figures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from monitor.cli import main
from tests.models.test_model_commands import FS, write_session

AMPLITUDE_FEATURES = {"log_MAV", "log_RMS", "log_WL", "WAMP"}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("eval-sessions")
    for index in (1, 2, 3):
        write_session(root / f"session{index}", seed=10 + index, seconds=16.0)
    out = tmp_path_factory.mktemp("evaluation")
    code = main(["evaluate", "--data", str(root), "--fs", "200", "--label-column", "8", "--layout", "ring8",
                 "--test-groups", "session3", "--validation-groups", "session2", "--epochs", "2", "--threads", "1",
                 "--baselines", "lda", "--ablations", "--out", str(out)])
    assert code == 0
    return out


def test_feature_analysis_section_matches_an_independent_pca_and_names_the_amplitude_features(evaluated):
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    from dsp.features import MODEL_FEATURES
    from models.datasets import windows_from_recording
    from monitor.recordings import open_recording

    report = json.loads((evaluated / "evaluation.json").read_text())
    analysis = report["feature_analysis"]
    # independent: the training session's windows cut the same way, features flattened, PCA on standardised columns
    recording = open_recording(Path(report["data"]["files"][0]), fs=FS, label_column="8", layout="ring8")
    windows = windows_from_recording(recording.data, recording.labels.astype(np.int64), FS, "session1",
                                     recording.layout, ["0", "1", "2"], 200.0, 50.0, "surface")
    from dsp.features import feature_matrix

    values = feature_matrix(windows.windows, FS, list(MODEL_FEATURES)).reshape(len(windows.windows), -1)
    ratios = PCA().fit(StandardScaler().fit_transform(np.nan_to_num(values))).explained_variance_ratio_
    kept = int(np.searchsorted(np.cumsum(ratios), 0.95) + 1)
    assert analysis["training_windows"] == analysis["forest_windows"] == report["windows"]["train"] == len(values)
    assert analysis["pca"]["components_kept"] == kept and analysis["pca"]["dimensions"] == 8 * len(MODEL_FEATURES)
    np.testing.assert_allclose(analysis["pca"]["explained_variance_ratio"][:5], ratios[:5], atol=1e-4)
    # the classes differ by which channels carry amplitude: amplitude features lead the forest's ranking
    assert set(analysis["random_forest"]["ranking"][:2]) <= AMPLITUDE_FEATURES, analysis["random_forest"]["ranking"]
    assert sum(analysis["random_forest"]["by_feature"].values()) == pytest.approx(1.0, abs=1e-3)
    selection = analysis["selection_lda"]
    assert selection["selected"]["columns"] == 8 * 4 and selection["all_features"]["accuracy"] > 0.8
    figure = evaluated / analysis["figure"]
    assert figure.name == "feature_analysis.png" and figure.stat().st_size > 10_000
    markdown = (evaluated / "evaluation.md").read_text()
    assert f"PCA: {kept} of {8 * len(MODEL_FEATURES)} components keep 95%" in markdown
    assert "![feature analysis](feature_analysis.png)" in markdown


def test_resource_section_times_each_dsp_stage_per_window_of_the_test_stream(evaluated):
    report = json.loads((evaluated / "evaluation.json").read_text())
    resources = report["resources"]
    # the test session's windows of 40 samples laid end to end (capped at 60 s); 200 ms windows every 50 ms
    stream_s = min(60.0, report["windows"]["test"] * 40 / FS)
    assert resources["stream_seconds"] == pytest.approx(stream_s)
    expected_windows = int((stream_s * FS - 40) // 10) + 1
    stages = resources["stages"]
    assert set(stages) == {"filters", "quality+features+fatigue", "model features"}
    for name, figures in stages.items():
        assert figures["windows"] == expected_windows, name
        assert 0 < figures["ms_per_window_p50"] <= figures["ms_per_window_p99"]
    assert set(resources["inference_ms_per_window"]) == {row["model"] for row in report["rows"]}
    process = resources["process"]
    # a share of the process CPU over wall time: any figure a 2-core box can give, never a speed bound
    assert 0 < process["cpu_percent"] <= 100 * os.cpu_count() and 100 < process["rss_mb"] <= process["peak_rss_mb"]
    markdown = (evaluated / "evaluation.md").read_text()
    assert f"| filters | {expected_windows} |" in markdown and "Whole evaluation:" in markdown


def test_forest_draw_keeps_each_class_share():
    from models.evaluation_analysis import _draw

    labels = np.repeat([0, 1, 2], [600, 300, 100])
    drawn = _draw(labels, 100, seed=0)
    assert np.all(np.diff(drawn) > 0) and np.bincount(labels[drawn]).tolist() == [60, 30, 10]
    np.testing.assert_array_equal(_draw(labels[:50], 100, seed=0), np.arange(50))


def test_rows_carry_settled_and_per_group_accuracy_consistent_with_the_confusion_matrix(evaluated):
    report = json.loads((evaluated / "evaluation.json").read_text())
    for row in report["rows"]:
        matrix = np.asarray(row["confusion_matrix"])
        assert row["accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())
        assert list(row["accuracy_by_group"]) == ["session3"]  # one held-out session: its accuracy is the row's
        assert row["accuracy_by_group"]["session3"] == pytest.approx(row["accuracy"], abs=1e-4)
        # CSV sessions have label changes, so some windows lie near one and fewer count as settled
        assert 0 < row["settled_windows"] < report["windows"]["test"] and 0 <= row["settled_accuracy"] <= 1
    assert "accuracy >= 0.5 s from a label change" in (evaluated / "evaluation.md").read_text()


def test_the_configuration_is_chosen_on_validation_never_on_the_test_figures():
    from models.evaluation import markdown_table, select_on_validation

    def row(model, kind, validation_f1, test_accuracy):
        return {"model": model, "kind": kind, "validation_macro_f1": validation_f1, "validation_accuracy":
                validation_f1, "accuracy": test_accuracy, "macro_f1": test_accuracy, "sensitivity": 0.5,
                "specificity": 0.5, "precision": 0.5, "ms_per_window": 0.1, "parameters": 10,
                "accuracy_interval": [test_accuracy - 0.1, test_accuracy + 0.05], "interval_level": 0.95,
                "interval_groups": 12}

    rows = [row("NeuroFusionNet", "proposed", 0.80, 0.70),
            row("LDA (Hudgins TD)", "baseline", 0.95, 0.60),  # a baseline is compared, never chosen
            row("NeuroFusionNet no features", "ablation", 0.78, 0.93),  # best on test: not a reason to choose it
            row("NeuroFusionNet no gnn", "ablation", 0.85, 0.65)]
    selection = select_on_validation(rows)
    assert selection["chosen"] == "NeuroFusionNet no gnn" and selection["test_accuracy"] == 0.65
    assert selection["accuracy_interval"] == pytest.approx([0.55, 0.70]) and selection["interval_groups"] == 12
    markdown = markdown_table(rows, "t")
    assert "| NeuroFusionNet no gnn (chosen on validation) | 85.00% | 65.00% |" in markdown
    assert "**NeuroFusionNet no gnn** (85.00% on validation). Its test accuracy, 65.00% (95% interval over 12" \
        in markdown
    assert markdown.count("chosen on validation") == 1


def test_the_test_interval_resamples_whole_groups():
    from types import SimpleNamespace

    from models.evaluation import group_interval

    # four subjects of 10 windows: three read perfectly, one entirely wrong -> pooled 75 %
    test = SimpleNamespace(groups=np.repeat(["a", "b", "c", "d"], 10), labels=np.zeros(40, int))
    predicted = np.where(test.groups == "d", 1, 0)
    interval = group_interval(test, predicted)
    low, high = interval["accuracy_interval"]
    assert interval["interval_groups"] == 4 and low <= 0.75 <= high
    # resampling subjects, a draw can hold the wrong subject 2 or 3 times (accuracy 50 % or 25 %) or not at all
    assert low <= 0.5 and high == 1.0
    uniform = group_interval(test, np.zeros(40, int))
    assert uniform["accuracy_interval"] == [1.0, 1.0]


def test_the_evaluation_reports_its_choice_and_the_chosen_test_figure_once(evaluated):
    report = json.loads((evaluated / "evaluation.json").read_text())
    selection = report["selection"]
    chosen = next(row for row in report["rows"] if row["model"] == selection["chosen"])
    assert selection["chosen"] == "NeuroFusionNet" and selection["criterion"] == "validation_macro_f1"
    assert selection["test_accuracy"] == chosen["accuracy"] and selection["interval_groups"] == 1
    for row in report["rows"]:
        assert 0 <= row["validation_accuracy"] <= 1 and 0 <= row["validation_macro_f1"] <= 1
    assert "(chosen on validation)" in (evaluated / "evaluation.md").read_text()
