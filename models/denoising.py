"""Artifact removal with a small denoising autoencoder (the paper's Algorithm 1, step 5), measured against the
causal filters alone.

Training pairs come from the simulator: clean EMG (no artifacts at all) and the same EMG with motion artifacts,
electrode pops and broadband noise added (``corrupt``). Both go through the monitor's causal filter chain
(``dsp.filters.default_chain``) as continuous streams, then are cut into windows: the network learns to map a
filtered corrupted window to the filtered clean one, i.e. to remove what the filters leave behind.

The network is a 1-D convolutional encoder-decoder applied to each channel of a window on its own (so it works
for any channel count), on windows scaled by their own RMS (so it works at any amplitude) and scaled back.
It runs causally window by window: ``denoise_stream`` keeps only the last hop of each denoised window, so every
output sample depends only on samples up to it (latency: one hop of buffering plus the network's time).

Figures (``compare``): output SNR (dB) and RMSE (µV) against the filtered clean truth, for the filters alone and
filters + autoencoder, on held-out simulated subjects. It is never on by default: see docs/paper-stages.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dsp.filters import default_chain
from models.cached_training import fit_minibatches, settings_key, train_or_load_cached
from models.weight_cache import is_verified, user_cache_dir, write_verified

if TYPE_CHECKING:
    from torch import nn

CACHE_DIR = user_cache_dir()  # private to the user (models/weight_cache.py)


@dataclass(frozen=True)
class CorruptionConfig:
    snr_db_range: tuple[float, float] = (0.0, 20.0)  # broadband noise, per recording
    motion_per_min: float = 12.0
    motion_uv: tuple[float, float] = (100.0, 600.0)
    pops_per_min: float = 6.0
    pop_uv: tuple[float, float] = (200.0, 2000.0)


def corrupt(
    clean: np.ndarray, fs: float, rng: np.random.Generator, config: CorruptionConfig | None = None
) -> np.ndarray:
    """``clean`` (n, C) µV plus broadband noise, motion artifacts (decaying 1-4 Hz swings on all channels) and
    electrode pops (a sudden step on one channel that decays back over 0.2-1 s)."""
    config = config or CorruptionConfig()
    n, n_channels = clean.shape
    out = np.asarray(clean, dtype=np.float64).copy()
    power = np.mean(out**2, axis=0)
    snr_db = rng.uniform(*config.snr_db_range)
    out += rng.standard_normal(out.shape) * np.sqrt(power / 10.0 ** (snr_db / 10.0))
    minutes = n / fs / 60.0
    for _ in range(rng.poisson(config.motion_per_min * minutes)):
        start = int(rng.integers(0, n))
        decay_s = rng.uniform(0.08, 0.3)
        t = np.arange(min(n - start, int(5 * decay_s * fs))) / fs
        wave = rng.uniform(*config.motion_uv) * np.sin(2 * math.pi * rng.uniform(1.0, 4.0) * t) * np.exp(-t / decay_s)
        out[start : start + len(t)] += wave[:, None] * rng.uniform(0.3, 1.0, n_channels)[None, :]
    for _ in range(rng.poisson(config.pops_per_min * minutes * n_channels)):
        start = int(rng.integers(0, n))
        channel = int(rng.integers(0, n_channels))
        t = np.arange(min(n - start, int(1.5 * fs))) / fs
        amplitude = rng.uniform(*config.pop_uv) * rng.choice([-1.0, 1.0])
        out[start : start + len(t), channel] += amplitude * np.exp(-t / rng.uniform(0.2, 1.0))
    return out


def build_denoiser(width: int = 24) -> nn.Module:
    from torch import nn

    class WindowDenoiser(nn.Module):
        """(B, 1, S) -> (B, 1, S): strided conv encoder, transposed-conv decoder, residual to the input."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.Sequential(
                nn.Conv1d(1, width, 9, stride=2, padding=4), nn.GELU(),
                nn.Conv1d(width, 2 * width, 9, stride=2, padding=4), nn.GELU(),
                nn.Conv1d(2 * width, 2 * width, 9, padding=4), nn.GELU(),
            )  # fmt: skip
            self.decoder = nn.Sequential(
                nn.ConvTranspose1d(2 * width, width, 8, stride=2, padding=3), nn.GELU(),
                nn.ConvTranspose1d(width, width, 8, stride=2, padding=3), nn.GELU(),
                nn.Conv1d(width, 1, 9, padding=4),
            )  # fmt: skip

        def forward(self, x):
            length = x.shape[-1]
            padded = nn.functional.pad(x, (0, (-length) % 4))
            return x - self.decoder(self.encoder(padded))[..., :length]  # predicts the artifact left in the window

    return WindowDenoiser()


def _scale(windows: np.ndarray) -> np.ndarray:
    """Per window-channel scale: RMS, floored so silent windows are not blown up."""
    return np.maximum(np.sqrt(np.mean(windows.astype(np.float64) ** 2, axis=-1, keepdims=True)), 1e-3)


def denoise_windows(network: nn.Module, windows: np.ndarray, batch: int = 1024) -> np.ndarray:
    """(W, C, S) filtered windows -> (W, C, S) denoised, each window and channel on its own."""
    import torch

    windows = np.asarray(windows, dtype=np.float32)
    w, c, s = windows.shape
    flat = windows.reshape(w * c, 1, s)
    scale = _scale(flat).astype(np.float32)
    out = np.empty_like(flat)
    with torch.inference_mode():
        for start in range(0, len(flat), batch):
            piece = torch.from_numpy(flat[start : start + batch] / scale[start : start + batch])
            out[start : start + batch] = network(piece).numpy() * scale[start : start + batch]
    return out.reshape(w, c, s)


def denoise_stream(network: nn.Module, filtered: np.ndarray, window: int, hop: int) -> np.ndarray:
    """Causal, window by window: each output hop is the last ``hop`` samples of the denoised window ending there.
    The first ``window - hop`` samples (before a full window exists) pass through unchanged."""
    filtered = np.asarray(filtered, dtype=np.float32)
    out = filtered.copy()
    ends = np.arange(window, len(filtered) + 1, hop)
    if len(ends) == 0:
        return out
    windows = np.stack([filtered[end - window : end].T for end in ends])  # (W, C, S)
    denoised = denoise_windows(network, windows)
    for end, result in zip(ends, denoised, strict=True):
        out[end - hop : end] = result[:, -hop:].T
    return out


@dataclass(frozen=True)
class DenoiserTraining:
    fs: float = 2048.0
    layout: str = "ring8"
    subjects: int = 6
    seconds_per_subject: float = 30.0
    window_ms: float = 200.0
    hop_ms: float = 100.0
    epochs: int = 8
    batch_size: int = 256
    learning_rate: float = 2e-3
    width: int = 24
    seed: int = 0

    def key(self) -> str:
        return settings_key(self)


def simulated_pairs(
    settings: DenoiserTraining, seeds: list[int], rng: np.random.Generator, cache_dir: Path | None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """-> list of (filtered clean (n, C), filtered corrupted (n, C)) streams, one per simulated subject."""
    from simulators.emg import EmgSimulator, SimulationConfig

    pairs = []
    conditions = ("healthy", "myopathy", "neuropathy")
    for seed in seeds:
        path = None if cache_dir is None else Path(cache_dir) / (
            f"clean-{settings.layout}-{settings.fs:g}-{seed}-{settings.seconds_per_subject:g}s.npy")  # fmt: skip
        if path is not None and is_verified(path):  # a file whose hash does not match is simulated again
            clean = np.load(path, allow_pickle=False)
        else:
            config = SimulationConfig(layout=settings.layout, fs=settings.fs, condition=conditions[seed % 3],
                                      profile="gestures", mvc_percent=float(20 + 10 * (seed % 5)), period_s=2.0,
                                      artifacts=(), mains_hz=0.0, seed=seed)  # fmt: skip
            clean = EmgSimulator(config).generate(settings.seconds_per_subject)
            if path is not None:
                write_verified(path, lambda stream, signal=clean: np.save(stream, signal))
        corrupted = corrupt(clean, settings.fs, rng)
        pairs.append((_filtered(clean, settings.fs), _filtered(corrupted, settings.fs)))
    return pairs


def _filtered(x: np.ndarray, fs: float) -> np.ndarray:
    chain = default_chain(fs, x.shape[1])
    return chain.process(np.asarray(x, dtype=np.float64))[0]


def _windows(stream: np.ndarray, window: int, hop: int, skip: int) -> np.ndarray:
    ends = np.arange(skip + window, len(stream) + 1, hop)
    return np.stack([stream[end - window : end].T for end in ends]).astype(np.float32)


def train_denoiser(settings: DenoiserTraining | None = None, cache_dir: Path | None = CACHE_DIR) -> nn.Module:
    """Trains (or loads from ``cache_dir``) the denoiser on simulated subjects with seeds 0..subjects-1."""
    settings = settings or DenoiserTraining()
    fit = partial(_fit_on_simulated_pairs, settings=settings, cache_dir=cache_dir)
    return train_or_load_cached("denoiser", settings, cache_dir, lambda: build_denoiser(settings.width), fit)


def _fit_on_simulated_pairs(network: nn.Module, settings: DenoiserTraining, cache_dir: Path | None) -> None:
    """Trains ``network`` to map filtered corrupted windows to the filtered clean ones, each scaled by the
    corrupted window's RMS."""
    import torch

    rng = np.random.default_rng(settings.seed)
    window = int(round(settings.window_ms * settings.fs / 1000))
    hop = int(round(settings.hop_ms * settings.fs / 1000))
    clean_parts, noisy_parts = [], []
    for clean, noisy in simulated_pairs(settings, list(range(settings.subjects)), rng, cache_dir):
        skip = int(0.5 * settings.fs)
        clean_parts.append(_windows(clean, window, hop, skip).reshape(-1, 1, window))
        noisy_parts.append(_windows(noisy, window, hop, skip).reshape(-1, 1, window))
    clean_windows, noisy_windows = np.concatenate(clean_parts), np.concatenate(noisy_parts)
    scale = _scale(noisy_windows).astype(np.float32)
    x = torch.from_numpy(noisy_windows / scale)
    y = torch.from_numpy(clean_windows / scale)
    # live, only the last hop of each window is kept: weight the end of the window (where the network sees no
    # right-hand context) four times as much as the rest
    weights = torch.ones(window)
    weights[-window // 4 :] = 4.0
    weights /= weights.mean()

    def batch_loss(batch: torch.Tensor) -> torch.Tensor:
        return (weights * (network(x[batch]) - y[batch]) ** 2).mean()

    fit_minibatches(network, len(x), batch_loss, settings)


def snr_rmse(estimate: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(SNR dB = truth power / error power, RMSE µV) of ``estimate`` against ``truth``."""
    error = np.asarray(estimate, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    snr = 10.0 * math.log10(float(np.mean(np.square(truth, dtype=np.float64))) / max(float(np.mean(error**2)), 1e-12))
    return round(snr, 2), round(float(np.sqrt(np.mean(error**2))), 3)


def compare(network: nn.Module, settings: DenoiserTraining, test_seeds: list[int], seed: int = 123,
            cache_dir: Path | None = CACHE_DIR) -> dict[str, Any]:  # fmt: skip
    """Output SNR and RMSE against the filtered clean truth on held-out subjects: raw (filtered only for the
    comparison's band), causal filters alone, filters + autoencoder (causal, window by window)."""
    rng = np.random.default_rng(seed)
    window = int(round(settings.window_ms * settings.fs / 1000))
    hop = int(round(50.0 * settings.fs / 1000))
    skip = int(1.0 * settings.fs)
    filtered_parts, denoised_parts, truth_parts = [], [], []
    for clean, noisy in simulated_pairs(settings, test_seeds, rng, cache_dir):
        filtered_parts.append(noisy[skip:])
        denoised_parts.append(denoise_stream(network, noisy, window, hop)[skip:])
        truth_parts.append(clean[skip:])
    truth = np.concatenate(truth_parts)
    filters_only = snr_rmse(np.concatenate(filtered_parts), truth)
    with_autoencoder = snr_rmse(np.concatenate(denoised_parts), truth)
    return {
        "test_subjects": list(test_seeds),
        "seconds": round(len(truth) / settings.fs, 1),
        "filters_only": {"snr_db": filters_only[0], "rmse_uv": filters_only[1]},
        "filters_plus_autoencoder": {"snr_db": with_autoencoder[0], "rmse_uv": with_autoencoder[1]},
    }


def compare_on_recording(network: nn.Module, recording: np.ndarray, fs: float, seed: int = 0,
                         window_ms: float = 200.0, hop_ms: float = 50.0) -> dict[str, Any]:  # fmt: skip
    """The same comparison on a real recording, taken as the truth: our corruption is added to it, and both
    the causal filters alone and filters + autoencoder are scored against the filtered original. Also scores what
    the autoencoder does to the uncorrupted recording (it should leave real EMG alone: a high SNR)."""
    rng = np.random.default_rng(seed)
    recording = np.asarray(recording, dtype=np.float64)
    truth = _filtered(recording, fs)
    corrupted = _filtered(corrupt(recording, fs, rng), fs)
    window, hop = int(round(window_ms * fs / 1000)), int(round(hop_ms * fs / 1000))
    skip = int(1.0 * fs)
    filters_only = snr_rmse(corrupted[skip:], truth[skip:])
    with_autoencoder = snr_rmse(denoise_stream(network, corrupted, window, hop)[skip:], truth[skip:])
    untouched = snr_rmse(denoise_stream(network, truth, window, hop)[skip:], truth[skip:])
    return {
        "seconds": round((len(truth) - skip) / fs, 1),
        "channels": int(truth.shape[1]),
        "filters_only": {"snr_db": filters_only[0], "rmse_uv": filters_only[1]},
        "filters_plus_autoencoder": {"snr_db": with_autoencoder[0], "rmse_uv": with_autoencoder[1]},
        "clean_recording_through_autoencoder": {"snr_db": untouched[0], "rmse_uv": untouched[1]},
    }
