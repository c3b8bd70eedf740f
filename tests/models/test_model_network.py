"""NeuroFusionNet shapes, masking and graphs on every electrode layout the monitor supports."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.graphs import layout_edges
from models.neurofusionnet import NetworkConfig, NeuroFusionNet, parameter_count
from simulators.electrodes import ElectrodeLayout

LAYOUTS = {1: "needle", 8: "ring8", 64: "grid8x8"}
SHARED_PARAMETERS = 25_374  # NetworkConfig defaults with 5 features: every weight not tied to one electrode


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
    # weights are shared across electrodes except each one's identity embedding (hidden) and its slice of the
    # position-aware readout (identity_width x hidden): the count grows by exactly that per channel
    config = model.config
    per_channel = config.hidden + config.identity_width * config.hidden
    assert parameter_count(model) == SHARED_PARAMETERS + n_channels * per_channel


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


# the parameters each switch must remove, by name prefix, and nothing else
ABLATED_PARTS = {
    "use_gnn": ("graph_layers.", "graph_norms."),
    "use_attention": ("temporal.time_score.", "channel_score."),
    "channel_identity": ("channel_embedding", "identity_projection.", "identity_readout."),
}


def test_ablation_switches_remove_their_parts_and_nothing_else():
    full = make_network(8)
    full_names = {name for name, _ in full.named_parameters()}
    for switch, prefixes in ABLATED_PARTS.items():
        model = make_network(8, **{switch: False})
        names = {name for name, _ in model.named_parameters()}
        removed = full_names - names
        assert removed and all(name.startswith(prefixes) for name in removed), (switch, removed)
        assert not any(name.startswith(prefixes) for name in names), switch
        assert names <= full_names, switch  # nothing added: only widths after a removed part change
        with torch.no_grad():
            logits, attention, _ = model(*inputs(2, 8))
        assert logits.shape == (2, 3) and torch.isfinite(attention).all()
    assert not any(isinstance(module, type(full.graph_layers[0])) for module in
                   make_network(8, use_gnn=False).modules())
    # without attention the readout is a plain mean over usable electrodes
    with torch.no_grad():
        _, attention, _ = make_network(8, use_attention=False)(*inputs(2, 8))
    np.testing.assert_allclose(attention.numpy(), 1 / 8)


def test_without_features_the_handcrafted_features_cannot_change_the_output():
    windows, features, mask = inputs(2, 8)
    without = make_network(8, use_features=False)
    assert without.fusion[0].in_features == without.config.hidden + 1  # the log amplitude only
    assert make_network(8).fusion[0].in_features == without.config.hidden + 1 + 5
    with torch.no_grad():
        first, _, _ = without(windows, features, mask)
        second, _, _ = without(windows, features * 100 + 7, mask)
        used, _, _ = make_network(8)(windows, features, mask)
        changed, _, _ = make_network(8)(windows, features * 100 + 7, mask)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert not torch.allclose(used, changed)  # the same change does reach a network that uses them


def test_the_no_regularisation_ablation_switches_every_regulariser_off_and_keeps_the_rest():
    from dataclasses import asdict

    from models.training import TrainingConfig

    regularised = TrainingConfig(weight_decay=1e-3, label_smoothing=0.1, mixup_alpha=0.2, channel_drop=0.1,
                                 gain_jitter=0.1, channel_gain=2.0, electrode_shift=0.5, effort_scale=4.0,
                                 epochs=15, patience=5)
    plain = asdict(regularised.without_regularisation())
    neutral = {"weight_decay": 0.0, "label_smoothing": 0.0, "mixup_alpha": 0.0, "channel_drop": 0.0,
               "gain_jitter": 0.0, "channel_gain": 1.0, "electrode_shift": 0.0, "effort_scale": 1.0,
               "patience": 16}  # early stopping can no longer stop before the last epoch
    assert {key: plain[key] for key in neutral} == neutral
    assert {key: value for key, value in plain.items() if key not in neutral} == {
        key: value for key, value in asdict(regularised).items() if key not in neutral}
