"""Predictor behaviour the worker relies on: masks, NaN, resampling, the bundled default."""

from __future__ import annotations

import numpy as np
from model_helpers import emg_windows
from scipy.signal import resample_poly

from models.checkpoint import BUNDLED_CHECKPOINT
from models.predictor import load_predictor


def test_masked_or_non_finite_channels_get_no_attention_and_change_nothing(ring_checkpoint):
    predictor = load_predictor(ring_checkpoint, backend="torch")
    windows = emg_windows(2, 8, 410)
    mask = np.ones((2, 8), bool)
    mask[:, 2] = False
    reference = predictor.predict(windows, mask, 2048.0)
    broken = windows.copy()
    broken[:, 2, 100:] = np.nan  # a lifted electrode: NaN in a masked channel
    broken[:, 5, 7] = np.inf  # and a non-finite sample in a channel marked usable: masked by the predictor
    result = predictor.predict(broken, mask, 2048.0)
    assert np.isfinite(result.probabilities).all()
    assert (result.channel_attention[:, [2, 5]] == 0).all()
    assert (reference.channel_attention[:, 5] > 0).all()
    both_masked = mask.copy()
    both_masked[:, 5] = False
    expected = predictor.predict(windows, both_masked, 2048.0)
    np.testing.assert_allclose(result.probabilities, expected.probabilities, atol=1e-6)


def test_a_window_at_another_rate_is_resampled_to_the_model_rate(ring_checkpoint):
    predictor = load_predictor(ring_checkpoint, backend="torch")
    at_model_rate = emg_windows(3, 8, 410, fs=2048.0)
    at_1024 = resample_poly(at_model_rate, 1, 2, axis=-1).astype(np.float32)
    direct = predictor.predict(resample_poly(at_1024, 2, 1, axis=-1).astype(np.float32), None, 2048.0)
    via_predictor = predictor.predict(at_1024, None, 1024.0)
    np.testing.assert_allclose(via_predictor.probabilities, direct.probabilities, atol=1e-5)
    # without the resampling the model would see a different window and answer differently
    unresampled = predictor.predict(at_1024, None, 2048.0)
    assert np.abs(unresampled.probabilities - direct.probabilities).max() > 1e-4


def test_the_bundled_default_loads_and_predicts_on_its_own_layout():
    predictor = load_predictor()
    card = predictor.card
    assert BUNDLED_CHECKPOINT.stat().st_size < 5_000_000
    windows = emg_windows(2, card.n_channels, card.window_samples, fs=card.fs)
    result = predictor.predict(windows, np.ones((2, card.n_channels), bool), card.fs)
    assert result.probabilities.shape == (2, len(card.classes))
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert card.metrics, "the bundled model card must carry its measured test figures"
