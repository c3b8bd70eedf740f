"""Augmentations: each does exactly the transformation it names, checked against independent computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.augmentation import (
    Augmenter,
    _ring_rotate,
    add_noise,
    augment_windows,
    drop_channels,
    scale_amplitude,
    shift_electrodes,
    time_warp,
)
from simulators.electrodes import ElectrodeLayout


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_amplitude_scaling_is_one_gain_per_window_within_bounds():
    x = rng().normal(0, 50, (200, 4, 100)).astype(np.float32)
    y = scale_amplitude(x, rng(1), max_gain=1.5)
    gains = y / x
    np.testing.assert_allclose(gains, gains[:, :1, :1] * np.ones_like(gains), rtol=1e-5)
    assert gains.min() >= 1 / 1.5 - 1e-6 and gains.max() <= 1.5 + 1e-6
    assert abs(np.mean(np.log(gains[:, 0, 0]))) < 0.05  # log-uniform: as often louder as quieter
    per_channel = scale_amplitude(x, rng(1), per_channel=True) / x
    assert np.std(per_channel[:, :, 0], axis=1).mean() > 0.05


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
def test_noise_is_added_at_the_requested_snr(snr_db):
    x = rng().normal(0, 30, (50, 3, 2000))
    noise = add_noise(x, rng(2), snr_db) - x
    measured = 10 * np.log10(np.mean(x**2) / np.mean(noise**2))
    assert measured == pytest.approx(snr_db, abs=0.2)


def test_ring_rotation_by_whole_and_half_spacings():
    x = rng().normal(size=(2, 8, 16))
    np.testing.assert_allclose(_ring_rotate(x, np.array([1.0, -2.0]))[0], np.roll(x[0], -1, axis=0))
    np.testing.assert_allclose(_ring_rotate(x, np.array([1.0, -2.0]))[1], np.roll(x[1], 2, axis=0))
    half = _ring_rotate(x, np.array([0.5, 0.5]))
    np.testing.assert_allclose(half[0], 0.5 * (x[0] + np.roll(x[0], -1, axis=0)))


def one_hot_windows(n_windows: int, n_channels: int) -> np.ndarray:
    """Window n, channel c is 1 at sample c, 0 elsewhere: after a shift, row c shows the weights it mixes."""
    return np.repeat(np.eye(n_channels)[None], n_windows, axis=0)


def test_ring_shift_mixes_two_circular_neighbours_with_one_offset_per_window():
    weights = shift_electrodes(one_hot_windows(30, 8), rng(3), ElectrodeLayout.ring(8), max_shift=1.0)
    np.testing.assert_allclose(weights.sum(axis=2), 1.0, atol=1e-12)
    for window in weights:
        for c in range(8):
            nonzero = np.flatnonzero(window[c] > 1e-12)
            assert len(nonzero) <= 2
            assert all(((n - c) % 8) in (7, 0, 1) for n in nonzero)
        # the same rotation for every channel of the window: row c is row 0 rolled by c
        for c in range(8):
            np.testing.assert_allclose(window[c], np.roll(window[0], c), atol=1e-12)


def test_grid_shift_stays_within_the_neighbouring_electrodes():
    layout = ElectrodeLayout.grid(4, 5)
    weights = shift_electrodes(one_hot_windows(20, 20), rng(4), layout.to_dict(), max_shift=1.0)
    np.testing.assert_allclose(weights.sum(axis=2), 1.0, atol=1e-9)
    rows, cols = np.divmod(np.arange(20), 5)
    for window in weights:
        for c in range(20):
            sources = np.flatnonzero(window[c] > 1e-9)
            assert np.all(np.abs(rows[sources] - rows[c]) <= 1) and np.all(np.abs(cols[sources] - cols[c]) <= 1)
    with pytest.raises(ValueError, match="ring or a grid"):
        shift_electrodes(np.zeros((1, 1, 10)), rng(), ElectrodeLayout.needle())
    with pytest.raises(ValueError, match="channels"):
        shift_electrodes(np.zeros((1, 3, 10)), rng(), ElectrodeLayout.ring(8))


def test_time_warp_keeps_ends_and_order_and_moves_the_middle():
    ramp = np.tile(np.linspace(0, 1, 200), (40, 2, 1))
    warped = time_warp(ramp, rng(5), max_stretch=0.2)
    np.testing.assert_allclose(warped[..., 0], 0.0, atol=1e-12)
    np.testing.assert_allclose(warped[..., -1], 1.0, atol=1e-12)
    assert np.all(np.diff(warped, axis=-1) >= 0)  # a warp never reverses time
    assert np.abs(warped - ramp).max() > 0.01
    assert np.abs(warped - ramp).max() < 0.2


def test_channel_dropout_rate_and_never_all_channels():
    x = np.ones((5000, 8, 4))
    dropped = drop_channels(x, rng(6), probability=0.3)
    silent = (dropped == 0).all(axis=2)
    assert silent.mean() == pytest.approx(0.3 * 7 / 8, abs=0.02)  # one channel per window is always kept
    assert not silent.all(axis=1).any()


def test_torch_tensors_come_back_as_tensors():
    x = torch.randn(6, 8, 50)
    y = Augmenter(layout=ElectrodeLayout.ring(8), p_scale=1, p_noise=1, p_shift=1, p_warp=1, p_drop=1)(x, rng(7))
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32 and y.shape == x.shape
    assert not torch.equal(x, y)


def test_augment_windows_appends_labelled_copies():
    x = rng().normal(size=(10, 8, 40)).astype(np.float32)
    labels = np.arange(10)
    windows, augmented_labels = augment_windows(x, labels, Augmenter(layout=ElectrodeLayout.ring(8)), copies=2)
    assert windows.shape == (30, 8, 40)
    np.testing.assert_array_equal(windows[:10], x)
    np.testing.assert_array_equal(augmented_labels, np.tile(labels, 3))
