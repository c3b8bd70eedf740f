"""Small seeded checkpoints shared by the model tests (untrained: these tests check plumbing, not accuracy)."""

from __future__ import annotations

from pathlib import Path

import pytest


def make_checkpoint(directory: Path, layout_name: str = "ring8", fs: float = 2048.0, window_samples: int = 410,
                    with_features: bool = True) -> Path:
    import torch

    from dsp.features import MODEL_FEATURES
    from models.checkpoint import ModelCard, save_checkpoint
    from models.graphs import layout_edges
    from models.neurofusionnet import NetworkConfig, NeuroFusionNet
    from simulators.electrodes import ElectrodeLayout

    layout = ElectrodeLayout.from_name(layout_name)
    feature_names = list(MODEL_FEATURES) if with_features else []
    config = NetworkConfig(n_channels=layout.n_channels, n_classes=3, n_features=len(feature_names))
    torch.manual_seed(0)
    model = NeuroFusionNet(config, layout_edges(layout))
    # non-trivial normalisation statistics, so a checkpoint that lost its buffers would give different outputs
    model.feature_mean.uniform_(-1, 1)
    model.feature_std.uniform_(0.5, 2)
    card = ModelCard(
        model_id=f"test-{layout_name}", classes=["healthy", "myopathy", "neuropathy"], n_channels=layout.n_channels,
        fs=fs, window_samples=window_samples, layout=layout.to_dict(), feature_names=feature_names,
        training={"note": "untrained test model"},
    )
    return save_checkpoint(directory / f"{card.model_id}.pt", model.eval(), card)


@pytest.fixture(scope="session")
def ring_checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ring"))


@pytest.fixture(scope="session")
def exported_grid_checkpoint(tmp_path_factory) -> Path:
    from models.export import export_checkpoint

    path = make_checkpoint(tmp_path_factory.mktemp("grid"), "grid8x8", window_samples=400)
    export_checkpoint(path)
    return path
