"""Short training runs on real recordings: NeuroFusionNet must learn something that transfers to another session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.calibration import first_seconds_per_class, split_by_spans
from models.datasets import MYO_CLASSES, last_block_mask, load_myo_gestures
from models.evaluation import classification_metrics
from models.training import TrainingConfig, predict_classes, train_neurofusionnet

MYO = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "myo-gestures"
pytestmark = pytest.mark.skipif(not MYO.is_dir(), reason="../shared/data/myo-gestures is not present")


def small_myo(session: str, gestures: tuple[int, ...] = (1, 2, 7)):
    """Rest + three gestures of one session (classes relabelled 0..3)."""
    dataset = load_myo_gestures(MYO, [session])
    keep = np.isin(dataset.labels, (0, *gestures))
    subset = dataset.subset(keep)
    lookup = {value: index for index, value in enumerate((0, *gestures))}
    subset.labels = np.array([lookup[v] for v in subset.labels])
    subset.classes = [MYO_CLASSES[v] for v in (0, *gestures)]
    return subset


def test_windows_are_label_pure_and_grouped_by_session():
    dataset = load_myo_gestures(MYO, ["12345-1"])
    assert dataset.windows.shape[1:] == (8, 40)  # 200 ms at 200 Hz, 8 electrodes
    assert set(dataset.groups) == {"12345-1"}
    assert np.bincount(dataset.labels).tolist()[1:] == [np.sum(dataset.labels == k) for k in range(1, 8)]
    # rest alternates with the gesture every 5 s: about 5 s / 50 ms hop = 100 windows per block minus straddlers
    assert 500 < np.sum(dataset.labels == 1) < 600


def test_a_short_training_run_transfers_to_an_unseen_session():
    from dsp.features import MODEL_FEATURES

    session_1 = small_myo("12345-1")
    validation_block = last_block_mask(session_1, 0.15)
    train, validation = session_1.subset(~validation_block), session_1.subset(validation_block)
    test = small_myo("12345-2")
    config = TrainingConfig(epochs=6, patience=6, threads=1, max_seconds=40)
    model, history, _, _ = train_neurofusionnet(train, validation, list(MODEL_FEATURES), config)
    metrics = classification_metrics(test.labels, predict_classes(model, test, list(MODEL_FEATURES)), test.classes)
    # chance is 0.25 macro sensitivity over the 4 classes (always answering "rest" scores exactly that)
    assert metrics["sensitivity"] > 0.6, metrics
    assert history.validation_loss[history.best_epoch] == min(history.validation_loss)


def test_calibration_spans_take_the_first_seconds_of_each_class_and_windows_never_straddle():
    fs = 200.0
    labels = np.repeat([0, 3, 0, 3, 0], 1000)  # 5 s blocks
    spans = first_seconds_per_class(labels, fs, seconds=7.0, source="r")
    # class 0: 5 s of the first block and 2 s of the second; class 3: 5 s then 2 s
    assert [(s.start_s, s.end_s) for s in spans] == [(0.0, 5.0), (5.0, 10.0), (10.0, 12.0), (15.0, 17.0)]
    data = np.random.default_rng(0).standard_normal((len(labels), 2)) * 50
    layout = {"kind": "ring", "labels": ["a", "b"], "positions_mm": [[1, 0], [-1, 0]]}
    inside, outside = split_by_spans(data, labels, fs, "r", spans, layout, ["a", "b", "c", "d"], hop_ms=50)
    window = 40
    for part, in_span in ((inside, True), (outside, False)):
        starts = np.round(part.times * fs).astype(int) - window
        for start in starts:
            covered = [any(s.start_s * fs <= i < s.end_s * fs for s in spans) for i in (start, start + window - 1)]
            assert covered == [in_span, in_span]
    assert set(inside.labels) == {0, 3} and len(inside) > 0 and len(outside) > 0


def test_window_augmenter_scales_effort_except_rest_and_recomputes_features():
    import torch

    from dsp.features import MODEL_FEATURES
    from models.predictor import handcrafted_features
    from models.training import window_augmenter
    from simulators.electrodes import ElectrodeLayout

    rng = np.random.default_rng(1)
    windows = torch.from_numpy(rng.standard_normal((64, 8, 40)).astype(np.float32) * 20)
    labels = torch.arange(64) % 4
    layout = ElectrodeLayout.ring(8).to_dict()
    classes = ["rest", "fist", "pinch", "point"]  # labels % 4: every fourth window is rest
    augment = window_augmenter(TrainingConfig(effort_scale=2.0), layout, 200.0, list(MODEL_FEATURES), classes)
    out, features = augment(windows, labels, np.random.default_rng(2))
    ratio = (out.std(dim=(1, 2)) / windows.std(dim=(1, 2))).numpy()
    np.testing.assert_allclose(ratio[labels.numpy() == 0], 1.0, rtol=1e-5)  # rest keeps its level
    moved = ratio[labels.numpy() != 0]
    assert moved.min() >= 0.5 - 1e-4 and moved.max() <= 2.0 + 1e-4 and moved.std() > 0.1
    np.testing.assert_allclose(features.numpy(), handcrafted_features(out.numpy(), 200.0, MODEL_FEATURES), rtol=1e-5)
    assert window_augmenter(TrainingConfig(), layout, 200.0, [], classes) is None


def test_window_augmenter_rotates_a_ring_only_into_neighbouring_electrodes():
    import torch

    from models.training import window_augmenter
    from simulators.electrodes import ElectrodeLayout

    windows = torch.zeros(32, 8, 40)
    windows[:, 3] = torch.randn(32, 40)  # only electrode 3 active
    config = TrainingConfig(electrode_shift=0.5, channel_gain=1.0)
    augment = window_augmenter(config, ElectrodeLayout.ring(8).to_dict(), 200.0, [], ["fist"])
    out, _ = augment(windows, torch.zeros(32, dtype=torch.long), np.random.default_rng(0))
    energy = out.pow(2).sum(dim=2)
    assert torch.all(energy[:, [0, 1, 5, 6, 7]] == 0)  # half a spacing reaches the two neighbours at most
    assert torch.all(energy[:, 3] > 0.2 * windows[:, 3].pow(2).sum(dim=1))
    assert torch.any(energy[:, 2] > 0) and torch.any(energy[:, 4] > 0)
