"""The comparison models of the evaluation table.

- LDA and SVM (RBF) on Hudgins time-domain features (MAV, WL, ZC, SSC per channel; sklearn, standardised).
- Plain CNN, LSTM, GRU and an attention-only (transformer) network on the raw window. They take the same
  ``(windows, features, channel_mask)`` call as NeuroFusionNet and ignore the features, so the same training loop
  (same optimiser, regularisation and early stopping) trains them. Their input is the window divided by one global
  scale measured on the training set (amplitude, which carries class information, is kept).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from torch import nn

HUDGINS = ["MAV", "WL", "ZC", "SSC"]
NEURAL_BASELINES = ("cnn", "lstm", "gru", "attention")


def hudgins_features(windows: np.ndarray, fs: float) -> np.ndarray:
    """(N, C, S) -> (N, 4 C): Hudgins TD features, amplitude features on a log scale."""
    from dsp.features import compute_features

    values = compute_features(windows, fs, HUDGINS)
    columns = [np.log(np.maximum(values[name], 1e-6)) if name in ("MAV", "WL") else values[name] for name in HUDGINS]
    return np.concatenate([np.asarray(c, dtype=np.float64) for c in columns], axis=1)


def classic_baseline(name: str, seed: int = 0) -> Pipeline:
    if name == "lda":
        return make_pipeline(StandardScaler(), LinearDiscriminantAnalysis())
    if name == "svm":
        return make_pipeline(StandardScaler(), SVC(kernel="rbf", C=10.0, gamma="scale", random_state=seed))
    raise ValueError(f"unknown classic baseline {name!r}")


class RawWindowModel(nn.Module):
    """Common input handling: mask out unusable channels, divide by the training set's global scale."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(()))

    def fit_scale(self, windows: torch.Tensor) -> None:
        self.scale.fill_(float(windows.float().pow(2).mean().sqrt().clamp_min(1e-6)))

    def prepare(self, windows: torch.Tensor, channel_mask: torch.Tensor) -> torch.Tensor:
        return windows * channel_mask.unsqueeze(-1) / self.scale


class PlainCnn(RawWindowModel):
    """Three strided 1-D convolutions over time with the channels as input planes, global average pooling."""

    def __init__(self, n_channels: int, n_classes: int, width: int = 48, dropout: float = 0.2) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(n_channels, width, 9, stride=4, padding=4), nn.GELU(),
            nn.Conv1d(width, width, 5, stride=2, padding=2), nn.GELU(),
            nn.Conv1d(width, width, 3, padding=1), nn.GELU(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, n_classes))

    def forward(self, windows, features, channel_mask):
        return self.head(self.body(self.prepare(windows, channel_mask)).mean(dim=-1))


def frame_sequence(signal: torch.Tensor, steps: int = 50) -> torch.Tensor:
    """(B, C, S) -> (B, T, 2C): per frame the mean and the mean absolute value, about ``steps`` frames, so a
    recurrent or attention model sees a sequence of tractable length at any sampling rate."""
    frame = max(1, signal.shape[-1] // steps)
    mean = nn.functional.avg_pool1d(signal, frame, frame)
    magnitude = nn.functional.avg_pool1d(signal.abs(), frame, frame)
    return torch.cat([mean, magnitude], dim=1).transpose(1, 2)


class RecurrentBaseline(RawWindowModel):
    def __init__(self, n_channels: int, n_classes: int, cell: str = "lstm", hidden: int = 64,
                 dropout: float = 0.2) -> None:
        super().__init__()
        recurrent = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = recurrent(2 * n_channels, hidden, num_layers=2, batch_first=True, dropout=dropout)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    def forward(self, windows, features, channel_mask):
        outputs, _ = self.rnn(frame_sequence(self.prepare(windows, channel_mask)))
        return self.head(outputs[:, -1])


class AttentionOnly(RawWindowModel):
    """Transformer encoder over frames (self-attention only, no convolution, no graph)."""

    def __init__(self, n_channels: int, n_classes: int, width: int = 48, heads: int = 4, layers: int = 2,
                 dropout: float = 0.2, max_steps: int = 128) -> None:
        super().__init__()
        self.embed = nn.Linear(2 * n_channels, width)
        self.position = nn.Parameter(torch.zeros(1, max_steps, width))
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, n_classes))

    def forward(self, windows, features, channel_mask):
        sequence = self.embed(frame_sequence(self.prepare(windows, channel_mask)))
        sequence = sequence + self.position[:, : sequence.shape[1]]
        return self.head(self.encoder(sequence).mean(dim=1))


def neural_baseline(name: str, n_channels: int, n_classes: int) -> RawWindowModel:
    if name == "cnn":
        return PlainCnn(n_channels, n_classes)
    if name in ("lstm", "gru"):
        return RecurrentBaseline(n_channels, n_classes, cell=name)
    if name == "attention":
        return AttentionOnly(n_channels, n_classes)
    raise ValueError(f"unknown baseline {name!r}; known: {', '.join(NEURAL_BASELINES)}")
