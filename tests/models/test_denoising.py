"""Denoising autoencoder: corruption at the stated SNR, causal window-by-window running, scale handling, and a
short training that must lower the error on held-out simulated subjects relative to the untrained network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.denoising import (
    CorruptionConfig,
    DenoiserTraining,
    build_denoiser,
    compare,
    corrupt,
    denoise_stream,
    denoise_windows,
    snr_rmse,
    train_denoiser,
)

FS = 1024.0


def test_broadband_noise_is_added_at_the_drawn_snr():
    clean = np.random.default_rng(0).normal(0, 80, (20_000, 4))
    only_noise = CorruptionConfig(snr_db_range=(12.0, 12.0), motion_per_min=0.0, pops_per_min=0.0)
    noisy = corrupt(clean, FS, np.random.default_rng(1), only_noise)
    snr, rmse = snr_rmse(noisy, clean)
    assert snr == pytest.approx(12.0, abs=0.2)
    assert rmse == pytest.approx(80 / 10 ** (12 / 20), rel=0.03)


def test_motion_and_pops_are_large_and_slow():
    clean = np.zeros((int(60 * FS), 8))
    events = CorruptionConfig(snr_db_range=(200.0, 200.0), motion_per_min=10.0, pops_per_min=3.0)
    corrupted = corrupt(clean, FS, np.random.default_rng(2), events)
    assert np.abs(corrupted).max() > 100.0  # motion swings of 100-600 µV, pops of 0.2-2 mV
    spectrum = np.abs(np.fft.rfft(corrupted, axis=0)) ** 2
    frequencies = np.fft.rfftfreq(len(corrupted), 1 / FS)
    assert spectrum[frequencies < 20].sum() > 0.9 * spectrum.sum()  # below the EMG band: what the filters target


def test_stream_denoising_is_causal():
    network = build_denoiser(8).eval()
    x = np.random.default_rng(3).normal(0, 50, (2048, 2)).astype(np.float32)
    changed = x.copy()
    changed[1500:] += 1000.0
    first, second = denoise_stream(network, x, 204, 51), denoise_stream(network, changed, 204, 51)
    last_unchanged_hop_end = 1500 - (1500 - 204) % 51  # output hops ending before sample 1500 never saw it
    np.testing.assert_array_equal(first[:last_unchanged_hop_end - 51], second[:last_unchanged_hop_end - 51])
    assert not np.array_equal(first[1500:], second[1500:])


def test_windows_are_denoised_independently_of_their_scale():
    network = build_denoiser(8).eval()
    windows = np.random.default_rng(4).normal(0, 1, (3, 2, 200)).astype(np.float32)
    np.testing.assert_allclose(denoise_windows(network, 100 * windows), 100 * denoise_windows(network, windows),
                               rtol=1e-4, atol=1e-3)  # fmt: skip


def test_short_training_lowers_the_error_on_held_out_subjects(tmp_path):
    settings = DenoiserTraining(fs=FS, subjects=2, seconds_per_subject=5.0, epochs=3, width=12)
    trained = train_denoiser(settings, cache_dir=tmp_path)
    torch.manual_seed(settings.seed)
    untrained = build_denoiser(settings.width).eval()
    held_out = [50]
    after = compare(trained, settings, held_out, cache_dir=tmp_path)
    before = compare(untrained, settings, held_out, cache_dir=tmp_path)
    assert after["filters_only"] == before["filters_only"]  # same corrupted recording, same filters
    assert after["filters_plus_autoencoder"]["rmse_uv"] < before["filters_plus_autoencoder"]["rmse_uv"]
    assert list(tmp_path.glob("denoiser-*.pt"))
