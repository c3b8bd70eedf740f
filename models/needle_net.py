"""NeuroFusionNet for one needle channel: a graph over the recording's windows, with attention over them.

A needle recording is one electrode, so an electrode graph would be a single node. The nodes here are the
recording's windows (0.5 s, hop 0.25 s; ``models.needle_features``): each node carries the window's handcrafted
statistics and, optionally, a 1-D convolution of its raw signal. Edges join each window to its neighbours in time
and to its ``k_similar`` most similar windows (cosine similarity of the node embeddings, recomputed every forward
pass): windows holding the same motor units link up, whenever they occur. GATv2 layers pass messages along those
edges; an attention readout weighs the windows into one recording verdict. Every part can be switched off
(``NeedleNetConfig``) for the ablation in docs/needle-model.md.

Inputs: ``features`` (B, N, F) raw window statistics (normalised inside, with statistics stored as buffers),
``windows`` (B, N, S) conditioned signal (µV) or None when ``use_conv`` is off. N may be any number >= 1, so a
live stream of a couple of seconds is scored with the same weights as a whole 5 s recording.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass
class NeedleNetConfig:
    n_features: int
    n_classes: int = 3
    hidden: int = 32
    conv_samples: int = 4096  # centre of each window the convolution sees (0.25 s at 16384 Hz)
    gnn_layers: int = 1
    heads: int = 4
    k_similar: int = 3
    dropout: float = 0.4
    use_conv: bool = True
    use_features: bool = True
    use_graph: bool = True
    use_attention: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> NeedleNetConfig:
        return cls(**{key: value for key, value in data.items() if key in cls.__dataclass_fields__})


class WindowConvolution(nn.Module):
    """Shape of the raw window, gain removed (the window's log-amplitude is a feature of its own)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv1d(1, 16, kernel_size=16, stride=8, padding=4), nn.GELU(),
            nn.Conv1d(16, 32, kernel_size=8, stride=4, padding=2), nn.GELU(),
            nn.Conv1d(32, hidden, kernel_size=4, stride=2, padding=1), nn.GELU(),
        )

    def forward(self, windows: torch.Tensor) -> torch.Tensor:  # (M, S) -> (M, hidden)
        scale = windows.std(dim=-1, keepdim=True) + 1e-3
        hidden = self.layers((windows / scale).unsqueeze(1))
        return hidden.mean(dim=-1)


class NeedleFusionNet(nn.Module):
    def __init__(self, config: NeedleNetConfig) -> None:
        super().__init__()
        if not (config.use_conv or config.use_features):
            raise ValueError("the needle network needs the convolution, the features, or both")
        self.config = config
        self.register_buffer("feature_mean", torch.zeros(config.n_features))
        self.register_buffer("feature_std", torch.ones(config.n_features))
        width = 0
        if config.use_conv:
            self.convolution = WindowConvolution(config.hidden)
            width += config.hidden
        if config.use_features:
            self.feature_encoder = nn.Sequential(nn.Linear(config.n_features, config.hidden), nn.GELU())
            width += config.hidden
        self.fusion = nn.Sequential(nn.Linear(width, config.hidden), nn.GELU(), nn.LayerNorm(config.hidden))
        self.graph_layers = nn.ModuleList()
        self.graph_norms = nn.ModuleList()
        if config.use_graph:
            # imported here: torch_geometric costs seconds of start-up, and only a graph variant needs it
            from torch_geometric.nn import GATv2Conv

            for _ in range(config.gnn_layers):
                self.graph_layers.append(GATv2Conv(config.hidden, config.hidden // config.heads, heads=config.heads,
                                                   dropout=0.1, add_self_loops=True))
                self.graph_norms.append(nn.LayerNorm(config.hidden))
        self.node_score = nn.Linear(config.hidden, 1) if config.use_attention else None
        self.dropout = nn.Dropout(config.dropout)
        readout = config.hidden
        if config.use_features:
            # the recording's statistics (mean and spread of every window statistic) go straight to the head too:
            # the strongest single evidence on patients (docs/needle-model.md), which the node path need not relearn
            self.statistics_encoder = nn.Sequential(nn.Linear(2 * config.n_features, config.hidden), nn.GELU())
            readout += config.hidden
        self.classifier = nn.Linear(readout, config.n_classes)
        self.last_window_attention: torch.Tensor | None = None

    def set_feature_statistics(self, features: torch.Tensor) -> None:
        flat = features.reshape(-1, features.shape[-1])
        self.feature_mean.copy_(flat.mean(dim=0))
        self.feature_std.copy_(flat.std(dim=0).clamp_min(1e-3))

    def edges(self, nodes: torch.Tensor) -> torch.Tensor:
        """(2, E) edges of a batch of B graphs with N nodes each: time neighbours and k most similar windows."""
        batch, n_nodes, _ = nodes.shape
        index = torch.arange(n_nodes, device=nodes.device)
        pairs = [torch.stack([index[:-1], index[1:]]), torch.stack([index[1:], index[:-1]])]
        per_graph = torch.cat(pairs, dim=1).unsqueeze(0).expand(batch, -1, -1)
        k = min(self.config.k_similar, n_nodes - 1)
        if k > 0:
            unit = nn.functional.normalize(nodes.detach(), dim=-1)
            similarity = unit @ unit.transpose(1, 2) - 2.0 * torch.eye(n_nodes, device=nodes.device)
            nearest = similarity.topk(k, dim=-1).indices  # (B, N, k): sources for each target
            targets = index.reshape(1, n_nodes, 1).expand(batch, n_nodes, k)
            similar = torch.stack([nearest.reshape(batch, -1), targets.reshape(batch, -1)], dim=1)
            per_graph = torch.cat([per_graph, similar], dim=2)
        offsets = (torch.arange(batch, device=nodes.device) * n_nodes).reshape(batch, 1, 1)
        return (per_graph + offsets).permute(1, 0, 2).reshape(2, -1)

    def forward(self, features: torch.Tensor, windows: torch.Tensor | None = None) -> torch.Tensor:
        """-> class logits (B, K)."""
        batch, n_nodes, _ = features.shape
        parts = []
        if self.config.use_conv:
            if windows is None:
                raise ValueError("this needle network convolves the raw windows: pass them")
            start = max(0, (windows.shape[-1] - self.config.conv_samples) // 2)
            centre = windows[..., start:start + self.config.conv_samples]
            parts.append(self.convolution(centre.reshape(batch * n_nodes, -1)).reshape(batch, n_nodes, -1))
        if self.config.use_features:
            normalised = (features - self.feature_mean) / self.feature_std
            parts.append(self.feature_encoder(normalised))
        nodes = self.fusion(torch.cat(parts, dim=-1))
        if self.config.use_graph and n_nodes > 1:
            edges = self.edges(nodes)
            flat = nodes.reshape(batch * n_nodes, -1)
            for layer, norm in zip(self.graph_layers, self.graph_norms, strict=True):
                flat = norm(flat + nn.functional.gelu(layer(flat, edges)))
            nodes = flat.reshape(batch, n_nodes, -1)
        nodes = self.dropout(nodes)
        if self.node_score is None:
            weights = torch.full((batch, n_nodes), 1.0 / n_nodes, device=nodes.device)
        else:
            weights = torch.softmax(self.node_score(nodes).squeeze(-1), dim=1)
        self.last_window_attention = weights.detach()
        pooled = [(nodes * weights.unsqueeze(-1)).sum(dim=1)]
        if self.config.use_features:
            statistics = torch.cat([normalised.mean(dim=1), normalised.std(dim=1, unbiased=False)], dim=-1)
            pooled.append(self.dropout(self.statistics_encoder(statistics)))
        return self.classifier(torch.cat(pooled, dim=-1))


# ---- the recording-statistics model ----------------------------------------------------------------------------

RECORDING_STATISTICS = ("mean", "sd", "p10", "p90")


@dataclass
class NeedleStatisticsConfig:
    """A linear (multinomial logistic) model on the recording's statistics of its window statistics."""

    n_features: int
    n_classes: int = 3
    kind: str = "statistics"
    use_conv: bool = False  # the model reads window statistics only (``NeedleModel`` passes no raw windows)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> NeedleStatisticsConfig:
        return cls(**{key: value for key, value in data.items() if key in cls.__dataclass_fields__})


def recording_statistics_torch(features: torch.Tensor) -> torch.Tensor:
    """(B, N, F) window statistics -> (B, 4 F): mean, SD, 10th and 90th percentile over the windows, the same
    numbers as ``models.needle_training.recording_statistics`` (numpy, linear-interpolated percentiles)."""
    quantiles = torch.quantile(features, torch.tensor([0.1, 0.9], dtype=features.dtype), dim=1)
    return torch.cat([features.mean(dim=1), features.std(dim=1, unbiased=False), quantiles[0], quantiles[1]],
                     dim=-1)


class NeedleStatisticsNet(nn.Module):
    """Standardised recording statistics -> one linear layer (``classifier``) -> class logits.

    Trained as a scikit-learn logistic regression (``models.needle_training.statistics_network``) and copied here,
    so the product needs no scikit-learn and ``calibrate`` can refit ``classifier`` as for the network."""

    def __init__(self, config: NeedleStatisticsConfig) -> None:
        super().__init__()
        self.config = config
        width = len(RECORDING_STATISTICS) * config.n_features
        self.register_buffer("statistics_mean", torch.zeros(width))
        self.register_buffer("statistics_scale", torch.ones(width))
        self.classifier = nn.Linear(width, config.n_classes)
        self.last_window_attention: torch.Tensor | None = None

    def forward(self, features: torch.Tensor, windows: torch.Tensor | None = None) -> torch.Tensor:
        """-> class logits (B, K); ``windows`` is ignored."""
        statistics = recording_statistics_torch(features.to(self.statistics_mean.dtype))
        return self.classifier((statistics - self.statistics_mean) / self.statistics_scale)


def network_from_config(config: dict) -> nn.Module:
    """The needle model a card's ``network`` entry describes (``kind`` "statistics", else NeuroFusionNet)."""
    if config.get("kind") == "statistics":
        return NeedleStatisticsNet(NeedleStatisticsConfig.from_dict(config))
    return NeedleFusionNet(NeedleNetConfig.from_dict(config))
