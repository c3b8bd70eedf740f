"""Checkpoint round trip (weights_only loading), model card, layout checks, bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from model_helpers import emg_windows

from models.checkpoint import ModelCard, card_path, load_checkpoint
from models.predictor import load_predictor
from simulators.electrodes import ElectrodeLayout


def test_round_trip_restores_identical_weights_buffers_and_card(ring_checkpoint):
    model, card = load_checkpoint(ring_checkpoint)
    payload = torch.load(ring_checkpoint, weights_only=True)  # no pickle of arbitrary objects is needed
    for name, value in payload["state_dict"].items():
        assert torch.equal(model.state_dict()[name], value), name
    assert card.classes == ["healthy", "myopathy", "neuropathy"]
    assert card.n_channels == 8 and card.fs == 2048.0 and card.window_samples == 410
    assert card.network["n_features"] == len(card.feature_names) == 11
    side_card = json.loads(card_path(ring_checkpoint).read_text())
    assert side_card == json.loads(card.to_json())
    assert ModelCard.from_json(card.to_json()) == card


def test_the_predictor_reloaded_from_disk_gives_the_same_outputs(ring_checkpoint):
    windows = emg_windows(4, 8, 410)
    first = load_predictor(ring_checkpoint, backend="torch").predict(windows, np.ones((4, 8), bool), 2048.0)
    second = load_predictor(ring_checkpoint, backend="torch").predict(windows, np.ones((4, 8), bool), 2048.0)
    np.testing.assert_array_equal(first.probabilities, second.probabilities)
    assert first.probabilities.shape == (4, 3) and first.channel_attention.shape == (4, 8)
    np.testing.assert_allclose(first.probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_a_different_layout_is_rejected_with_a_clear_message(ring_checkpoint):
    with pytest.raises(ValueError, match="expects 8 channels.*grid"):
        load_predictor(ring_checkpoint, layout=ElectrodeLayout.from_name("grid8x8"))
    shifted = ElectrodeLayout.grid(2, 4)  # 8 channels too, but a grid, not the ring the model learned
    with pytest.raises(ValueError, match="trained on a ring of 8 electrodes"):
        load_predictor(ring_checkpoint, layout=shifted.to_dict())
    load_predictor(ring_checkpoint, layout=ElectrodeLayout.ring(8))  # the right one passes
    predictor = load_predictor(ring_checkpoint, backend="torch")
    with pytest.raises(ValueError, match="expects 8 channels, got 64"):
        predictor.predict(emg_windows(1, 64, 410), np.ones((1, 64), bool), 2048.0)


def test_a_file_that_is_not_a_checkpoint_is_rejected(tmp_path):
    not_torch = tmp_path / "notes.pt"
    not_torch.write_text("hello")
    with pytest.raises(ValueError, match="not a NeuroFusionNet checkpoint"):
        load_checkpoint(not_torch)
    # a pickle naming a class outside torch's weights-only allow-list: torch's own error advises
    # weights_only=False (running the file's code); ours must say what the file is not, in one line, and never that
    foreign_object = tmp_path / "object.pt"
    torch.save({"card": ElectrodeLayout.ring(8)}, foreign_object)
    for bad in (not_torch, foreign_object):
        with pytest.raises(ValueError) as refused:
            load_checkpoint(bad)
        message = str(refused.value)
        assert message == f"{bad} is not a NeuroFusionNet checkpoint (unreadable as one)"
        assert refused.value.__cause__ is None and refused.value.__suppress_context__
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="not a NeuroFusionNet checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
