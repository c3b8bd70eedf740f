"""The fatigue forecaster's ONNX export: it is the bundled state dict (by hash and by output), it forecasts what torch
forecasts at every history length the GUI feeds, and the GUI falls back to torch whenever it cannot be used."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from models import prognosis
from models.forecaster_onnx import (
    BUNDLED_ONNX,
    OnnxForecaster,
    export_forecaster,
    file_sha256,
    load_onnx_forecaster,
    onnx_mismatch,
)
from models.prognosis import BUNDLED_WEIGHTS, HISTORY_EPOCHS, MIN_HISTORY_EPOCHS, lstm_forecast, simulate_trajectories

# from the first forecast (20 s of contraction) past the network's 90 s window to a 6-minute hold
HISTORY_LENGTHS = (MIN_HISTORY_EPOCHS, 17, HISTORY_EPOCHS - 1, HISTORY_EPOCHS, HISTORY_EPOCHS + 1, 120, 180)


@pytest.fixture(scope="module")
def torch_forecaster():
    return prognosis.load_forecaster()


@pytest.fixture(scope="module")
def onnx_forecaster():
    forecaster, reason = load_onnx_forecaster()
    assert forecaster is not None, reason
    return forecaster


def test_the_bundled_onnx_file_is_small_and_exported_from_the_bundled_weights():
    card = json.loads(BUNDLED_WEIGHTS.with_suffix(".json").read_text())
    assert card["onnx"]["file"] == BUNDLED_ONNX.name
    assert card["onnx"]["weights_sha256"] == file_sha256(BUNDLED_WEIGHTS)
    assert card["onnx"]["sha256"] == file_sha256(BUNDLED_ONNX)
    assert onnx_mismatch() is None
    assert BUNDLED_ONNX.stat().st_size < 200_000


@pytest.mark.parametrize("length", HISTORY_LENGTHS)
def test_onnx_forecasts_equal_torch_on_simulated_contractions_at_every_history_length(
    length, torch_forecaster, onnx_forecaster
):
    observed, _ = simulate_trajectories(6, seed=100 + length)  # the forecaster's own trajectory family, with noise
    histories = observed[:, :length]
    mean_torch, std_torch = lstm_forecast(torch_forecaster, histories)
    mean_onnx, std_onnx = lstm_forecast(onnx_forecaster, histories)
    # Hz values around 50-120: 1e-4 relative is about 0.01 Hz, far below the forecast's own spread
    np.testing.assert_allclose(mean_onnx, mean_torch, rtol=1e-4, atol=0)
    np.testing.assert_allclose(std_onnx, std_torch, rtol=1e-4, atol=0)
    for one in range(2):  # the GUI forecasts one contraction at a time: batch 1 is the size that matters
        np.testing.assert_allclose(lstm_forecast(onnx_forecaster, histories[one])[0], mean_torch[one : one + 1],
                                   rtol=1e-4, atol=0)  # fmt: skip


@pytest.mark.parametrize("steps", [2, 30, HISTORY_EPOCHS, 90])
def test_raw_network_outputs_match_torch_to_1e_4_for_any_sequence_length(steps, torch_forecaster, onnx_forecaster):
    import torch

    rng = np.random.default_rng(steps)
    features = np.stack([rng.normal(-0.1, 0.05, (3, steps)), np.ones((3, steps))], axis=-1).astype(np.float32)
    with torch.inference_mode():
        expected = [out.numpy() for out in torch_forecaster(torch.from_numpy(features))]
    for want, got in zip(expected, onnx_forecaster(features), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_export_records_both_hashes_and_a_changed_file_is_refused(tmp_path, torch_forecaster):
    weights = tmp_path / BUNDLED_WEIGHTS.name
    shutil.copy(BUNDLED_WEIGHTS, weights)
    card = json.loads(BUNDLED_WEIGHTS.with_suffix(".json").read_text())
    card.pop("onnx")
    weights.with_suffix(".json").write_text(json.dumps(card))
    assert "no exported ONNX file" in onnx_mismatch(weights)
    exported = export_forecaster(weights)
    assert exported == weights.with_suffix(".onnx") and onnx_mismatch(weights) is None
    history = simulate_trajectories(2, seed=3)[0][:, :60]
    np.testing.assert_allclose(lstm_forecast(OnnxForecaster(exported), history)[0],
                               lstm_forecast(torch_forecaster, history)[0], rtol=1e-4)  # fmt: skip
    kept = json.loads(weights.with_suffix(".json").read_text())
    assert kept["held_out"] == card["held_out"]  # the export adds its entry, the rest of the card stays
    # retrained weights without a fresh export: the ONNX file is another network
    weights.write_bytes(weights.read_bytes() + b"\0")
    assert "exported from other weights" in onnx_mismatch(weights)
    shutil.copy(BUNDLED_WEIGHTS, weights)
    exported.write_bytes(exported.read_bytes() + b"\0")
    assert "changed since its export" in onnx_mismatch(weights)


def test_the_live_loader_prefers_onnx_and_falls_back_to_torch(tmp_path, monkeypatch):
    from torch import nn

    assert isinstance(prognosis.load_live_forecaster(), OnnxForecaster)
    # weights with no export beside them (retrained, or a package without the .onnx): torch loads them
    weights = tmp_path / BUNDLED_WEIGHTS.name
    shutil.copy(BUNDLED_WEIGHTS, weights)
    shutil.copy(BUNDLED_WEIGHTS.with_suffix(".json"), weights.with_suffix(".json"))
    assert isinstance(prognosis.load_live_forecaster(weights), nn.Module)
    # no onnxruntime: the bundled export cannot run, torch does
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert load_onnx_forecaster()[1] == "onnxruntime is not installed"
    assert isinstance(prognosis.load_live_forecaster(), nn.Module)
