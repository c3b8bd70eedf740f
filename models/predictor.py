"""The one object the inference worker needs: windows in, class probabilities and channel attention out.

The predictor computes the handcrafted features itself (``dsp.features``) so the wire carries only the window,
resamples a window whose rate differs from the model's (``scipy.signal.resample_poly``), masks channels that are
flagged or hold non-finite samples (NaN never reaches the network), and runs ONNX Runtime or torch.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from models.checkpoint import BUNDLED_CHECKPOINT, ModelCard, load_checkpoint, onnx_path

__all__ = ["ModelCard", "Prediction", "Predictor", "load_predictor", "handcrafted_features", "resample_windows"]

log = logging.getLogger(__name__)
BACKENDS = ("auto", "onnx", "torch")


@dataclass
class Prediction:
    probabilities: np.ndarray  # (B, K) float32, rows sum to 1, columns in card.classes order
    channel_attention: np.ndarray  # (B, C) float32, rows sum to 1 over unmasked channels, 0 on masked ones


def handcrafted_features(windows: np.ndarray, fs: float, names: list[str] | tuple[str, ...]) -> np.ndarray:
    """(B, C, S) -> (B, C, F) float32 via dsp.features; non-finite values become 0 (the model's mean)."""
    if not names:
        return np.zeros(windows.shape[:2] + (0,), dtype=np.float32)
    from dsp.features import feature_matrix

    features = np.asarray(feature_matrix(windows, fs, list(names)), dtype=np.float32)
    return np.nan_to_num(features, nan=0.0, posinf=0.0, neginf=0.0)


def resample_windows(windows: np.ndarray, fs: float, target_fs: float) -> np.ndarray:
    """Polyphase resampling along the last axis (anti-aliased); identity when the rates match."""
    if abs(fs - target_fs) < 1e-6 * target_fs:
        return windows
    ratio = Fraction(target_fs / fs).limit_denominator(1000)
    from scipy.signal import resample_poly

    return resample_poly(windows, ratio.numerator, ratio.denominator, axis=-1).astype(np.float32)


class Predictor:
    def __init__(self, card: ModelCard, backend: str, run_network: Any) -> None:
        self.card = card
        self.backend = backend
        self._run_network = run_network  # (windows, features, mask) float32 arrays -> (probabilities, attention)

    @property
    def classes(self) -> list[str]:
        return list(self.card.classes)

    def check_layout(self, layout: dict[str, Any] | Any) -> None:
        """Raise ValueError with a readable message unless the stream's layout is the model's."""
        self.card.check_layout(layout)

    def predict(
        self, windows: np.ndarray, channel_mask: np.ndarray | None = None, fs: float | None = None
    ) -> Prediction:
        """windows (B, C, S) float32 µV, band-pass filtered; channel_mask (B, C) bool, True = usable."""
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim == 2:
            windows = windows[None]
        if windows.ndim != 3:
            raise ValueError(f"windows must be (batch, channels, samples), got shape {windows.shape}")
        batch, n_channels, _ = windows.shape
        if n_channels != self.card.n_channels:
            raise ValueError(
                f"model {self.card.model_id!r} expects {self.card.n_channels} channels, got {n_channels}; "
                "calibrate or train a model for this electrode layout"
            )
        mask = np.ones((batch, n_channels), dtype=bool) if channel_mask is None else np.asarray(channel_mask, bool)
        if mask.ndim == 1:
            mask = np.broadcast_to(mask, (batch, n_channels))
        if mask.shape != (batch, n_channels):
            raise ValueError(f"channel_mask must be {(batch, n_channels)}, got {mask.shape}")
        finite = np.isfinite(windows).all(axis=-1)
        mask = mask & finite
        windows = np.where(mask[..., None], windows, np.float32(0.0))
        windows = resample_windows(windows, self.card.fs if fs is None else float(fs), self.card.fs)
        features = handcrafted_features(windows, self.card.fs, self.card.feature_names)
        probabilities, attention = self._run_network(
            np.ascontiguousarray(windows, dtype=np.float32), features, mask.astype(np.float32)
        )
        return Prediction(np.asarray(probabilities, np.float32), np.asarray(attention, np.float32))


def _torch_runner(model: Any) -> Any:
    import torch

    def run(windows: np.ndarray, features: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            logits, attention, _ = model(torch.from_numpy(windows), torch.from_numpy(features), torch.from_numpy(mask))
            return torch.softmax(logits, dim=-1).numpy(), attention.numpy()

    return run


def _onnx_runner(path: Path, threads: int, rewrite: bool = True) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    model: str | bytes = str(path)
    if rewrite:  # GELU fused, 1-D convolutions as 2-D, GELU in the blocked layout: ~35 % less CPU per window
        from models.onnx_rewrite import serving_model_bytes

        model = serving_model_bytes(path) or model
    session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    input_names = [item.name for item in session.get_inputs()]

    def run(windows: np.ndarray, features: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities, attention = session.run(None, dict(zip(input_names, (windows, features, mask), strict=True)))
        return probabilities, attention

    return run


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_predictor(
    path: str | Path | None = None,
    backend: str = "auto",
    layout: dict[str, Any] | Any | None = None,
    threads: int = 1,
) -> Predictor:
    """Load a checkpoint (None = the bundled default) for inference.

    backend: "onnx" (needs the exported ``.onnx`` next to the ``.pt``, matching the card's sha256), "torch", or
    "auto" (ONNX when available and current, else torch). ``layout``, when given, is checked against the card.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    path = Path(path) if path is not None else BUNDLED_CHECKPOINT
    model, card = load_checkpoint(path)
    if layout is not None:
        card.check_layout(layout)
    exported = onnx_path(path)
    onnx_current = exported.is_file() and card.onnx_sha256 == file_sha256(exported)
    if backend == "onnx" and not onnx_current:
        raise ValueError(f"no current ONNX export next to {path}: run `neurofusion train --export-onnx` or export.py")
    if backend in ("onnx", "auto") and onnx_current:
        try:
            return Predictor(card, "onnx", _onnx_runner(exported, threads))
        except ImportError:
            if backend == "onnx":
                raise
            log.warning("onnxruntime is not importable; falling back to torch")
    return Predictor(card, "torch", _torch_runner(model))
