"""The recording-statistics needle model: the torch form computes the same statistics as the training code, a saved
model loads back to the same verdicts, and loading and running it imports neither torch nor torch_geometric."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from models.needle_features import FEATURE_NAMES
from models.needle_model import NeedleModel, load_needle_model, save_needle_model
from models.needle_net import NeedleStatisticsConfig, NeedleStatisticsNet, recording_statistics_torch
from models.needle_training import recording_statistics

ROOT = Path(__file__).resolve().parents[2]


def test_torch_statistics_match_the_training_statistics():
    features = np.random.default_rng(0).normal(size=(2, 17, 5)).astype(np.float32)
    expected = recording_statistics(list(features))
    assert np.allclose(recording_statistics_torch(torch.from_numpy(features)).numpy(), expected, atol=1e-5)


def fitted_network(seed: int = 0) -> NeedleStatisticsNet:
    network = NeedleStatisticsNet(NeedleStatisticsConfig(n_features=len(FEATURE_NAMES)))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        network.statistics_mean.normal_(generator=generator)
        network.statistics_scale.uniform_(0.5, 2.0, generator=generator)
        network.classifier.weight.normal_(std=0.1, generator=generator)
    return network.eval()


def test_a_saved_statistics_model_loads_back_to_the_same_verdict(tmp_path):
    card = {"model_id": "needle-statistics-test", "classes": ["healthy", "myopathy", "neuropathy"]}
    model = NeedleModel(fitted_network(), card)
    path = save_needle_model(tmp_path / "needle.pt", model.network, card)
    loaded = load_needle_model(path)
    signal = np.random.default_rng(1).normal(0, 80, 2 * 8000).astype(np.float32)
    before, after = model.predict_recording(signal, 8000.0), loaded.predict_recording(signal, 8000.0)
    assert loaded.card["network"]["kind"] == "statistics"
    assert after["windows"] == before["windows"] == 7
    for name, value in before["probabilities"].items():
        assert after["probabilities"][name] == pytest.approx(value, abs=1e-6)


def test_loading_a_statistics_model_imports_neither_torch_nor_torch_geometric(tmp_path):
    card = {"model_id": "needle-statistics-test", "classes": ["healthy", "myopathy", "neuropathy"]}
    path = save_needle_model(tmp_path / "needle.pt", fitted_network(), card)
    code = ("import sys; from models.needle_model import load_needle_model; import numpy as np; "
            f"m = load_needle_model({str(path)!r}); m.predict_recording(np.ones(8000, np.float32), 8000.0); "
            "print('torch_geometric' in sys.modules, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-500:]
    # the statistics model runs in numpy (models.tensor_archive reads its weights): ~1 s of CPU less per analyze
    assert result.stdout.strip() == "False False"
