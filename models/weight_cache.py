"""Weights of small helper networks trained on simulated data, cached on disk so a second run skips training."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_cached(network: Any, cache_dir: Path | None, name: str) -> tuple[bool, Path | None]:
    """Loads ``cache_dir/name.pt`` into ``network`` if it exists (``weights_only``, never a pickle).

    Returns whether it was loaded and the path to save freshly trained weights to (None: no cache)."""
    import torch

    path = None if cache_dir is None else Path(cache_dir) / f"{name}.pt"
    if path is not None and path.is_file():
        network.load_state_dict(torch.load(path, weights_only=True))
        return True, path
    return False, path


def save_cached(network: Any, path: Path | None) -> None:
    import torch

    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(network.state_dict(), path)
