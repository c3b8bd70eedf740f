"""Every ablation switch really removes its part (issue 22, "Honest figures").

Two checks per switch, on tiny seeded models (the whole file runs in a few seconds of CPU):

1. structure: the part's modules are absent by type, and the parameter count drops by exactly the part's own
   parameters, counted here from the layer shapes (not by asking the model), plus the input columns of the layers
   that consumed the part's output;
2. behaviour: the ablated model's output does not depend on what the part would have read (the electrode graph,
   the handcrafted features, the raw needle windows, other windows, which electrode is which), while the full
   model's output does. A switch that only zeroed a scale, or left the part in the forward path, fails one of them.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch_geometric.nn import GATv2Conv

from models.graphs import layout_edges
from models.needle_net import NeedleFusionNet, NeedleNetConfig, WindowConvolution
from models.neurofusionnet import NetworkConfig, NeuroFusionNet, TemporalEncoder, parameter_count
from simulators.electrodes import ElectrodeLayout

# tiny but structurally complete: two heads, two graph layers, eight ring electrodes
HIDDEN, HEADS, GNN_LAYERS, IDENTITY_WIDTH = 8, 2, 2, 2
N_CHANNELS, N_FEATURES, N_CLASSES, N_SAMPLES = 8, 3, 3, 64


def gat_layer_parameters(width: int) -> int:
    """GATv2Conv(width, width // heads, heads): source and target projections (weight + bias), the attention
    vector (width) and the output bias (width); then its LayerNorm (2 x width)."""
    return 2 * (width * width + width) + width + width + 2 * width


def linear_parameters(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def conv_parameters(n_in: int, n_out: int, kernel: int) -> int:
    return n_in * n_out * kernel + n_out


def set_normalisation(model: nn.Module) -> None:
    """Non-trivial normalisation, so that a feature column that is still read moves the output; its own generator,
    so that it is the same whatever parts the model has."""
    generator = torch.Generator().manual_seed(3)
    width = model.feature_mean.numel()
    model.feature_mean.copy_(torch.rand(width, generator=generator) * 2 - 1)
    model.feature_std.copy_(torch.rand(width, generator=generator) * 1.5 + 0.5)


# ---- surface NeuroFusionNet ------------------------------------------------------------------------------------


def surface_network(**switches: bool) -> NeuroFusionNet:
    torch.manual_seed(0)
    config = NetworkConfig(n_channels=N_CHANNELS, n_classes=N_CLASSES, n_features=N_FEATURES, hidden=HIDDEN,
                           conv_channels=(4, 4), gnn_layers=GNN_LAYERS, heads=HEADS, identity_width=IDENTITY_WIDTH,
                           **switches)
    model = NeuroFusionNet(config, layout_edges(ElectrodeLayout.ring(N_CHANNELS))).eval()
    set_normalisation(model)
    return model


def surface_inputs(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    windows = torch.randn(2, N_CHANNELS, N_SAMPLES, generator=generator) * torch.linspace(10, 300, N_CHANNELS)[:, None]
    features = torch.rand(2, N_CHANNELS, N_FEATURES, generator=generator) * 5
    return windows, features, torch.ones(2, N_CHANNELS)


def identity_readout_parameters() -> int:
    """channel embedding, identity projection, per-position readout, and the readout's columns in the heads."""
    own = (N_CHANNELS * HIDDEN + linear_parameters(HIDDEN, IDENTITY_WIDTH)
           + linear_parameters(N_CHANNELS * IDENTITY_WIDTH, HIDDEN))
    consumers = HIDDEN * HIDDEN + HIDDEN  # classifier[0] and the fatigue head each read HIDDEN more inputs
    return own + consumers


SURFACE_PARTS: dict[str, tuple[tuple[type[nn.Module], ...], int]] = {
    # switch: (module types that must be gone, parameters that must be gone)
    "use_gnn": ((GATv2Conv,), GNN_LAYERS * gat_layer_parameters(HIDDEN)),
    # temporal attention pooling (1x1 conv score) and the attention readout over channels (linear score)
    "use_attention": ((), conv_parameters(HIDDEN, 1, 1) + linear_parameters(HIDDEN, 1)),
    # only the fusion layer's columns for the handcrafted features; the log-amplitude column stays
    "use_features": ((), N_FEATURES * HIDDEN),
    "channel_identity": ((), identity_readout_parameters()),
    "fatigue_head": ((), linear_parameters(2 * HIDDEN, 1)),
}


@pytest.mark.parametrize("switch", sorted(SURFACE_PARTS))
def test_a_surface_switch_removes_exactly_its_parameters(switch: str) -> None:
    full, ablated = surface_network(), surface_network(**{switch: False})
    absent_types, own_parameters = SURFACE_PARTS[switch]
    assert parameter_count(full) - parameter_count(ablated) == own_parameters
    for module_type in absent_types:
        assert any(isinstance(module, module_type) for module in full.modules())
        assert not any(isinstance(module, module_type) for module in ablated.modules())


def test_without_the_gnn_the_electrode_graph_cannot_change_the_output() -> None:
    inputs = surface_inputs()
    # a different graph on the same electrodes: every channel listens to channel 0 and to itself
    other_graph = torch.stack([torch.cat([torch.zeros(N_CHANNELS), torch.arange(N_CHANNELS)]),
                               torch.cat([torch.arange(N_CHANNELS), torch.arange(N_CHANNELS)])]).long()

    def outputs_on_both_graphs(model: NeuroFusionNet) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        with torch.no_grad():
            ring = model(*inputs)
            model.edge_index = other_graph
            return ring, model(*inputs)

    ring, other = outputs_on_both_graphs(surface_network(use_gnn=False))
    for before, after in zip(ring, other, strict=True):
        assert torch.equal(before, after)
    ring, other = outputs_on_both_graphs(surface_network())
    assert (ring[0] - other[0]).abs().max() > 1e-4  # the same change does reach a model with its graph layers
    assert surface_network(use_gnn=False).last_edge_attention is None


def test_without_features_the_handcrafted_features_cannot_change_the_output() -> None:
    windows, features, mask = surface_inputs()
    other_features = torch.rand(features.shape, generator=torch.Generator().manual_seed(7)) * 500

    def both(model: NeuroFusionNet) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        with torch.no_grad():
            return model(windows, features, mask), model(windows, other_features, mask)

    first, second = both(surface_network(use_features=False))
    for before, after in zip(first, second, strict=True):
        assert torch.equal(before, after)
    first, second = both(surface_network())
    assert (first[0] - second[0]).abs().max() > 1e-4
    # the log-amplitude is kept on purpose (module docstring): a gain change still reaches the ablated model
    with torch.no_grad():
        louder = surface_network(use_features=False)(windows * torch.linspace(1, 8, N_CHANNELS)[:, None], features,
                                                     mask)[0]
    assert (louder - surface_network(use_features=False)(windows, features, mask)[0]).abs().max() > 1e-4


def capture(module: nn.Module, store: list[torch.Tensor], inputs: bool = False) -> None:
    """Keep what ``module`` receives (``inputs``) or returns on every call."""
    if inputs:
        module.register_forward_pre_hook(lambda _module, args: store.append(args[0].detach()))
    else:
        module.register_forward_hook(lambda _module, _args, output: store.append(output.detach()))


def surface_pooling(model: NeuroFusionNet) -> dict[str, torch.Tensor]:
    """What the temporal pooling and the channel readout received and what they produced."""
    convolved, pooled_in_time, nodes, readout = [], [], [], []
    capture(model.temporal.convolutions, convolved)
    capture(model.temporal, pooled_in_time)
    capture(model.dropout, nodes)  # identity in eval: the nodes the channel readout pools (mask is all ones)
    capture(model.classifier, readout, inputs=True)
    with torch.no_grad():
        model(*surface_inputs())
    return {"convolved": convolved[0], "pooled_in_time": pooled_in_time[0], "nodes": nodes[0],
            "readout": readout[0][:, :HIDDEN]}


def test_without_attention_both_poolings_are_plain_means() -> None:
    # a switch that kept a score in the forward path would weigh time steps or channels unequally
    ablated = surface_pooling(surface_network(use_attention=False))
    torch.testing.assert_close(ablated["pooled_in_time"], ablated["convolved"].mean(dim=-1), rtol=0, atol=1e-6)
    torch.testing.assert_close(ablated["readout"], ablated["nodes"].mean(dim=1), rtol=0, atol=1e-6)
    full = surface_pooling(surface_network())
    assert (full["pooled_in_time"] - full["convolved"].mean(dim=-1)).abs().max() > 1e-4
    assert (full["readout"] - full["nodes"].mean(dim=1)).abs().max() > 1e-4
    assert not any(isinstance(module, TemporalEncoder) and module.time_score is not None
                   for module in surface_network(use_attention=False).modules())


def test_without_channel_identity_rotating_the_ring_cannot_change_the_verdict() -> None:
    # the ring graph is the same after a rotation by one electrode, so only the identity part knows which electrode
    # is which: without it, rotating every input by one channel rotates the attention and leaves the logits alone
    windows, features, mask = surface_inputs()

    def rotated(model: NeuroFusionNet) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        with torch.no_grad():
            return model(windows, features, mask), model(windows.roll(1, dims=1), features.roll(1, dims=1), mask)

    (logits, attention, fatigue), (logits_r, attention_r, fatigue_r) = rotated(surface_network(channel_identity=False))
    torch.testing.assert_close(logits_r, logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(fatigue_r, fatigue, rtol=0, atol=1e-5)
    torch.testing.assert_close(attention_r, attention.roll(1, dims=1), rtol=0, atol=1e-6)
    (logits, _, _), (logits_r, _, _) = rotated(surface_network())
    assert (logits - logits_r).abs().max() > 1e-4


def test_without_the_fatigue_head_fatigue_is_zero_and_the_verdict_is_untouched() -> None:
    # the fatigue head is built last, so with the same seed every other weight is the same in both models
    with torch.no_grad():
        logits, attention, fatigue = surface_network(fatigue_head=False)(*surface_inputs())
        logits_full, attention_full, fatigue_full = surface_network()(*surface_inputs())
    assert torch.equal(fatigue, torch.zeros(2))
    assert torch.equal(logits, logits_full) and torch.equal(attention, attention_full)
    assert fatigue_full.abs().max() > 1e-4


# ---- needle NeedleFusionNet ------------------------------------------------------------------------------------

NEEDLE_WINDOWS, NEEDLE_SAMPLES = 6, 64


def needle_network(**switches: bool) -> NeedleFusionNet:
    torch.manual_seed(0)
    config = NeedleNetConfig(n_features=N_FEATURES, n_classes=N_CLASSES, hidden=HIDDEN, conv_samples=NEEDLE_SAMPLES,
                             gnn_layers=GNN_LAYERS, heads=HEADS, k_similar=2, **switches)
    model = NeedleFusionNet(config).eval()
    set_normalisation(model)
    return model


def needle_inputs(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(2, NEEDLE_WINDOWS, N_FEATURES, generator=generator)
    windows = torch.randn(2, NEEDLE_WINDOWS, NEEDLE_SAMPLES, generator=generator) * 100
    return features, windows


def window_convolution_parameters() -> int:
    return conv_parameters(1, 16, 16) + conv_parameters(16, 32, 8) + conv_parameters(32, HIDDEN, 4)


NEEDLE_PARTS: dict[str, tuple[tuple[type[nn.Module], ...], int]] = {
    # the convolution and its HIDDEN columns in the fusion layer
    "use_conv": ((WindowConvolution,), window_convolution_parameters() + HIDDEN * HIDDEN),
    # window-statistics encoder, recording-statistics encoder, and their columns in fusion and classifier
    "use_features": ((), linear_parameters(N_FEATURES, HIDDEN) + linear_parameters(2 * N_FEATURES, HIDDEN)
                     + HIDDEN * HIDDEN + N_CLASSES * HIDDEN),
    "use_graph": ((GATv2Conv,), GNN_LAYERS * gat_layer_parameters(HIDDEN)),
    "use_attention": ((), linear_parameters(HIDDEN, 1)),
}


@pytest.mark.parametrize("switch", sorted(NEEDLE_PARTS))
def test_a_needle_switch_removes_exactly_its_parameters(switch: str) -> None:
    full, ablated = needle_network(), needle_network(**{switch: False})
    absent_types, own_parameters = NEEDLE_PARTS[switch]
    assert parameter_count(full) - parameter_count(ablated) == own_parameters
    for module_type in absent_types:
        assert any(isinstance(module, module_type) for module in full.modules())
        assert not any(isinstance(module, module_type) for module in ablated.modules())


def test_needle_without_convolution_ignores_the_raw_windows() -> None:
    features, windows = needle_inputs()
    other_windows = needle_inputs(seed=5)[1] * 30
    with torch.no_grad():
        ablated = needle_network(use_conv=False)
        assert torch.equal(ablated(features, windows), ablated(features, other_windows))
        assert torch.equal(ablated(features, windows), ablated(features, None))
        full = needle_network()
        assert (full(features, windows) - full(features, other_windows)).abs().max() > 1e-4


def test_needle_without_features_ignores_the_window_statistics() -> None:
    features, windows = needle_inputs()
    other_features = needle_inputs(seed=5)[0] * 30
    with torch.no_grad():
        ablated = needle_network(use_features=False)
        assert torch.equal(ablated(features, windows), ablated(other_features, windows))
        full = needle_network()
        assert (full(features, windows) - full(other_features, windows)).abs().max() > 1e-4


def needle_nodes(model: NeedleFusionNet, features: torch.Tensor, windows: torch.Tensor) -> dict[str, torch.Tensor]:
    nodes, readout = [], []
    capture(model.dropout, nodes)  # first call: the window nodes the readout pools (identity in eval)
    capture(model.classifier, readout, inputs=True)
    with torch.no_grad():
        model(features, windows)
    return {"nodes": nodes[0], "readout": readout[0][:, :HIDDEN], "weights": model.last_window_attention}


def test_needle_without_the_graph_no_window_hears_another() -> None:
    features, windows = needle_inputs()
    changed_features, changed_windows = features.clone(), windows.clone()
    changed_features[:, 0] += 5.0
    changed_windows[:, 0] *= -3.0  # only window 0 changes: every other window's node must stay the same

    def other_nodes(model: NeedleFusionNet) -> tuple[torch.Tensor, torch.Tensor]:
        return (needle_nodes(model, features, windows)["nodes"][:, 1:],
                needle_nodes(model, changed_features, changed_windows)["nodes"][:, 1:])

    before, after = other_nodes(needle_network(use_graph=False))
    assert torch.equal(before, after)
    before, after = other_nodes(needle_network())
    assert (before - after).abs().max() > 1e-4


def test_needle_without_attention_the_readout_is_a_plain_mean() -> None:
    features, windows = needle_inputs()
    ablated = needle_nodes(needle_network(use_attention=False), features, windows)
    assert torch.equal(ablated["weights"], torch.full((2, NEEDLE_WINDOWS), 1.0 / NEEDLE_WINDOWS))
    torch.testing.assert_close(ablated["readout"], ablated["nodes"].mean(dim=1), rtol=0, atol=1e-6)
    full = needle_nodes(needle_network(), features, windows)
    assert (full["readout"] - full["nodes"].mean(dim=1)).abs().max() > 1e-4

