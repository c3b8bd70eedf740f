"""How the small helper networks (the artifact denoiser, the fatigue forecaster) are trained and cached: one
definition, so that both keep the same seeding, optimiser, schedule and cache names.

A network is built after seeding torch, loaded from the per-user cache when weights trained with the same settings
are there and verified (``models.weight_cache``), otherwise trained by minibatches (AdamW with weight decay 1e-4, a
cosine learning-rate schedule over the epochs, a seeded batch order) and saved there. The cache name holds
``settings_key``, so a change to any training setting trains afresh instead of loading stale weights.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from models.weight_cache import load_cached, save_cached

if TYPE_CHECKING:
    import torch
    from torch import nn


class MinibatchSettings(Protocol):
    epochs: int
    batch_size: int
    learning_rate: float
    seed: int


def settings_key(settings: Any) -> str:
    """12 hex digits of the sha256 of a training-settings dataclass's fields: the cache name's part (and the bundled
    forecaster card's ``training_key``) that tells weights trained with other settings apart."""
    return hashlib.sha256(json.dumps(asdict(settings), sort_keys=True).encode()).hexdigest()[:12]


def train_or_load_cached(
    cache_prefix: str,
    settings: MinibatchSettings,
    cache_dir: Path | None,
    build: Callable[[], nn.Module],
    fit: Callable[[nn.Module], None],
) -> nn.Module:
    """The network ``build()`` makes after ``torch.manual_seed(settings.seed)`` (the seed fixes its initial
    weights), with the verified weights of ``cache_dir/<cache_prefix>-<settings_key(settings)>.pt`` when they are
    there; else ``fit(network)`` trains it and the weights are saved there (``cache_dir`` None: no cache).
    Returned in eval mode."""
    import torch

    torch.manual_seed(settings.seed)
    network = build()
    loaded, path = load_cached(network, cache_dir, f"{cache_prefix}-{settings_key(settings)}")
    if loaded:
        return network.eval()
    fit(network)
    network.eval()
    save_cached(network, path)
    return network


def fit_minibatches(
    network: nn.Module,
    sample_count: int,
    batch_loss: Callable[[torch.Tensor], torch.Tensor],
    settings: MinibatchSettings,
) -> None:
    """Trains ``network`` for ``settings.epochs`` passes over ``sample_count`` training samples in a seeded random
    order; ``batch_loss(indices)`` is the loss of the samples at those indices (each network has its own loss)."""
    import torch

    optimiser = torch.optim.AdamW(network.parameters(), lr=settings.learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, settings.epochs)
    generator = torch.Generator().manual_seed(settings.seed)
    network.train()
    for _ in range(settings.epochs):
        order = torch.randperm(sample_count, generator=generator)
        for start in range(0, sample_count, settings.batch_size):
            loss = batch_loss(order[start : start + settings.batch_size])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        schedule.step()
