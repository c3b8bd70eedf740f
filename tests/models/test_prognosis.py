"""Fatigue prognosis: the LSTM beats linear extrapolation on held-out simulated contractions with known truth."""

from __future__ import annotations

import numpy as np
import pytest

from models.prognosis import (
    EPOCH_S,
    HORIZON_EPOCHS,
    MIN_HISTORY_EPOCHS,
    EnduranceEstimator,
    ForecasterTraining,
    endurance_left,
    evaluate_forecasts,
    linear_forecast,
    lstm_forecast,
    simulate_trajectories,
    train_forecaster,
)

SMALL = ForecasterTraining(trajectories=300, epochs=4)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cache = tmp_path_factory.mktemp("prognosis")
    return train_forecaster(SMALL, cache_dir=cache), cache


def test_lstm_beats_linear_extrapolation_on_held_out_contractions(trained):
    network, _ = trained
    observed, truth = simulate_trajectories(150, seed=99)  # seeds never used in training
    figures = evaluate_forecasts(network, observed, truth)
    assert figures["forecasts"] == 600
    assert figures["lstm_rmse_hz"] < 0.8 * figures["linear_rmse_hz"], figures
    # far ahead the line runs past where conduction velocity stops falling; the LSTM has learned that it levels off
    assert figures["lstm_rmse_by_third_hz"][2] < 0.75 * figures["linear_rmse_by_third_hz"][2]
    assert 0.7 <= figures["lstm_band_coverage"] <= 0.99  # the 90 % band is roughly calibrated


def test_trajectories_follow_the_simulator_fatigue_model():
    observed, truth = simulate_trajectories(20, seed=3)
    assert np.all(np.diff(truth, axis=1) <= 1e-9)  # sustained contraction: MDF never rises
    ratio = truth.min(axis=1) / truth[:, 0]
    assert np.all(ratio >= 0.5 - 1e-9)  # the conduction-velocity floor
    relative_noise = np.std(observed / truth - 1.0)
    assert 0.01 < relative_noise < 0.04


def test_linear_forecast_extends_an_exact_line():
    t = np.arange(40, dtype=np.float64)
    history = (100.0 - 0.5 * t)[None, :]
    forecast = linear_forecast(history)
    expected = 100.0 - 0.5 * (40 + np.arange(HORIZON_EPOCHS))
    np.testing.assert_allclose(forecast[0], expected, atol=1e-8)


def test_endurance_left_reads_the_crossing_times():
    mean = np.linspace(100.0, 70.0, HORIZON_EPOCHS)
    std = np.full(HORIZON_EPOCHS, 2.0)
    result = endurance_left(mean, std, threshold_hz=85.0)
    first_below = int(np.flatnonzero(mean <= 85.0)[0])
    assert result["seconds"] == (first_below + 1) * EPOCH_S
    assert result["earliest_s"] < result["seconds"] < result["latest_s"]
    assert endurance_left(mean, std, threshold_hz=10.0)["seconds"] is None


def test_cached_forecaster_reloads_identically(trained):
    network, cache = trained
    assert list(cache.glob("prognosis-*.pt"))
    again = train_forecaster(SMALL, cache_dir=cache)
    history = simulate_trajectories(2, seed=7)[0][:, :30]
    np.testing.assert_array_equal(lstm_forecast(network, history)[0], lstm_forecast(again, history)[0])


def test_live_estimator_waits_for_enough_trend_then_forecasts(trained):
    network, _ = trained
    observed, _ = simulate_trajectories(1, seed=11)
    estimator = EnduranceEstimator(network)
    for value in observed[0, : MIN_HISTORY_EPOCHS - 1]:
        estimator.add_epoch(value)
    assert estimator.estimate() is None
    estimator.add_epoch(float("nan"))  # a lost epoch is skipped, not fed as a value
    for value in observed[0, MIN_HISTORY_EPOCHS - 1 : 60]:
        estimator.add_epoch(value)
    estimate = estimator.estimate()
    assert len(estimate["forecast_hz"]) == HORIZON_EPOCHS
    assert estimate["threshold_hz"] == pytest.approx(0.85 * np.median(observed[0, :5]), rel=1e-3)


def test_bundled_forecaster_loads_without_training_and_a_stale_card_trains_into_the_user_cache(tmp_path,
                                                                                                 monkeypatch):
    import json

    import torch

    from models import prognosis

    network = prognosis.load_forecaster()
    stored = torch.load(prognosis.BUNDLED_WEIGHTS, weights_only=True)
    assert all(torch.equal(value, network.state_dict()[name]) for name, value in stored.items())
    assert not network.training
    # weights whose card names other training settings are not used: the forecaster is trained and cached instead
    weights = tmp_path / "fatigue-forecaster.pt"
    weights.write_bytes(prognosis.BUNDLED_WEIGHTS.read_bytes())
    weights.with_suffix(".json").write_text(json.dumps({"training_key": "stale"}))
    calls = []
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(prognosis, "train_forecaster", lambda settings, cache_dir: calls.append(cache_dir) or "new")
    assert prognosis.load_forecaster(weights) == "new" and calls == [tmp_path / "cache" / "neurofusion"]
