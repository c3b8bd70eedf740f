"""Real NeuroFusionNet checkpoints for the inference tests (small, untrained, seeded: the wire is under test)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np


def make_checkpoint(directory: Path, layout_name: str = "ring8", fs: float = 2000.0, window_samples: int = 400,
                    seed: int = 0) -> Path:
    import torch

    from dsp.features import MODEL_FEATURES
    from models.checkpoint import ModelCard, build_model, save_checkpoint
    from models.neurofusionnet import NetworkConfig
    from simulators.electrodes import ElectrodeLayout

    layout = ElectrodeLayout.from_name(layout_name)
    classes = ["healthy", "myopathy", "neuropathy"]
    config = NetworkConfig(n_channels=layout.n_channels, n_classes=len(classes), n_features=len(MODEL_FEATURES),
                           hidden=16, conv_channels=(8, 16), heads=2)
    card = ModelCard(model_id=f"test-{layout_name}-{seed}", classes=classes, n_channels=layout.n_channels, fs=fs,
                     window_samples=window_samples, layout=layout.to_dict(), feature_names=list(MODEL_FEATURES),
                     network=config.to_dict())
    torch.manual_seed(seed)
    model = build_model(card)
    return save_checkpoint(Path(directory) / f"{card.model_id}.pt", model.eval(), card)


def emg_like_windows(n_windows: int, n_channels: int, n_samples: int, seed: int = 0) -> np.ndarray:
    """Band-limited noise bursts at EMG amplitudes (µV), different per channel: inputs that give varied outputs."""
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n_windows, n_channels, n_samples + 200))
    sos = butter(4, [20, 450], btype="bandpass", fs=2000.0, output="sos")
    filtered = sosfilt(sos, noise, axis=-1)[..., 200:]
    gains = rng.uniform(5.0, 200.0, size=(n_windows, n_channels, 1))
    return (filtered * gains).astype(np.float32)


def collect_decisions(client: Any, count: int, timeout_s: float = 30.0) -> list:
    """Poll an InferenceClient until ``count`` decisions came back or ``timeout_s`` passed."""
    decisions: list = []
    give_up = time.monotonic() + timeout_s
    while len(decisions) < count and time.monotonic() < give_up:
        decisions += client.poll(0.2)
    return decisions
