"""NeuroFusionNet: per-channel temporal CNN + temporal attention, fused with handcrafted features, graph attention
over the electrode graph, attention readout over channels, task heads.

Inputs (all float32): ``windows`` (B, C, S) filtered EMG, ``features`` (B, C, F) raw handcrafted features from
``dsp.features`` (the model normalises them with statistics stored in its buffers), ``channel_mask`` (B, C), 1.0
for a usable electrode and 0.0 for a masked one. A masked channel's signal reaches nothing: its embedding is zeroed,
every graph edge leaving it is redirected to a self loop of its target, and the readout gives it zero weight.

Each channel is normalised by its own standard deviation before the convolution (so the waveform shape is learned
independently of electrode gain) and its log-amplitude is passed alongside the handcrafted features, so amplitude
information survives even in the "no handcrafted features" ablation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch_geometric.nn import GATv2Conv
from torch_geometric.utils import dropout_edge

MASKED_LOGIT = -1e9  # not -inf: a window with every channel masked gives uniform attention instead of NaN


@dataclass
class NetworkConfig:
    """Architecture hyper-parameters and ablation switches; stored in the model card."""

    n_channels: int
    n_classes: int
    n_features: int  # handcrafted features per channel (0 allowed)
    hidden: int = 48
    conv_channels: tuple[int, int] = (16, 32)
    gnn_layers: int = 2
    heads: int = 4
    dropout: float = 0.2
    attention_dropout: float = 0.1
    drop_edge: float = 0.1
    use_gnn: bool = True
    use_attention: bool = True  # temporal attention pooling and attention readout (else means)
    use_features: bool = True  # handcrafted features (log-amplitude is always used)
    channel_identity: bool = True  # learned per-electrode embedding + position-aware readout (fixed layouts)
    identity_width: int = 8  # per-channel width of the position-aware readout
    fatigue_head: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> NetworkConfig:
        known = {name for name in cls.__dataclass_fields__}
        values = {key: value for key, value in data.items() if key in known}
        if "conv_channels" in values:
            values["conv_channels"] = tuple(values["conv_channels"])
        return cls(**values)


def signed_log(values: torch.Tensor) -> torch.Tensor:
    """Compresses features spanning decades (powers in µV², counts, Hz) to comparable ranges, keeping the sign."""
    return torch.sign(values) * torch.log1p(values.abs())


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.softmax(torch.where(mask > 0.5, scores, torch.full_like(scores, MASKED_LOGIT)), dim=dim)


class TemporalEncoder(nn.Module):
    """Shared-weight 1-D CNN applied to every channel, then attention (or mean) pooling over time."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        first, second = config.conv_channels
        self.convolutions = nn.Sequential(
            nn.Conv1d(1, first, kernel_size=9, stride=4, padding=4),
            nn.GELU(),
            nn.Conv1d(first, second, kernel_size=5, stride=2, padding=2),
            nn.GELU(),
            nn.Conv1d(second, config.hidden, kernel_size=3, padding=1),
            nn.GELU(),
        )
        self.time_score = nn.Conv1d(config.hidden, 1, kernel_size=1) if config.use_attention else None

    def forward(self, signals: torch.Tensor) -> torch.Tensor:  # (N, S) -> (N, hidden)
        hidden = self.convolutions(signals.unsqueeze(1))
        if self.time_score is None:
            return hidden.mean(dim=-1)
        weights = torch.softmax(self.time_score(hidden), dim=-1)
        return (hidden * weights).sum(dim=-1)


class NeuroFusionNet(nn.Module):
    def __init__(self, config: NetworkConfig, edge_index: torch.Tensor) -> None:
        super().__init__()
        self.config = config
        n_inputs = 1 + config.n_features  # log-amplitude + handcrafted features
        self.register_buffer("edge_index", edge_index.to(torch.long).clone())
        self.register_buffer("feature_mean", torch.zeros(n_inputs))
        self.register_buffer("feature_std", torch.ones(n_inputs))
        self.temporal = TemporalEncoder(config)
        fused_inputs = config.hidden + (n_inputs if config.use_features else 1)
        self.fusion = nn.Sequential(nn.Linear(fused_inputs, config.hidden), nn.GELU(), nn.LayerNorm(config.hidden))
        self.graph_layers = nn.ModuleList()
        self.graph_norms = nn.ModuleList()
        if config.use_gnn:
            for _ in range(config.gnn_layers):
                self.graph_layers.append(
                    GATv2Conv(
                        config.hidden,
                        config.hidden // config.heads,
                        heads=config.heads,
                        dropout=config.attention_dropout,
                        add_self_loops=False,
                    )
                )
                self.graph_norms.append(nn.LayerNorm(config.hidden // config.heads * config.heads))
        self.channel_score = nn.Linear(config.hidden, 1) if config.use_attention else None
        self.dropout = nn.Dropout(config.dropout)
        readout_width = config.hidden
        if config.channel_identity:
            # which electrode is which matters for gestures (a ring's channel 3 sits over one muscle); graph layers
            # and attention pooling are blind to it, so add an identity embedding and a per-position readout
            self.channel_embedding = nn.Parameter(torch.zeros(config.n_channels, config.hidden))
            self.identity_projection = nn.Linear(config.hidden, config.identity_width)
            self.identity_readout = nn.Linear(config.n_channels * config.identity_width, config.hidden)
            readout_width += config.hidden
        self.classifier = nn.Sequential(
            nn.Linear(readout_width, config.hidden), nn.GELU(), nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.n_classes),
        )
        self.fatigue = nn.Linear(readout_width, 1) if config.fatigue_head else None
        self.last_edge_attention: tuple[torch.Tensor, torch.Tensor] | None = None

    def set_feature_statistics(self, inputs: torch.Tensor) -> None:
        """Store normalisation statistics from training inputs: (N, C, 1 + F) as made by ``feature_inputs``."""
        flat = inputs.reshape(-1, inputs.shape[-1])
        self.feature_mean.copy_(flat.mean(dim=0))
        self.feature_std.copy_(flat.std(dim=0).clamp_min(1e-3))

    @staticmethod
    def feature_inputs(windows: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Per-channel (log-amplitude, signed-log features) before normalisation: (B, C, 1 + F)."""
        log_amplitude = torch.log(windows.std(dim=-1, keepdim=True) + 1e-3)
        return torch.cat([log_amplitude, signed_log(features)], dim=-1)

    def forward(
        self, windows: torch.Tensor, features: torch.Tensor, channel_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (class logits (B, K), channel attention (B, C), fatigue estimate (B,))."""
        batch, n_channels, n_samples = windows.shape
        mask = channel_mask.to(windows.dtype)
        scale = windows.std(dim=-1, keepdim=True) + 1e-3
        embedded = self.temporal((windows / scale).reshape(batch * n_channels, n_samples))
        embedded = embedded.reshape(batch, n_channels, -1)

        inputs = (self.feature_inputs(windows, features) - self.feature_mean) / self.feature_std
        if not self.config.use_features:
            inputs = inputs[..., :1]
        nodes = self.fusion(torch.cat([embedded, inputs], dim=-1))
        if self.config.channel_identity:
            nodes = nodes + self.channel_embedding
        nodes = nodes * mask.unsqueeze(-1)

        if self.config.use_gnn:
            nodes = self._graph(nodes, mask)
        nodes = self.dropout(nodes) * mask.unsqueeze(-1)

        if self.channel_score is None:
            attention = mask / mask.sum(dim=1, keepdim=True).clamp_min(1.0)
        else:
            attention = masked_softmax(self.channel_score(nodes).squeeze(-1), mask, dim=1)
        pooled = (nodes * attention.unsqueeze(-1)).sum(dim=1)
        if self.config.channel_identity:
            per_channel = nn.functional.gelu(self.identity_projection(nodes)) * mask.unsqueeze(-1)
            pooled = torch.cat([pooled, self.identity_readout(per_channel.reshape(batch, -1))], dim=-1)
        logits = self.classifier(pooled)
        fatigue = self.fatigue(pooled).squeeze(-1) if self.fatigue is not None else pooled[:, 0] * 0.0
        return logits, attention, fatigue

    def _graph(self, nodes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, n_channels, width = nodes.shape
        offsets = torch.arange(batch, device=nodes.device).reshape(1, batch, 1) * n_channels
        edges = (self.edge_index.unsqueeze(1) + offsets).reshape(2, -1)
        source, target = edges[0], edges[1]
        # an edge from a masked electrode becomes a self loop of its target: static shape (ONNX-friendly) and the
        # masked signal never enters any neighbour
        source = torch.where(mask.reshape(-1)[source] > 0.5, source, target)
        edges = torch.stack([source, target])
        if self.training and self.config.drop_edge > 0:
            edges, _ = dropout_edge(edges, p=self.config.drop_edge, training=True)
        flat = nodes.reshape(batch * n_channels, width)
        for layer, norm in zip(self.graph_layers, self.graph_norms, strict=True):
            updated, (attention_edges, attention_weights) = layer(flat, edges, return_attention_weights=True)
            flat = norm(flat + nn.functional.gelu(updated))
        if not torch.jit.is_tracing() and not torch.compiler.is_compiling():
            self.last_edge_attention = (attention_edges.detach(), attention_weights.detach())
        return flat.reshape(batch, n_channels, width)


def parameter_count(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)

