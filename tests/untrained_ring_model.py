"""A small, untrained NeuroFusionNet checkpoint for an 8-electrode ring at 200 Hz (the Myo armband's rate): real
model code with fixed random weights, for tests of the path decisions take (worker, pipeline, views), not of
accuracy. Small (hidden 8, no feature branch or fatigue head) so that a worker process loads and runs it quickly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CLASSES = ["healthy", "myopathy", "neuropathy"]


def save_untrained_ring_model(folder: Path, layout: dict[str, Any], model_id: str, seed: int) -> Path:
    """``folder/ring8.pt``: the checkpoint for ``layout`` (a ring of 8 electrodes as a layout dict), its weights
    drawn after ``torch.manual_seed(seed)``."""
    import torch

    from models.checkpoint import ModelCard, save_checkpoint
    from models.graphs import layout_edges
    from models.neurofusionnet import NetworkConfig, NeuroFusionNet

    torch.manual_seed(seed)
    card = ModelCard(model_id=model_id, classes=CLASSES, n_channels=8, fs=200.0, window_samples=40, layout=layout,
                     feature_names=[])  # fmt: skip
    config = NetworkConfig(n_channels=8, n_classes=3, n_features=0, hidden=8, conv_channels=(4, 8), heads=2,
                           use_features=False, fatigue_head=False)  # fmt: skip
    return save_checkpoint(folder / "ring8.pt", NeuroFusionNet(config, layout_edges(layout, card.graph)).eval(), card)
