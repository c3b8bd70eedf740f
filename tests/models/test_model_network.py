"""NeuroFusionNet shapes, masking and graphs on every electrode layout the monitor supports."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.graphs import layout_edges
from models.neurofusionnet import NetworkConfig, NeuroFusionNet, parameter_count
from simulators.electrodes import ElectrodeLayout

LAYOUTS = {1: "needle", 8: "ring8", 64: "grid8x8"}


def make_network(n_channels: int, n_features: int = 5, **options) -> NeuroFusionNet:
    torch.manual_seed(0)
    layout = ElectrodeLayout.from_name(LAYOUTS[n_channels])
    config = NetworkConfig(n_channels=n_channels, n_classes=3, n_features=n_features, **options)
    return NeuroFusionNet(config, layout_edges(layout)).eval()


def inputs(batch: int, n_channels: int, n_samples: int = 200, n_features: int = 5, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    windows = torch.randn(batch, n_channels, n_samples, generator=generator) * 40
    features = torch.rand(batch, n_channels, n_features, generator=generator) * 5
    return windows, features, torch.ones(batch, n_channels)


@pytest.mark.parametrize("n_channels", [1, 8, 64])
def test_outputs_have_the_documented_shapes_and_attention_sums_to_one(n_channels):
    model = make_network(n_channels)
    with torch.no_grad():
        logits, attention, fatigue = model(*inputs(3, n_channels))
    assert logits.shape == (3, 3)
    assert attention.shape == (3, n_channels)
    assert fatigue.shape == (3,)
    np.testing.assert_allclose(attention.sum(dim=1).numpy(), 1.0, rtol=1e-5)
    assert 10_000 < parameter_count(model) < 500_000


@pytest.mark.parametrize("n_channels", [8, 64])
def test_a_masked_channel_has_no_influence_and_no_attention(n_channels):
    model = make_network(n_channels)
    windows, features, mask = inputs(2, n_channels)
    mask[:, 3] = 0.0
    perturbed_windows, perturbed_features = windows.clone(), features.clone()
    perturbed_windows[:, 3] = torch.randn(2, windows.shape[-1]) * 5000
    perturbed_features[:, 3] = 1e4
    with torch.no_grad():
        logits, attention, _ = model(windows, features, mask)
        logits_perturbed, _, _ = model(perturbed_windows, perturbed_features, mask)
        logits_unmasked, _, _ = model(perturbed_windows, perturbed_features, torch.ones_like(mask))
    assert torch.equal(attention[:, 3], torch.zeros(2))
    torch.testing.assert_close(logits_perturbed, logits, rtol=0, atol=1e-5)
    # the same perturbation with the channel in use does move the output: the check above is not vacuous
    assert (logits_unmasked - logits).abs().max() > 1e-3


def test_every_channel_masked_gives_finite_outputs():
    model = make_network(8)
    windows, features, mask = inputs(1, 8)
    with torch.no_grad():
        logits, attention, _ = model(windows, features, torch.zeros_like(mask))
    assert torch.isfinite(logits).all() and torch.isfinite(attention).all()


def test_grid_graph_links_8_neighbours_and_a_needle_is_a_self_loop():
    grid = layout_edges(ElectrodeLayout.grid(3, 3))
    incoming = torch.bincount(grid[1], minlength=9)
    # centre: 8 neighbours + itself; corner: 3 + itself; edge middle: 5 + itself
    assert incoming.tolist() == [4, 6, 4, 6, 9, 6, 4, 6, 4]
    assert layout_edges(ElectrodeLayout.needle()).tolist() == [[0], [0]]
    ring = layout_edges(ElectrodeLayout.ring(8))
    assert {(int(s), int(t)) for s, t in ring.T if t == 0} == {(7, 0), (0, 0), (1, 0)}
    full = layout_edges(ElectrodeLayout.ring(4), graph="full")
    assert full.shape == (2, 16)


def test_the_13x5_grid_with_an_empty_corner_has_no_edge_to_the_missing_electrode():
    layout = ElectrodeLayout.from_name("grid13x5")
    edges = layout_edges(layout)
    assert edges.max() == 63
    first = layout.grid_index.index((0, 1))  # neighbour of the empty (0, 0) corner: row 0 keeps (0, 2) and row 1
    assert int((edges[1] == first).sum()) == 1 + 1 + 3  # itself, (0, 2), and (1, 0), (1, 1), (1, 2)


def test_ablation_switches_build_working_networks():
    for options in ({"use_gnn": False}, {"use_attention": False}, {"use_features": False}, {"channel_identity": False}):
        model = make_network(8, **options)
        with torch.no_grad():
            logits, attention, _ = model(*inputs(2, 8))
        assert logits.shape == (2, 3) and torch.isfinite(attention).all()
